"""Distributed overhead: a rank-0-aggregated SummaryWriter against a plain one, same process.

Usage: python benchmarks/bench_distributed.py [--ranks 2] [--calls 200] [--size 1M]

Starts ``--ranks`` processes on 127.0.0.1 (torch.distributed, gloo). Each rank times ``--calls``
``add_histogram`` calls on its own shard (float32, host memory), ``flush()`` included, with a
plain writer (in its own logdir) and with ``distributed="torch"``; rank 0 prints both and the
ratio, and the same for ``add_scalar``. Needs PyTorch.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import time

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _timed(writer, call, calls: int) -> float:
    call(writer, -1)  # warm-up
    writer.flush()
    start = time.perf_counter()
    for i in range(calls):
        call(writer, i)
    writer.flush()
    return (time.perf_counter() - start) / calls


def _rank(rank: int, size: int, port: int, calls: int, n: int, logdir: str) -> None:
    import torch.distributed as dist

    import gpu_summary as gs

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=size)  # fmt: skip
    values = np.random.default_rng(rank).standard_normal(n).astype(np.float32)
    cases = {
        "add_histogram": lambda w, i: w.add_histogram("h", values, i),
        "add_histogram bins=64": lambda w, i: w.add_histogram("e", values, i, bins=64),
        "add_scalar": lambda w, i: w.add_scalar("s", float(i), i),
    }
    for name, call in cases.items():
        with gs.SummaryWriter(os.path.join(logdir, f"plain{rank}")) as writer:
            plain = _timed(writer, call, calls)
        dist.barrier()
        with gs.SummaryWriter(os.path.join(logdir, "merged"), distributed="torch") as writer:
            merged = _timed(writer, call, calls)
        if rank == 0:
            print(
                f"{name:<22} {size} ranks x {n >> 20}M float32   plain {plain * 1e3:8.3f} ms/call"
                f"   distributed {merged * 1e3:8.3f} ms/call   overhead x{merged / plain:6.2f}",
                flush=True,
            )
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--size", default="1M")
    args = parser.parse_args()
    units = {"K": 1 << 10, "M": 1 << 20}
    n = int(args.size[:-1]) * units[args.size[-1]] if args.size[-1] in units else int(args.size)
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")  # ranks share the cores: no BLAS thread pools
    print(f"cpus {os.cpu_count()}; each rank logs {args.calls} calls after one warm-up")
    port = _free_port()
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as logdir:
        ranks = [
            context.Process(target=_rank, args=(r, args.ranks, port, args.calls, n, logdir))
            for r in range(args.ranks)
        ]
        for process in ranks:
            process.start()
        for process in ranks:
            process.join()


if __name__ == "__main__":
    main()
