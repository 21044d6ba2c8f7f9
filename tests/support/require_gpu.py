"""GS_REQUIRE_GPU=1: on the GPU machine a GPU test that skips has failed.

benchmarks/gpu_check.sh exports it. Without it, a ``gpu``-marked test skips cleanly where there
is no device, as everywhere else; with it, that skip is reported as the test's failure (no
device, a driver CuPy cannot use, a wheel the image lacks), and a run in which no ``gpu``-marked
test passed ends with a non-zero status: "0 passed" is not a green GPU run. tests/conftest.py
registers these hooks; ``pytest -p support.require_gpu`` loads them alone.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_GPU = os.environ.get("GS_REQUIRE_GPU") == "1"
# A skip reason that starts with this is about a peer library's own GPU support (a JAX built
# without CUDA), not our device path: GS_REQUIRE_GPU=1 leaves it a skip.
PEER_SKIP = "peer library: "
_passed_gpu_tests: list[str] = []  # node ids of the gpu-marked tests that passed


def skip_peer(reason: str) -> None:
    """Skip a GPU test for want of a peer library's GPU support, even under GS_REQUIRE_GPU=1."""
    pytest.skip(PEER_SKIP + reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under GS_REQUIRE_GPU=1, the skip of a ``gpu``-marked test becomes its failure."""
    outcome = yield
    report = outcome.get_result()
    if not (REQUIRE_GPU and report.skipped and item.get_closest_marker("gpu") is not None):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith(PEER_SKIP):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"GS_REQUIRE_GPU=1 is set, so this GPU test must run, but it skipped: {reason}. "
        "Run it where the CUDA driver sees a device, or unset GS_REQUIRE_GPU."
    )


def pytest_runtest_logreport(report):
    # Counted from the reports, not the items: an xdist controller sees only reports.
    if report.when == "call" and report.passed and "gpu" in report.keywords:
        _passed_gpu_tests.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    """Under GS_REQUIRE_GPU=1, a run in which no ``gpu``-marked test passed ends non-zero."""
    if REQUIRE_GPU and not _passed_gpu_tests and exitstatus in (0, 5):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if REQUIRE_GPU:
        passed = len(_passed_gpu_tests)
        terminalreporter.write_line(
            f"GS_REQUIRE_GPU=1: {passed} gpu-marked tests passed"
            + ("" if passed else "; 0 passed is a failure"),
            red=not passed,
        )
