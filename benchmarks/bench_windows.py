"""window=K against logging every step, same data, same process.

Usage: python benchmarks/bench_windows.py [--steps 2000] [--window 100] [--require-device]

For each case the work per step is the process's CPU time (the caller's thread and the
writer thread together) through ``flush()``, divided by the steps; the caller's wall time per
step is printed beside it. Ratios are every-step / windowed (higher is better for windows).
On a machine with a CUDA GPU and CuPy, the device cases also run, and report the host time
per step and how many device-to-host copies happened between two windows' ends.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import numpy as np

import gpu_summary as gs
from gpu_summary._backend.numpy import compiled


def measure(log, steps: int, window: int | None) -> tuple[float, float]:
    """(CPU seconds per step through flush, caller seconds per step), best of 3."""
    best = (float("inf"), float("inf"))
    for _ in range(3):
        with tempfile.TemporaryDirectory() as logdir:
            writer = gs.SummaryWriter(logdir, max_queue=steps * 2 + 16)
            log(writer, 0, window)  # warm-up step (and a window opened)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for step in range(1, steps + 1):
                log(writer, step, window)
            caller = time.perf_counter() - wall0
            writer.flush()
            cpu = time.process_time() - cpu0
            writer.close()
        best = (min(best[0], cpu / steps), min(best[1], caller / steps))
    return best


def report(name: str, log, steps: int, window: int) -> None:
    every = measure(log, steps, None)
    windowed = measure(log, steps, window)
    print(f"{name:<40} every step {every[0] * 1e6:9.1f} us cpu ({every[1] * 1e6:8.1f} caller)"
          f"   window={window} {windowed[0] * 1e6:9.1f} us cpu ({windowed[1] * 1e6:8.1f} "
          f"caller)   ratio {every[0] / windowed[0]:5.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument(
        "--require-device",
        action="store_true",
        help="exit non-zero when the device cases cannot run (benchmarks/gpu_check.sh)",
    )
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} cpus={os.cpu_count()} python "
        f"{platform.python_version()} numpy {np.__version__} gpu_summary {gs.__version__} "
        f"compiled host kernels: {'numba' if compiled.prepare() else 'off'}"
    )
    rng = np.random.default_rng(0)

    def scalar(writer, step, window):
        writer.add_scalar("loss", 1.0 / (step + 1), step, window=window)

    report("add_scalar (a Python float)", scalar, args.steps * 10, args.window)
    grads = rng.standard_normal(1 << 16).astype(np.float32)

    def histogram(writer, step, window):
        writer.add_histogram("grad", grads, step, window=window)

    report("add_histogram (64K float32, host)", histogram, args.steps // 4, args.window)
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() < 1:
            raise RuntimeError("no GPU")
    except Exception as exc:  # noqa: BLE001 - no CuPy or no device: say so, run the rest
        print(f"device cases skipped: {type(exc).__name__}: {exc}")
        if args.require_device:
            raise SystemExit(
                "bench_windows: --require-device, and the device cases cannot run"
            ) from None
        return
    device = cp.asarray(rng.standard_normal(8 << 20).astype(np.float32))
    loss = cp.asarray(np.float32(0.5))

    def device_histogram(writer, step, window):
        writer.add_histogram("grad", device, step, window=window)

    def device_scalar(writer, step, window):
        writer.add_scalar("loss", loss, step, window=window)

    report("add_histogram (8M float32, device)", device_histogram, args.steps, args.window)
    report("add_scalar (0-d device tensor)", device_scalar, args.steps, args.window)


if __name__ == "__main__":
    main()
