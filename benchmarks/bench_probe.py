"""What a probe costs: per call on the host path against add_histogram (ours and torch's) of the
same tensor, inside a compiled function against the same function without probes, and on a
GPU the probe's kernel against a device-to-device copy of the tensor.

Usage: python benchmarks/bench_probe.py [--calls 400] [--device-only] [--require-device]

Host figures are per call: the process's CPU time (every thread: the caller's and the
writer's, through ``collect``/``flush``) and the caller's wall time beside it, best of 3. A
probe's record is written at ``collect``; ``add_histogram`` writes one record per call, so the
comparison is "log every call's values": a probe adds, add_histogram bins and writes. Device
figures come from CUDA events around many launches on one stream.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import torch

import gpu_summary as gs
from gpu_summary._backend.numpy import compiled

SIZES = (1 << 12, 1 << 16, 1 << 20)


def _best(run, calls: int) -> tuple[float, float]:
    """(CPU seconds per call, caller wall seconds per call), best of 3."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        cpu, wall = run(calls)
        best = (min(best[0], cpu / calls), min(best[1], wall / calls))
    return best


def _timed(body, finish) -> tuple[float, float]:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    body()
    wall = time.perf_counter() - wall0
    finish()
    return time.process_time() - cpu0, wall


def host_probe(x: torch.Tensor):
    def run(calls: int) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as logdir:
            writer = gs.SummaryWriter(logdir)
            probe = writer.probe("x")
            probe(x)
            writer.collect(0)

            def body() -> None:
                for _ in range(calls):
                    probe(x)

            def finish() -> None:
                writer.collect(1)
                writer.flush()

            result = _timed(body, finish)
            writer.close()
        return result

    return run


def host_add_histogram(x: torch.Tensor, writer_class):
    def run(calls: int) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as logdir:
            writer = writer_class(logdir)
            writer.add_histogram("x", x, 0)

            def body() -> None:
                for step in range(calls):
                    writer.add_histogram("x", x, step)

            result = _timed(body, writer.flush)
            writer.close()
        return result

    return run


def compiled_step(with_probes: bool):
    """A compiled two-layer step, with or without two probes, and its writer."""
    logdir = tempfile.mkdtemp()
    writer = gs.SummaryWriter(logdir)
    probes = [writer.probe("hidden"), writer.probe("out")]
    weight = torch.randn(256, 256)

    def step(x):
        hidden = torch.relu(x @ weight)
        if with_probes:
            probes[0](hidden)
        out = torch.tanh(hidden @ weight)
        if with_probes:
            probes[1](out)
        return out.sum()

    function = torch.compile(step, fullgraph=True)

    def run(calls: int) -> tuple[float, float]:
        x = torch.randn(64, 256)
        function(x)

        def body() -> None:
            for _ in range(calls):
                function(x)

        def finish() -> None:
            writer.collect(0)
            writer.flush()

        return _timed(body, finish)

    return run


def device(calls: int) -> None:
    """The probe's kernel time against a device-to-device copy of the same tensor."""
    with tempfile.TemporaryDirectory() as logdir:
        writer = gs.SummaryWriter(logdir)
        probe = writer.probe("x")
        for size in (1 << 16, 1 << 20, 1 << 24, 1 << 26):
            x = torch.randn(size, device="cuda")
            copy = torch.empty_like(x)
            probe(x)
            writer.collect(0)
            times = {}
            launches = (("probe", lambda x=x: probe(x)), ("copy", lambda x=x, c=copy: c.copy_(x)))
            for name, launch in launches:
                launch()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(
                    enable_timing=True)  # fmt: skip
                start.record()
                for _ in range(calls):
                    launch()
                end.record()
                end.synchronize()
                times[name] = start.elapsed_time(end) / calls * 1e3  # microseconds
            writer.collect(1)
            ratio = times["probe"] / times["copy"]
            print(f"device float32 {size:>9}  probe {times['probe']:8.1f} us   d2d copy "
                  f"{times['copy']:8.1f} us   probe/copy {ratio:5.2f}x")  # fmt: skip
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--require-device", action="store_true",
                        help="exit non-zero when no CUDA device is here")  # fmt: skip
    parser.add_argument("--device-only", action="store_true",
                        help="only the device figures (benchmarks/gpu_check.sh)")  # fmt: skip
    args = parser.parse_args()
    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python "
          f"{platform.python_version()} torch {torch.__version__} gpu_summary {gs.__version__} "
          f"compiled host kernels: {'numba' if compiled.prepare() else 'off'}")  # fmt: skip
    torch.set_num_threads(1)  # the peers' and the compiled step's own pools out of the picture
    if not args.device_only:
        host(args.calls)
    if torch.cuda.is_available():
        device(args.calls)
    elif args.require_device:
        raise SystemExit("no CUDA device: the device figures need one")
    else:
        print("device: no CUDA device here (the kernel time needs a GPU run)")


def host(calls_per_4k: int) -> None:
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    for size in SIZES:
        x = torch.randn(size)
        calls = max(100, calls_per_4k * (1 << 12) // size)
        probe = _best(host_probe(x), calls)
        ours = _best(host_add_histogram(x, gs.SummaryWriter), calls)
        theirs = _best(host_add_histogram(x, TorchWriter), max(10, calls // 4))
        print(f"host float32 {size:>8}  probe {probe[0] * 1e6:9.1f} us cpu ({probe[1] * 1e6:8.1f} "
              f"caller)   add_histogram {ours[0] * 1e6:9.1f} us cpu   torch's "
              f"{theirs[0] * 1e6:9.1f} us cpu   add_histogram/probe {ours[0] / probe[0]:5.2f}x  "
              f"torch/probe {theirs[0] / probe[0]:5.2f}x")  # fmt: skip
    plain = _best(compiled_step(False), calls_per_4k)
    probed = _best(compiled_step(True), calls_per_4k)
    added = (probed[0] - plain[0]) * 1e6
    print(f"compiled step (64x256, two probes)  without {plain[0] * 1e6:8.1f} us cpu   with "
          f"{probed[0] * 1e6:8.1f} us cpu   added {added:8.1f} us a step")  # fmt: skip


if __name__ == "__main__":
    main()
