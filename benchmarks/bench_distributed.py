"""The cost of logging across ranks: a distributed writer against the two ways people do it
without one, on the same ranks, the same steps, in the same processes.

Usage: python benchmarks/bench_distributed.py [--gloo 2,4,8,16] [--mpi 2,4,8] [--steps 30]
       [--tensors 20] [--size 16K] [--scalars 5]

Each step logs ``--tensors`` histograms of ``--size`` float32 values (this rank's shard, host
memory) and ``--scalars`` scalars, three ways, one after the other on every rank:

- ``own file``: each rank a plain SummaryWriter of its own (one file per rank, nothing merged);
- ``all_gather``: every tensor and scalar all-gathered on the training's group (one collective
  each), rank 0 logging the concatenation with a plain writer — the naive merge;
- ``distributed``: ``SummaryWriter(distributed=...)``, the exact merge of every shard.

Printed per rank count (rank 0's process; the slowest rank beside it): caller time per step
(inside the logging calls: what the training step waits for), total time through ``close()``,
process CPU (every thread) through ``close()``, and, for the distributed writer, the
collectives and bytes per step its own communicator carried (counted by a wrapper around it).
Ratios are distributed / own file and distributed / all_gather. The ranks share this
machine's cores: on a machine with fewer cores than ranks, every figure includes waiting for
a core.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

MODES = ("own file", "all_gather", "distributed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _counting(collective):
    """``collective`` whose collectives are counted (calls and bytes sent by this rank)."""
    from gpu_summary.distributed import Collective

    class Counted(Collective):
        def __init__(self) -> None:
            self.rank, self.size, self.timeout = collective.rank, collective.size, 60.0
            self.calls = 0
            self.bytes = 0

        def _count(self, values) -> None:
            self.calls += 1
            self.bytes += 8 * int(np.size(values))

        def minimum(self, values):
            self._count(values)
            return collective.minimum(values)

        def total(self, values):
            self._count(values)
            return collective.total(values)

        def gather(self, values):
            self._count(values)
            return collective.gather(values)

        def close(self) -> None:
            collective.close()

    return Counted()


class _Training:
    """The training's own collectives: torch's default group or MPI's COMM_WORLD."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        if backend == "torch":
            import torch
            import torch.distributed as dist

            self.torch, self.dist = torch, dist
            self.rank, self.size = dist.get_rank(), dist.get_world_size()
        else:
            from mpi4py import MPI

            self.comm = MPI.COMM_WORLD
            self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def all_gather(self, values: np.ndarray) -> np.ndarray:
        if self.backend == "torch":
            tensor = self.torch.from_numpy(values)
            parts = [self.torch.empty_like(tensor) for _ in range(self.size)]
            self.dist.all_gather(parts, tensor)
            return np.concatenate([part.numpy() for part in parts])
        out = np.empty(values.size * self.size, dtype=values.dtype)
        self.comm.Allgather(values, out)
        return out

    def barrier(self) -> None:
        if self.backend == "torch":
            self.dist.barrier()
        else:
            self.comm.Barrier()


def _run_mode(mode: str, training: _Training, args, logdir: str) -> dict:
    import gpu_summary as gs

    rank = training.rank
    rng = np.random.default_rng(rank)
    tensors = [rng.standard_normal(args.size).astype(np.float32) for _ in range(args.tensors)]
    counted = None
    if mode == "distributed":
        from gpu_summary.distributed import connect

        counted = _counting(connect(training.backend))
        writer = gs.SummaryWriter(os.path.join(logdir, "merged"), distributed=counted)
    elif mode == "own file":
        writer = gs.SummaryWriter(os.path.join(logdir, f"own{rank}"))
    else:
        writer = gs.SummaryWriter(os.path.join(logdir, "gathered"), write_to_disk=rank == 0)
    training.barrier()
    cpu, start, caller = time.process_time(), time.perf_counter(), 0.0
    for step in range(args.steps):
        began = time.perf_counter()
        if mode == "all_gather":
            for k, values in enumerate(tensors):
                everything = training.all_gather(values)
                if rank == 0:
                    writer.add_histogram(f"h{k}", everything, step)
            for k in range(args.scalars):
                values = training.all_gather(np.array([float(step + k + rank)]))
                if rank == 0:
                    writer.add_scalar(f"s{k}", float(values.mean()), step)
        else:
            for k, values in enumerate(tensors):
                writer.add_histogram(f"h{k}", values, step)
            for k in range(args.scalars):
                writer.add_scalar(f"s{k}", float(step + k + rank), step)
        caller += time.perf_counter() - began
    writer.close()
    out = {
        "caller_ms": 1e3 * caller / args.steps,
        "total_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
    }
    if counted is not None:
        out["collectives"] = counted.calls / args.steps
        out["kib"] = counted.bytes / 1024 / args.steps
    training.barrier()
    return out


def _rank_main(backend: str, args, logdir: str, report: str) -> None:
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # ranks share the cores: no BLAS thread pools
    training = _Training(backend)
    import gpu_summary as gs
    from gpu_summary._backend.numpy import compiled

    compiled.prepare()  # the host kernels compiled first (numba), so every mode runs them
    with gs.SummaryWriter(os.path.join(logdir, f"warm{training.rank}")) as writer:
        writer.add_histogram("h", np.ones(args.size, np.float32), 0)  # first-call costs
    results = {mode: _run_mode(mode, training, args, logdir) for mode in args.modes}
    with open(report, "w", encoding="utf-8") as out:
        json.dump(results, out)


def _torch_rank(rank: int, size: int, port: int, args, logdir: str, folder: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=size)  # fmt: skip
    _rank_main("torch", args, logdir, os.path.join(folder, f"rank{rank}.json"))
    dist.destroy_process_group()


def _run_torch(size: int, args, folder: str) -> list[dict]:
    port = _free_port()
    context = multiprocessing.get_context("spawn")
    logdir = os.path.join(folder, "logs")
    ranks = [context.Process(target=_torch_rank, args=(r, size, port, args, logdir, folder))
             for r in range(size)]  # fmt: skip
    for process in ranks:
        process.start()
    for process in ranks:
        process.join()
    return [_load(folder, r) for r in range(size)]


def _run_mpi(size: int, args, folder: str) -> list[dict]:
    mpiexec = shutil.which("mpiexec", path=f"{os.path.dirname(sys.executable)}:"
                           f"{os.environ['PATH']}")  # fmt: skip
    command = [mpiexec, "-n", str(size), sys.executable, os.path.abspath(__file__),
               "--mpi-child", folder, *_forwarded(args)]  # fmt: skip
    subprocess.run(command, check=True)
    return [_load(folder, r) for r in range(size)]


def _forwarded(args) -> list[str]:
    numbers = {"--steps": args.steps, "--tensors": args.tensors, "--size": args.size,
               "--scalars": args.scalars}  # fmt: skip
    return [*(str(word) for pair in numbers.items() for word in pair),
            "--modes", ",".join(args.modes)]  # fmt: skip


def _load(folder: str, rank: int) -> dict:
    with open(os.path.join(folder, f"rank{rank}.json"), encoding="utf-8") as file:
        return json.load(file)


def _print(backend: str, size: int, reports: list[dict]) -> None:
    for mode in MODES:
        if mode not in reports[0]:
            continue
        mine = reports[0][mode]
        slowest = max(r[mode]["caller_ms"] for r in reports)
        extra = ""
        if mode == "distributed" and len(reports[0]) == len(MODES):
            own, gathered = reports[0]["own file"], reports[0]["all_gather"]
            extra = (f"  {mine['collectives']:.0f} collectives, {mine['kib']:.1f} KiB a step;"
                     f" total x{mine['total_s'] / own['total_s']:.2f} own file,"
                     f" x{mine['total_s'] / gathered['total_s']:.2f} all_gather")  # fmt: skip
        print(f"{backend:<5} {size:>3} ranks  {mode:<12} caller {mine['caller_ms']:8.2f} ms/step "
              f"(slowest rank {slowest:8.2f})  total {mine['total_s']:7.2f} s  "
              f"cpu {mine['cpu_s']:7.2f} s{extra}", flush=True)  # fmt: skip


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gloo", default="2,4,8,16", help="rank counts over torch gloo")
    parser.add_argument("--mpi", default="2,4,8", help="rank counts under mpiexec ('' none)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--tensors", type=int, default=20)
    parser.add_argument("--size", type=_size, default=16 << 10)
    parser.add_argument("--scalars", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES), help="which of them, in order")
    parser.add_argument("--mpi-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.modes = [m.strip() for m in args.modes.split(",")]
    if not set(args.modes) <= set(MODES):
        parser.error(f"--modes: each of {', '.join(MODES)}")
    if args.mpi_child:
        from mpi4py import MPI

        rank = MPI.COMM_WORLD.Get_rank()
        logdir = os.path.join(args.mpi_child, "logs")
        _rank_main("mpi", args, logdir, os.path.join(args.mpi_child, f"rank{rank}.json"))
        return
    import gpu_summary
    from gpu_summary._backend.numpy import compiled

    kernels = "numba" if compiled.enabled() else "off (the specification)"
    print(f"{platform.node()}: {os.cpu_count()} cpus, Python {platform.python_version()}, "
          f"gpu_summary {gpu_summary.__version__}, compiled host kernels {kernels}; a step: "
          f"{args.tensors} histograms of {args.size} float32 values and {args.scalars} "
          f"scalars a rank, {args.steps} steps")  # fmt: skip
    for backend, counts in (("gloo", args.gloo), ("mpi", args.mpi)):
        for size in [int(n) for n in counts.split(",") if n]:
            with tempfile.TemporaryDirectory() as folder:
                run = _run_torch if backend == "gloo" else _run_mpi
                _print(backend, size, run(size, args, folder))


if __name__ == "__main__":
    main()
