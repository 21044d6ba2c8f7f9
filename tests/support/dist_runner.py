"""Start the ranks of a distributed test (tests/support/dist_worker.py) and collect what each
reported: torch.distributed over gloo on 127.0.0.1 (a spawned process per rank) or MPI
(``mpiexec`` from the mpich wheel). Every run is bounded: a rank still alive at the deadline
is killed and the test fails, so a hang costs at most ``deadline`` seconds."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import dist_worker
from support.tb_server import free_port

HAS_TORCH = importlib.util.find_spec("torch") is not None
MPIEXEC = shutil.which("mpiexec", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
HAS_MPI = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch (pip install torch)")
needs_mpi = pytest.mark.skipif(
    not HAS_MPI, reason="needs mpi4py and mpiexec (pip install mpi4py mpich)"
)


def run_torch(tmp_path: Path, size: int, name: str, option: str = "",
              deadline: float | None = None,
              expect_dead: tuple[int, ...] = ()) -> list[dict | None]:  # fmt: skip
    """Each rank's report (None for the ranks in ``expect_dead``, which must have died).
    ``deadline`` (default: 60 s and 20 s a rank) only guards against a hang: each spawned rank
    imports torch, seconds of CPU that a loaded 2-core machine hands out slowly."""
    deadline = _guard(size) if deadline is None else deadline
    logdir, out = tmp_path / "logs", tmp_path / "out"
    out.mkdir()
    port = free_port()
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=dist_worker.run_torch,
                        args=(rank, size, port, str(logdir), str(out), name, option))
        for rank in range(size)
    ]  # fmt: skip
    for process in processes:
        process.start()
    end = time.monotonic() + deadline
    for process in processes:
        process.join(max(0.0, end - time.monotonic()))
    hung = [rank for rank, process in enumerate(processes) if process.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert not hung, f"ranks {hung} still ran after {deadline:g} s"
    for rank, process in enumerate(processes):
        if rank in expect_dead:
            assert process.exitcode == -9, f"rank {rank} did not die: {process.exitcode}"
        else:
            assert process.exitcode == 0, f"rank {rank} ended with {process.exitcode}"
    return results(out, size, expect_dead)


def run_mpi(tmp_path: Path, size: int, name: str, option: str = "",
            deadline: float | None = None, **env_extra: str) -> list[dict]:  # fmt: skip
    deadline = _guard(size) if deadline is None else deadline
    logdir, out = tmp_path / "logs", tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env_extra}
    command = [MPIEXEC, "-n", str(size), sys.executable, dist_worker.__file__, str(logdir),
               str(out), name, option]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=deadline, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return results(out, size)


def _guard(size: int) -> float:
    return 60.0 + 20.0 * size


def results(out: Path, size: int, dead: tuple[int, ...] = ()) -> list[dict | None]:
    reports: list[dict | None] = []
    for rank in range(size):
        if rank in dead:
            reports.append(None)
            continue
        report = json.loads((out / f"rank{rank}.json").read_text())
        assert "crash" not in report, report["crash"]
        reports.append(report)
    return reports
