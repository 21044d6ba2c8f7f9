"""tests/support/skip_summary.py: one line per missing capability, and no green status for a run
that tested nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from support.skip_summary import capability

ROOT = Path(__file__).resolve().parent.parent

_TESTS = """
    import pytest

    def test_host():
        pass

    @pytest.mark.parametrize("n", range(3))
    def test_gpu(n):
        pytest.skip("needs a CUDA device and CuPy")

    def test_torch():
        pytest.importorskip("a_module_nobody_has_torch")

    def test_odd():
        pytest.skip("the moon is not full")

    @pytest.mark.slow
    def test_slow():
        pass
"""


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_marks.py").write_text(textwrap.dedent(_TESTS))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT)]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "support.skip_summary",
         "-o", "markers=slow", "test_marks.py", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_skips_are_summed_up_per_capability_with_what_to_install(tmp_path):
    proc = _pytest(tmp_path)
    assert proc.returncode == 0, proc.stdout
    summary = proc.stdout.split("what did not run, and how to run it", 1)[1].splitlines()[1:4]
    assert summary == [
        "GPU tests: 3 tests skipped; no CUDA device here",
        "torch tests (gs.watch, graphs, DLPack, drop-in checks against torch's writer): 1 test "
        "skipped; install torch (CPU build) to run them",
        "the moon is not full: 1 test skipped",
    ]
    fast = _pytest(tmp_path, "-m", "not slow").stdout
    assert "slow tests: 1 left out by -m 'not slow'; python3 -m pytest runs them too" in fast


def test_a_run_in_which_every_test_skipped_is_not_green(tmp_path):
    proc = _pytest(tmp_path, "-k", "not host and not slow")
    assert proc.returncode == 5, proc.stdout
    assert "No test passed: this run tested nothing" in proc.stdout
    assert _pytest(tmp_path, "-k", "nothing_matches").returncode == 5


def test_every_skip_reason_in_the_suite_names_a_capability():
    for reason in [
        "cupy backend: no CUDA device here",
        "could not import 'torch': No module named 'torch'",
        "GS_TENSORFLOW_PYTHON names no interpreter with TensorFlow (see .ci/run)",
        "Chromium is not installed: install Debian's chromium package",
        "needs mpi4py and mpiexec (pip install mpi4py mpich)",
        "numba (the 'fast' extra) is missing",
        "pip install lightning",
    ]:
        assert capability(reason)[1] != "skipped", reason
