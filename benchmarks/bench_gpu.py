"""GPU benchmark: the CUDA backend against a device copy, the torch (wandb) path and
tensorboardX, same data, same process.

Usage: python benchmarks/bench_gpu.py [--repeat 10] [--sizes 8M,256M] [--tbx-images 100]

Needs a CUDA device, CuPy, PyTorch and tensorboardX. Prints the GPU and library versions, then:

1. Fused histogram (ladder buckets + moments + non-finite counts, one kernel) vs a
   device-to-device copy of the same bytes, in device time (CUDA events): the histogram reads
   N bytes, the copy reads and writes N each, so bandwidth fraction =
   (N / t_histogram) / (2 N / t_copy).
2. Whole round trip (launch, kernel, copy of the result, wait) of our histogram vs the torch
   path wandb uses (``torch.aminmax`` + ``.item()`` + ``torch.histc`` + ``.cpu()``), and vs
   tensorboardX ``add_histogram`` on the CUDA tensor (``flush()`` included for both writers).
3. Host time per ``add_histogram`` / ``add_scalar`` call on device tensors, and the no-sync
   proof: the calls return while a kernel queued before them is still running.
4. Anomaly reports: device time of one report (counts, positions, heat map, exact quantiles)
   vs a fused histogram of the same tensor and vs the torch path a user writes today
   (``isnan``/``isinf`` counts + ``torch.quantile`` on the finite values, each ``.item()``);
   host time per ``add_anomaly`` call with the stream busy (the no-sync proof).
5. Whole-model logging (issue 9): the gradients of a 12-layer transformer's ~200 parameter
   tensors (~110M values): host time per step of one ``add_histograms`` call vs a loop of
   ``add_histogram`` vs tensorboardX's loop vs wandb.watch's method (``torch.histc`` over
   ``min().item()``/``max().item()`` then ``.cpu()``, per tensor); and the step time of a
   real forward/backward/step loop of a 12-layer ``nn.TransformerEncoder`` with and without
   ``gs.watch(model, writer)`` (goal: < 2% added).
6. ``add_pr_curve`` of 10M device predictions: the counting kernel's device time against a
   copy of the predictions, host time per call with the stream busy (goal <= 50 us, no
   sync), and the round trip against torch's writer (which copies the tensors to the host).
7. The seed's 100x2000x2000x4 uint8 batch through ``add_images(max_size=512)`` vs
   tensorboardX ``add_images`` (flush included); ``--tbx-images`` caps tensorboardX's batch
   (its time is then scaled per image, and the line says so).

Ratios are peer time / gpu_summary time (higher is better for gpu_summary); best of
``--repeat`` after one warm-up.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import cupy as cp
import numpy as np
import tensorboardX
import torch

import gpu_summary as gs
from gpu_summary._backend import backend_for

_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""


def device_seconds(launch, repeat: int) -> float:
    """Best device time of ``launch()`` over ``repeat`` runs, by CUDA events on the stream."""
    launch()
    cp.cuda.get_current_stream().synchronize()
    best = float("inf")
    for _ in range(repeat):
        start, end = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        keep = launch()
        end.record()
        end.synchronize()
        best = min(best, cp.cuda.get_elapsed_time(start, end) / 1e3)
        del keep
    return best


def wall_seconds(call, repeat: int) -> float:
    """Best wall time of ``call()`` over ``repeat`` runs, after one warm-up."""
    call()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def size_arg(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


def bench_histograms(n: int, repeat: int) -> None:
    label = f"{n >> 20}M float32"
    x = cp.random.standard_normal(n, dtype=cp.float32)
    backend, device = backend_for(x, "values")
    t_hist = device_seconds(lambda: backend.histogram_fixed(device, None), repeat)
    dst = cp.empty_like(x)
    t_copy = device_seconds(lambda: dst.data.copy_from_device_async(x.data, x.nbytes), repeat)
    fraction = (x.nbytes / t_hist) / (2 * x.nbytes / t_copy)
    print(
        f"fused histogram vs D2D copy   {label:<14} histogram {t_hist * 1e6:9.1f} us "
        f"({x.nbytes / t_hist / 1e9:7.1f} GB/s read)   copy {t_copy * 1e6:9.1f} us "
        f"({2 * x.nbytes / t_copy / 1e9:7.1f} GB/s r+w)   bandwidth fraction {fraction:6.1%}"
    )
    t_even = device_seconds(lambda: backend.histogram_even(device, 64), repeat)
    print(f"even bins (64), two kernels   {label:<14} {t_even * 1e6:9.1f} us device time")

    tensor = torch.as_tensor(x, device="cuda")
    ours = wall_seconds(lambda: backend.histogram_fixed(device, None).result(), repeat)

    def torch_path():
        lo, hi = torch.aminmax(tensor)
        return torch.histc(tensor, bins=64, min=lo.item(), max=hi.item()).cpu()

    theirs = wall_seconds(torch_path, repeat)
    print(
        f"round trip vs torch aminmax+histc {label:<10} ours {ours * 1e3:8.3f} ms   "
        f"torch {theirs * 1e3:8.3f} ms   ratio {theirs / ours:7.2f}x"
    )

    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as tbx_dir:
        writer = gs.SummaryWriter(ours_dir)
        tbx = tensorboardX.SummaryWriter(tbx_dir)

        def ours_call():
            writer.add_histogram("h", tensor)
            writer.flush()

        def tbx_call():
            tbx.add_histogram("h", tensor)
            tbx.flush()

        ours = wall_seconds(ours_call, repeat)
        theirs = wall_seconds(tbx_call, 1 if n > (64 << 20) else repeat)  # slow: seconds a call
        writer.close()
        tbx.close()
    print(
        f"add_histogram vs tensorboardX {label:<14} ours {ours * 1e3:8.3f} ms   "
        f"tensorboardX {theirs * 1e3:9.1f} ms   ratio {theirs / ours:8.1f}x"
    )


def bench_host_time(calls: int) -> None:
    x = cp.random.standard_normal(8 << 20, dtype=cp.float32)
    loss = cp.asarray(0.5, dtype=cp.float32)
    stream = cp.cuda.Stream(non_blocking=True)
    spin = cp.RawKernel(_SPIN, "spin")
    with (
        tempfile.TemporaryDirectory() as logdir,
        gs.SummaryWriter(logdir, max_queue=calls * 4) as writer,
        stream,
    ):
        writer.add_histogram("warm", x)
        writer.add_histogram("warm_even", x, bins=64)
        writer.add_scalar("warm_s", loss)
        writer.flush()
        clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
        for name, call in [
            ("add_histogram (ladder)", lambda i: writer.add_histogram("h", x, i)),
            ("add_histogram (bins=64)", lambda i: writer.add_histogram("e", x, i, bins=64)),
            ("add_scalar (0-d device)", lambda i: writer.add_scalar("s", loss, i)),
        ]:
            spin((1,), (1,), (np.int64(clock_hz * 2),))  # ~2 s of device time queued first
            start = time.perf_counter()
            for i in range(calls):
                call(i)
            elapsed = time.perf_counter() - start
            busy = not stream.done
            print(
                f"host time per call            {name:<24} {elapsed / calls * 1e6:7.1f} us "
                f"over {calls} calls; stream still busy when they returned: {busy}"
            )
            stream.synchronize()
            writer.flush()


def bench_pr_curve(repeat: int, calls: int) -> None:
    """add_pr_curve of 10M device predictions: device time of the counting kernel against a
    copy of the predictions, host time per call with the stream busy (the no-sync proof, goal
    <= 50 us), and the whole round trip against torch's writer on the same CUDA tensors."""
    n = 10_000_000
    labels = cp.random.randint(0, 2, n).astype(cp.bool_)
    scores = cp.random.random(n, dtype=cp.float32)
    backend, p = backend_for(scores, "predictions")
    _, lab = backend_for(labels, "labels")
    kernel = device_seconds(lambda: backend.pr_counts(p, lab, None, 127), repeat)
    copy = device_seconds(lambda: scores.copy(), repeat)
    print(f"pr counts  10M float32 + bool labels: kernel {kernel * 1e6:8.1f} us, copy of the "
          f"predictions {copy * 1e6:8.1f} us ({kernel / copy:5.2f} copies)")  # fmt: skip
    stream = cp.cuda.Stream(non_blocking=True)
    spin = cp.RawKernel(_SPIN, "spin")
    clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
    with tempfile.TemporaryDirectory() as logdir, gs.SummaryWriter(
        logdir, max_queue=calls * 4
    ) as writer, stream:  # fmt: skip
        writer.add_pr_curve("warm", labels, scores, 0)
        writer.flush()
        spin((1,), (1,), (np.int64(clock_hz * 2),))
        start = time.perf_counter()
        for i in range(calls):
            writer.add_pr_curve("pr", labels, scores, i)
        elapsed = time.perf_counter() - start
        busy = not stream.done
        stream.synchronize()
    print(f"host time per call            add_pr_curve (10M)       {elapsed / calls * 1e6:7.1f} us "
          f"over {calls} calls; stream still busy when they returned: {busy}")  # fmt: skip
    t_labels, t_scores = (
        torch.as_tensor(labels, device="cuda"),
        torch.as_tensor(scores, device="cuda"),
    )
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    def ours_round_trip(writer) -> None:
        writer.add_pr_curve("pr", t_labels, t_scores, 0)
        writer.flush()

    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        ours = gs.SummaryWriter(a)
        theirs = TorchWriter(b)
        mine = wall_seconds(lambda: ours_round_trip(ours), repeat)
        torch_time = wall_seconds(lambda: (theirs.add_pr_curve("pr", t_labels, t_scores, 0),
                                           theirs.flush()), repeat)  # fmt: skip
        ours.close()
        theirs.close()
    print(f"add_pr_curve round trip 10M  gpu_summary {mine * 1e3:8.2f} ms   torch "
          f"{torch_time * 1e3:8.2f} ms   ratio {torch_time / mine:6.2f}x")  # fmt: skip


def bench_anomaly(n: int, repeat: int, calls: int) -> None:
    label = f"{n >> 20}M float32"
    x = cp.random.standard_normal(n, dtype=cp.float32)
    backend, device = backend_for(x, "values")
    t_report = device_seconds(lambda: backend.anomaly(device, -4.0, 4.0, 100, 64), repeat)
    t_hist = device_seconds(lambda: backend.histogram_fixed(device, None), repeat)
    tensor = torch.as_tensor(x, device="cuda")
    q = torch.tensor([0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0], device="cuda")

    def torch_path():
        counts = [int(torch.isnan(tensor).sum().item()), int(torch.isinf(tensor).sum().item())]
        finite = tensor[torch.isfinite(tensor)]
        sample = finite if finite.numel() <= (1 << 24) else finite[: 1 << 24]  # quantile's cap
        return counts, torch.quantile(sample, q).cpu()

    ours = wall_seconds(lambda: backend.anomaly(device, -4.0, 4.0, 100, 64).result(), repeat)
    theirs = wall_seconds(torch_path, repeat)
    capped = " (torch.quantile on the first 16M only)" if n > (1 << 24) else ""
    print(
        f"anomaly report {label:<14} device {t_report * 1e6:9.1f} us "
        f"(= {t_report / t_hist:5.2f} fused histograms)   round trip ours {ours * 1e3:8.3f} ms"
        f"   torch isnan/isinf/quantile {theirs * 1e3:8.3f} ms{capped}   ratio "
        f"{theirs / ours:6.2f}x"
    )
    stream = cp.cuda.Stream(non_blocking=True)
    spin = cp.RawKernel(_SPIN, "spin")
    with tempfile.TemporaryDirectory() as logdir, gs.SummaryWriter(logdir) as writer, stream:
        writer.add_anomaly("warm", x, 0, lower=-4, upper=4).result()
        writer.flush()
        clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
        spin((1,), (1,), (np.int64(clock_hz * 2),))
        start = time.perf_counter()
        for i in range(calls):
            writer.add_anomaly("a", x, i, lower=-4, upper=4)
        elapsed = time.perf_counter() - start
        busy = not stream.done
        print(
            f"host time per call            {'add_anomaly':<24} {elapsed / calls * 1e6:7.1f} us "
            f"over {calls} calls; stream still busy when they returned: {busy}"
        )
        stream.synchronize()


def transformer_shapes(layers: int = 12, d: int = 768, ff: int = 3072) -> list[tuple]:
    """Parameter shapes of a BERT-base-like encoder: embeddings, 16 tensors a layer."""
    shapes = [(30522, d), (512, d), (d,), (d,)]
    for _ in range(layers):
        shapes += [(3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,)]
        shapes += [(ff, d), (ff,), (d, ff), (d,), (d,), (d,)]
        shapes += [(d,), (d,), (d,), (d,)]  # the 16 a layer, with the extra norms' weights
    return shapes


def bench_whole_model(repeat: int) -> None:
    shapes = transformer_shapes()
    grads = [torch.randn(shape, device="cuda") for shape in shapes]
    named = [(f"layer{i}", g) for i, g in enumerate(grads)]
    total = sum(g.numel() for g in grads)
    label = f"{len(grads)} tensors, {total / 1e6:.0f}M values"
    with tempfile.TemporaryDirectory() as logdir, gs.SummaryWriter(logdir) as writer:
        writer.add_histograms(named, 0)
        writer.flush()

        def many():
            writer.add_histograms(named)

        def loop():
            for name, g in named:
                writer.add_histogram(name, g)

        t_many = wall_seconds(many, repeat)
        t_loop = wall_seconds(loop, repeat)
        writer.flush()
        torch.cuda.synchronize()
        start = time.perf_counter()
        many()
        writer.flush()
        t_many_done = time.perf_counter() - start

    def wandb_method():
        for g in grads:
            lo, hi = g.min().item(), g.max().item()
            torch.histc(g, bins=64, min=lo, max=hi).cpu()

    t_wandb = wall_seconds(wandb_method, repeat)
    with tempfile.TemporaryDirectory() as tbx_dir:
        tbx = tensorboardX.SummaryWriter(tbx_dir)
        subset = named[:20]
        start = time.perf_counter()
        for name, g in subset:
            tbx.add_histogram(name, g)
        tbx.flush()
        sub_values = sum(g.numel() for _, g in subset)
        t_tbx = (time.perf_counter() - start) * total / sub_values  # scaled by values
        tbx.close()
    print(
        f"whole model gradients {label}: host time per step   add_histograms "
        f"{t_many * 1e3:8.3f} ms   add_histogram loop {t_loop * 1e3:8.3f} ms "
        f"(x{t_loop / t_many:5.1f})   wandb histc+item {t_wandb * 1e3:9.2f} ms "
        f"(x{t_wandb / t_many:6.1f})   tensorboardX {t_tbx * 1e3:9.1f} ms (x{t_tbx / t_many:7.1f},"
        f" scaled from {len(subset)} tensors)   one call to flushed {t_many_done * 1e3:8.2f} ms"
    )

    model = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(768, 12, 3072, batch_first=True), num_layers=12
    ).cuda()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = torch.randn(16, 128, 768, device="cuda")

    def train(steps: int) -> float:
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            loss = model(batch).float().pow(2).mean()
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            optimizer.step()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps

    train(3)
    plain = min(train(10) for _ in range(3))
    with tempfile.TemporaryDirectory() as logdir, gs.SummaryWriter(logdir) as writer:
        watched = gs.watch(model, writer, log="gradients")
        train(3)
        logged = min(train(10) for _ in range(3))
        writer.flush()
        watched.remove()
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"training step, 12-layer TransformerEncoder ({n_params / 1e6:.0f}M params, batch "
        f"16x128): plain {plain * 1e3:8.2f} ms   with gs.watch(gradients) {logged * 1e3:8.2f} ms"
        f"   added {100 * (logged - plain) / plain:6.2f}%"
    )


def bench_images(n_ours: int, n_tbx: int) -> None:
    shape = (n_ours, 2000, 2000, 4)
    batch = cp.random.randint(0, 256, shape, dtype=cp.uint8)
    tensor = torch.as_tensor(batch, device="cuda")
    with tempfile.TemporaryDirectory() as ours_dir, tempfile.TemporaryDirectory() as tbx_dir:
        writer = gs.SummaryWriter(ours_dir)
        writer.add_images("warm", batch[:2], 0, max_size=512, dataformats="NHWC")
        writer.flush()
        start = time.perf_counter()
        writer.add_images("seed", batch, 0, max_size=512, dataformats="NHWC")
        returned = time.perf_counter() - start
        writer.flush()
        ours = time.perf_counter() - start
        writer.close()
        tbx = tensorboardX.SummaryWriter(tbx_dir)
        start = time.perf_counter()
        tbx.add_images("seed", tensor[:n_tbx], 0, dataformats="NHWC")
        tbx.flush()
        theirs = time.perf_counter() - start
        tbx.close()
    scaled = theirs * n_ours / n_tbx
    note = "" if n_tbx == n_ours else f" (measured on {n_tbx} images, scaled x{n_ours / n_tbx:g})"
    print(
        f"seed image batch {shape}  ours {ours:7.3f} s (caller {returned * 1e3:.1f} ms)   "
        f"tensorboardX {scaled:8.2f} s{note}   ratio {scaled / ours:7.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--sizes", default="8M,256M")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--tbx-images", type=int, default=100)
    args = parser.parse_args()
    props = cp.cuda.runtime.getDeviceProperties(0)
    print(f"gpu: {props['name'].decode()}  sms={props['multiProcessorCount']}")
    print(
        f"cuda runtime {cp.cuda.runtime.runtimeGetVersion()}  driver "
        f"{cp.cuda.runtime.driverGetVersion()}  cupy {cp.__version__}  torch {torch.__version__}"
        f"  numpy {np.__version__}  tensorboardX {tensorboardX.__version__}  "
        f"python {platform.python_version()}"
    )
    for size in args.sizes.split(","):
        bench_histograms(size_arg(size), args.repeat)
    bench_host_time(args.calls)
    bench_anomaly(size_arg(args.sizes.split(",")[0]), args.repeat, min(args.calls, 100))
    bench_pr_curve(args.repeat, min(args.calls, 200))
    bench_whole_model(args.repeat)
    bench_images(args.images, min(args.images, args.tbx_images))


if __name__ == "__main__":
    main()
