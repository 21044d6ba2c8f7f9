"""CPU benchmark: gpu_summary's NumPy backend against tensorboardX, same data, same process.

Usage: python benchmarks/bench_cpu.py [--repeat 5]

``add_pr_curve`` is also timed against torch's writer (ratios: peer time / ours), through
``close()`` for the peers, whose ``flush()`` may leave their queue unwritten.

Each case times the whole job of both writers, ``flush()`` included, so work deferred to a
background thread is counted too; the caller-thread time of gpu_summary is printed beside it.
Ratios are tensorboardX time / gpu_summary time (higher is better for gpu_summary); the best of
``--repeat`` runs (after one untimed warm-up run) is used for both. Needs the ``bench`` extra
(tensorboardX).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import google.protobuf
import numpy as np
import tensorboardX

import gpu_summary as gs


def _timed(writer, call):
    """(total seconds including flush, seconds until the calls returned)."""
    start = time.perf_counter()
    call(writer)
    returned = time.perf_counter()
    writer.flush()
    end = time.perf_counter()
    return end - start, returned - start


def bench(name, data_desc, call, repeat):
    """Time ``call(writer)`` on each peer's writer (the two share these method names)."""
    results = {}
    for label, make in (
        ("gpu_summary", lambda d: gs.SummaryWriter(d, max_queue=100_000)),
        ("tensorboardX", lambda d: tensorboardX.SummaryWriter(d, max_queue=100_000)),
    ):
        totals, callers = [], []
        for run in range(repeat + 1):  # run 0 warms up (imports, caches, the cell table)
            with tempfile.TemporaryDirectory() as logdir:
                writer = make(logdir)
                total, caller = _timed(writer, call)
                writer.close()
                if run:
                    totals.append(total)
                    callers.append(caller)
        results[label] = (min(totals), min(callers))
    ours, theirs = results["gpu_summary"], results["tensorboardX"]
    print(
        f"{name:<34} {data_desc:<22} gpu_summary {ours[0] * 1e3:9.2f} ms "
        f"(caller {ours[1] * 1e3:8.2f} ms)   tensorboardX {theirs[0] * 1e3:9.2f} ms   "
        f"ratio {theirs[0] / ours[0]:6.2f}x"
    )
    return ours[0]


def bench_pr_curve(repeat: int) -> None:
    """add_pr_curve of 10M predictions (float32, 0/1 labels, default 127 thresholds) against
    torch's writer (which runs TensorBoard's compute_curve: two weighted numpy.histogram
    passes) and tensorboardX's, flush included."""
    rng = np.random.default_rng(1)
    n = 10_000_000
    labels = rng.integers(0, 2, n)
    predictions = rng.random(n, dtype=np.float32)
    peers = [("gpu_summary", lambda d: gs.SummaryWriter(d)),
             ("tensorboardX", lambda d: tensorboardX.SummaryWriter(d))]  # fmt: skip
    try:
        from torch.utils.tensorboard import SummaryWriter as TorchWriter

        peers.append(("torch", lambda d: TorchWriter(d)))
    except ImportError:
        print("  (torch is not installed: its writer is left out)")
    best = {}
    for label, make in peers:
        times = []
        for run in range(repeat + 1):
            with tempfile.TemporaryDirectory() as logdir:
                writer = make(logdir)
                start = time.perf_counter()
                writer.add_pr_curve("pr", labels, predictions, 0)
                writer.flush()
                if label != "gpu_summary":
                    writer.close()  # tensorboardX's flush() leaves its queue; close writes it
                elapsed = time.perf_counter() - start
                if label == "gpu_summary":
                    writer.close()
                if run:
                    times.append(elapsed)
        best[label] = min(times)
    ours = best["gpu_summary"]
    peers_text = "   ".join(f"{k} {v * 1e3:8.1f} ms ({v / ours:5.2f}x)" for k, v in best.items()
                            if k != "gpu_summary")  # fmt: skip
    print(f"{'add_pr_curve':<34} {'10M float32, 0/1':<22} gpu_summary {ours * 1e3:9.2f} ms   "
          f"{peers_text}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python {platform.python_version()}"
    )
    print(
        f"numpy {np.__version__}  protobuf {google.protobuf.__version__}  "
        f"tensorboardX {tensorboardX.__version__}  gpu_summary {gs.__version__}"
    )
    rng = np.random.default_rng(0)

    values = rng.standard_normal(8 << 20).astype(np.float32)
    bench(
        "histogram, default buckets",
        "8M float32",
        lambda w: w.add_histogram("h", values, 0),
        args.repeat,
    )

    n = 20_000
    bench(
        "scalars",
        f"{n} add_scalar calls",
        lambda w: [w.add_scalar("loss", float(i), i) for i in range(n)],
        args.repeat,
    )

    batch = rng.integers(0, 256, (16, 512, 512, 3), dtype=np.uint8)
    bench(
        "image batch",
        "16x512x512x3 uint8",
        lambda w: w.add_images("img", batch, 0, dataformats="NHWC"),
        args.repeat,
    )
    # A small model's worth of weights (40 tensors, about 1.1M values): one add_histograms
    # call against the same histograms one add_histogram at a time (tensorboardX's only way).
    model = [(f"layer{i // 2}/{'weight' if i % 2 == 0 else 'bias'}",
              rng.standard_normal((256, 108) if i % 2 == 0 else 256).astype(np.float32))
             for i in range(40)]  # fmt: skip

    def one_by_one(w):
        for name, tensor in model:
            w.add_histogram(name, tensor, 0)

    loop = bench("40 tensors, add_histogram each", "~1.1M float32 total", one_by_one, args.repeat)
    together = bench(
        "40 tensors, one add_histograms call",
        "~1.1M float32 total",
        lambda w: w.add_histograms(model, 0) if isinstance(w, gs.SummaryWriter) else one_by_one(w),
        args.repeat,
    )
    print(f"  add_histograms {together * 1e3:.2f} ms vs a loop of add_histogram {loop * 1e3:.2f} ms"
          " on the CPU backend: the same reductions (one launch per group on a GPU)")  # fmt: skip
    smooth = (
        np.sin(np.linspace(0, 20, 512))[None, :, None, None]
        * np.cos(np.linspace(0, 9, 512))[None, None, :, None]
        * 127
        + 128
    )
    smooth = np.broadcast_to(smooth, (16, 512, 512, 3)).astype(np.uint8)
    bench(
        "image batch (smooth content)",
        "16x512x512x3 uint8",
        lambda w: w.add_images("img", smooth, 0, dataformats="NHWC"),
        args.repeat,
    )
    bench_pr_curve(args.repeat)


if __name__ == "__main__":
    main()
