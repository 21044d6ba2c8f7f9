"""What did not run, one line per missing capability, and no green status for a run that
tested nothing.

The suite runs everywhere and skips what the machine lacks (PyTorch, a CUDA device, Chromium,
an interpreter with TensorFlow, ...). pytest's own ``-ra`` lists each skip by file and line;
this lists each missing capability once, with how many tests it cost and what to install, e.g.
``GPU tests: 160 tests skipped; no CUDA device here``.
A skip whose reason no rule below knows is listed with that reason.

A run in which no test passed (every selected test skipped) ends with pytest's "no tests ran"
status (5) instead of 0; pytest already ends so when none was collected. tests/conftest.py
registers these hooks; ``pytest -p support.skip_summary`` loads them alone.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

# (a pattern of the skip reasons, the capability they lack, what to do to run those tests).
# First match wins: "needs a CUDA device and torch" is a GPU test, wherever torch is missing.
CAPABILITIES = [
    (r"CUDA device and|no CUDA device|NVIDIA GPU|JAX sees no GPU", "GPU tests",
     "no CUDA device here"),
    (r"CUDA device is here|GPU is here", "checks of the CPU-only behaviour", "a GPU is here"),
    (r"torch|PyTorch", "torch tests (gs.watch, graphs, DLPack, drop-in checks against torch's "
     "writer)", "install torch (CPU build) to run them"),
    (r"GS_TENSORFLOW_PYTHON", "tbparse image test",
     "set GS_TENSORFLOW_PYTHON to a Python with tensorflow-cpu (see .ci/run)"),
    (r"Chromium", "browser test", "install chromium (Debian's package)"),
    (r"lightning", "Lightning logger", "install lightning"),
    (r"transformers", "Hugging Face Trainer", "install transformers accelerate"),
    (r"mpi4py|mpiexec", "MPI ranks", "install mpi4py mpich (the test extra has them)"),
    (r"numba", "compiled host path", "install numba (the fast extra)"),
    (r"tmpfs", "full-disk test", "run as root where a tmpfs can be mounted"),
    (r"real CuPy", "CuPy's own compile path", "install the test extra (it brings CuPy)"),
]  # fmt: skip
_UNKNOWN = "skipped"
_outcomes = Counter()  # "passed" and "failed" test calls of this run


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    return reason.removeprefix("Skipped: ")


def capability(reason: str) -> tuple[str, str]:
    """The (capability, remedy) a skip reason names; (the reason, "skipped") if none."""
    for pattern, name, remedy in CAPABILITIES:
        if re.search(pattern, reason):
            return name, remedy
    return reason, _UNKNOWN


def _count(tests: int, files: int) -> str:
    parts = [f"{tests} test{'s' * (tests != 1)}"] if tests else []
    parts += [f"{files} file{'s' * (files != 1)}"] if files else []
    return " and ".join(parts) + " skipped"


def summary_lines(skipped: list) -> list[str]:
    """One line per capability, in the table's order; reasons no rule knows last."""
    tests, files = Counter(), Counter()
    for report in skipped:
        key = capability(_reason(report))
        (files if isinstance(report, pytest.CollectReport) else tests)[key] += 1
    order = {(name, remedy): i for i, (_, name, remedy) in enumerate(CAPABILITIES)}
    keys = sorted(set(tests) | set(files), key=lambda k: (order.get(k, len(order)), k))
    lines = []
    for name, remedy in keys:
        count = _count(tests[name, remedy], files[name, remedy])
        lines.append(f"{name}: {count}" + ("" if remedy == _UNKNOWN else f"; {remedy}"))
    return lines


def pytest_runtest_logreport(report):
    if report.passed and report.when == "call":
        _outcomes["passed"] += 1
    elif report.failed:
        _outcomes["failed"] += 1


def _ran_nothing(config) -> bool:
    return not (config.option.collectonly or _outcomes["passed"] + _outcomes["failed"])


def pytest_sessionfinish(session, exitstatus):
    """A run in which every selected test skipped has tested nothing: status 5, not 0."""
    if exitstatus == pytest.ExitCode.OK and _ran_nothing(session.config):
        session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED


def pytest_terminal_summary(terminalreporter):
    skipped = terminalreporter.stats.get("skipped", [])
    if skipped:
        terminalreporter.write_sep("=", "what did not run, and how to run it")
        for line in summary_lines(skipped):
            terminalreporter.write_line(line, yellow=True)
    deselected = len(terminalreporter.stats.get("deselected", []))
    if deselected and "not slow" in terminalreporter.config.option.markexpr:
        terminalreporter.write_line(
            f"slow tests: {deselected} left out by -m 'not slow'; python3 -m pytest runs them too"
        )
    if _ran_nothing(terminalreporter.config) and not terminalreporter.stats.get("error"):
        terminalreporter.write_line(
            "No test passed: this run tested nothing (exit status 5, as when none is collected).",
            red=True,
        )
