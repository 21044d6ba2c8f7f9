"""CPU benchmark: gpu_summary's host backend against torch's writer and tensorboardX, same data,
same process, each peer at its fastest; wall time and process CPU (every thread's) beside it.

Usage: python benchmarks/bench_cpu.py [--repeat 5] [--only histogram,model,images,image,...]

Every case times the whole job of each writer on a fresh log folder: the calls and ``close()``
(tensorboardX's ``flush()`` does not write its queue, so all three are timed through
``close()``; gpu_summary's caller-thread time is printed beside its total). tensorboardX runs
with the ``crc32c`` package installed (its fast checksum; the script says whether it is), torch's
writer in this environment without TensorFlow (its fast path). The best of ``--repeat`` runs
after one untimed warm-up run is used for each; ratios are peer time / gpu_summary time (higher
is better for gpu_summary). For the histogram the time of one read of the data (``x.sum()``)
is printed as the floor no reduction can beat, and gpu_summary's time as a multiple of it.
Needs the ``bench`` extra (tensorboardX, crc32c) and torch.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import tempfile
import time

import google.protobuf
import numpy as np
import tensorboardX

import gpu_summary as gs
from gpu_summary._backend.numpy import compiled


def _peers():
    peers = [("gpu_summary", gs.SummaryWriter), ("tensorboardX", tensorboardX.SummaryWriter)]
    try:
        from torch.utils.tensorboard import SummaryWriter as TorchWriter
    except ImportError:
        print("  (torch is not installed: its writer is left out)")
    else:
        peers.append(("torch", TorchWriter))
    return peers


PEERS = None


def _best(make, call, repeat, options):
    """(best total seconds through close(), best seconds until the calls returned, best
    process CPU seconds through close(): every thread's)."""
    totals, callers, cpus = [], [], []
    for run in range(repeat + 1):  # run 0 warms up (imports, caches, the cell table)
        with tempfile.TemporaryDirectory() as logdir:
            writer = make(logdir, **options)
            start, cpu = time.perf_counter(), time.process_time()
            call(writer)
            returned = time.perf_counter()
            writer.close()
            end, cpu_end = time.perf_counter(), time.process_time()
            if run:
                totals.append(end - start)
                callers.append(returned - start)
                cpus.append(cpu_end - cpu)
    return min(totals), min(callers), min(cpus)


def bench(name, data_desc, call, repeat, peer_call=None, options=None):
    """Time ``call(writer)`` on each writer (``peer_call`` for the peers, when it differs),
    each made with the constructor's keyword ``options``."""
    results = {}
    for label, writer_type in PEERS:
        chosen = call if label == "gpu_summary" or peer_call is None else peer_call
        results[label] = _best(writer_type, chosen, repeat, options or {})
    ours = results["gpu_summary"]
    text = "   ".join(
        f"{label} {total * 1e3:8.1f} ms ({total / ours[0]:5.2f}x, cpu {cpu * 1e3:.1f} ms "
        f"{cpu / ours[2]:5.2f}x)"
        for label, (total, _, cpu) in results.items()
        if label != "gpu_summary"
    )
    print(f"{name:<30} {data_desc:<24} gpu_summary {ours[0] * 1e3:8.2f} ms "
          f"(caller {ours[1] * 1e3:7.2f} ms, cpu {ours[2] * 1e3:.1f} ms)   {text}")  # fmt: skip
    return ours[0]


def one_read(values, repeat):
    """Best time of ``values.sum()``: one read of the data, the floor of any reduction."""
    times = []
    for _ in range(repeat + 1):
        start = time.perf_counter()
        values.sum()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def bench_pr_curve(repeat: int) -> None:
    """add_pr_curve of 10M predictions (float32, 0/1 labels, default 127 thresholds); torch's
    writer runs TensorBoard's compute_curve (two weighted numpy.histogram passes)."""
    rng = np.random.default_rng(1)
    n = 10_000_000
    labels = rng.integers(0, 2, n)
    predictions = rng.random(n, dtype=np.float32)
    bench("add_pr_curve", "10M float32, 0/1 labels",
          lambda w: w.add_pr_curve("pr", labels, predictions, 0), repeat)  # fmt: skip


def _smooth(shape):
    """Smooth content: products of slow sines over the last two spatial axes, as uint8."""
    *_, height, width = shape
    image = (np.sin(np.linspace(0, 20, height))[:, None]
             * np.cos(np.linspace(0, 9, width))[None, :] * 127 + 128)  # fmt: skip
    return np.ascontiguousarray(np.broadcast_to(image, shape)).astype(np.uint8)


def _model(rng):
    """60 tensors, about 5M float32 values: 30 layers of a weight and a bias."""
    shapes = []
    for layer in range(30):
        width = 256 + 32 * (layer % 8)
        shapes += [(width, 453), (width,)]
    return [(f"layer{k // 2}/{'weight' if k % 2 == 0 else 'bias'}",
             (rng.standard_normal(shape) * 0.05).astype(np.float32))
            for k, shape in enumerate(shapes)]  # fmt: skip


CASES = ("histogram", "histogram_even", "model", "images", "image", "scalars", "pr_curve")


def main() -> None:
    global PEERS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default=",".join(CASES), help="cases, comma-separated")
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
        f"python {platform.python_version()}"
    )
    has_crc32c = importlib.util.find_spec("crc32c") is not None
    print(
        f"numpy {np.__version__}  protobuf {google.protobuf.__version__}  "
        f"tensorboardX {tensorboardX.__version__} (crc32c package "
        f"{'installed: its fast checksum' if has_crc32c else 'MISSING: pip install crc32c'})  "
        f"gpu_summary {gs.__version__}  compiled host kernels: "
        f"{'numba' if compiled.prepare() else 'off (the NumPy specification runs)'}"
    )
    PEERS = _peers()
    print("all writers timed through close(); ratios: peer / gpu_summary")
    rng = np.random.default_rng(0)

    if "histogram" in only:
        values = rng.standard_normal(8 << 20).astype(np.float32)
        ours = bench(
            "add_histogram, default bins",
            "8M float32",
            lambda w: w.add_histogram("h", values, 0),
            args.repeat,
        )
        floor = one_read(values, args.repeat)
        print(f"  one read of the data (x.sum()) {floor * 1e3:.2f} ms: gpu_summary takes "
              f"{ours / floor:.1f} reads")  # fmt: skip

    if "histogram_even" in only:
        values = rng.standard_normal(8 << 20).astype(np.float32)
        bench("add_histogram, bins=30", "8M float32",
              lambda w: w.add_histogram("h", values, 0, bins=30), args.repeat)  # fmt: skip

    if "model" in only:
        model = _model(rng)
        total = sum(t.size for _, t in model)

        def one_by_one(w):
            for name, tensor in model:
                w.add_histogram(name, tensor, 0)

        bench("whole model, add_histograms", f"{len(model)} tensors, {total / 1e6:.1f}M",
              lambda w: w.add_histograms(model, 0), args.repeat, peer_call=one_by_one)  # fmt: skip
        floor = one_read(np.concatenate([t.ravel() for _, t in model]), args.repeat)
        print(f"  one read of the data {floor * 1e3:.2f} ms; peers: a loop of add_histogram")

    if "images" in only:
        batch = rng.integers(0, 256, (16, 3, 512, 512), dtype=np.uint8)
        bench("add_images, random pixels", "16x3x512x512 uint8",
              lambda w: w.add_images("img", batch, 0), args.repeat)  # fmt: skip
        smooth = _smooth((16, 3, 512, 512))
        bench("add_images, smooth", "16x3x512x512 uint8",
              lambda w: w.add_images("img", smooth, 0), args.repeat)  # fmt: skip

    if "image" in only:
        big = rng.integers(0, 256, (3, 2000, 2000), dtype=np.uint8)
        bench("add_image, random pixels", "3x2000x2000 uint8",
              lambda w: w.add_image("img", big, 0), args.repeat)  # fmt: skip
        smooth = _smooth((3, 2000, 2000))
        bench("add_image, smooth", "3x2000x2000 uint8",
              lambda w: w.add_image("img", smooth, 0), args.repeat)  # fmt: skip

    if "scalars" in only:
        n = 20_000

        def scalars(w):
            for i in range(n):
                w.add_scalar("loss", float(i), i)

        # every writer with room for all of them queued (max_queue=100_000), as each is fastest
        bench("add_scalar, max_queue=100000", f"{n} calls", scalars, args.repeat,
              options={"max_queue": 100_000})  # fmt: skip

    if "pr_curve" in only:
        bench_pr_curve(args.repeat)


if __name__ == "__main__":
    main()
