"""On a GPU (marked ``gpu``): every call that takes a device tensor returns while the device is
busy, and the hazards the CPU stand-in cannot show (tests/test_cuda_hazards.py holds their
logic): a real graph capture, a freed tensor's block reused by PyTorch's caching allocator,
JAX's stream, CuPy's per-thread default stream, and CUDA after fork.

The no-sync proof: a kernel that spins for about half a second is queued on the stream first;
the call under test, queued behind it, must come back while that stream is still busy
(``stream.done`` is False). Nothing here times a call against a bound.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

from conftest import _cuda_available, legacy_reader, plugin_reader
from support.require_gpu import skip_peer

HAS_TORCH = importlib.util.find_spec("torch") is not None
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device and CuPy"),
]
_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""


def _spin(cp, seconds: float = 0.5) -> None:
    """Queue a kernel that keeps the current stream busy for about ``seconds``."""
    kernel = cp.RawKernel(_SPIN, "spin")
    clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
    kernel((1,), (1,), (np.int64(clock_hz * seconds),))


def _calls(cp):
    """(name, log(writer, step)) for every public call that reduces a device tensor."""
    values = cp.random.standard_normal(1 << 20, dtype=cp.float32)
    images = cp.random.random((4, 3, 64, 64), dtype=cp.float32)
    video = cp.random.random((1, 4, 3, 32, 32), dtype=cp.float32)
    labels = cp.random.random(1 << 16) > 0.5
    predictions = cp.random.random(1 << 16, dtype=cp.float32)
    return {
        "add_scalar": lambda w, s: w.add_scalar("scalar", values[0], s),
        "add_scalar window": lambda w, s: w.add_scalar("window", values[1], s, window=4),
        "add_scalars": lambda w, s: w.add_scalars("main", {"a": values[2], "b": values[3]}, s),
        "add_histogram": lambda w, s: w.add_histogram("ladder", values, s),
        "add_histogram bins=64": lambda w, s: w.add_histogram("even", values, s, bins=64),
        "add_histogram edges": lambda w, s: w.add_histogram(
            "edges", values, s, bins=np.linspace(-3, 3, 17)
        ),
        "add_histogram auto": lambda w, s: w.add_histogram("auto", values, s, bins="auto"),
        "add_histogram window": lambda w, s: w.add_histogram("window", values, s, window=4),
        "add_histograms": lambda w, s: w.add_histograms({"a": values, "b": values[::3]}, s),
        "add_histograms window": lambda w, s: w.add_histograms(
            {"a": values, "b": values[::3]}, s, prefix="win/", window=4
        ),
        "add_images": lambda w, s: w.add_images("images", images, s),
        "add_image max_size": lambda w, s: w.add_image("image", images[0], s, max_size=16),
        "add_video": lambda w, s: w.add_video("video", video, s),
        "add_pr_curve": lambda w, s: w.add_pr_curve("pr", labels, predictions, s),
        "add_anomaly": lambda w, s: w.add_anomaly("anomaly", values, s),
    }


_CALL_NAMES = (
    "add_scalar", "add_scalar window", "add_scalars", "add_histogram", "add_histogram bins=64",
    "add_histogram edges", "add_histogram auto", "add_histogram window", "add_histograms",
    "add_histograms window", "add_images", "add_image max_size", "add_video", "add_pr_curve",
    "add_anomaly",
)  # fmt: skip


def _returns_while_busy(tmp_path, names: tuple[str, ...]) -> None:
    import cupy as cp

    import gpu_summary as gs

    stream = cp.cuda.Stream(non_blocking=True)
    with stream, gs.SummaryWriter(tmp_path) as writer:
        calls = _calls(cp)
        for name in names:
            calls[name](writer, 0)  # compiles and warms every pool
        writer.flush()
        stream.synchronize()
        _spin(cp, 0.3)
        for step in range(1, 5):  # steps 1-4: a window of 4 ends, and copies, while busy
            for name in names:
                calls[name](writer, step)
        assert not stream.done, f"{names} waited for the device"
    runs = {path.parent for path in tmp_path.rglob("events.out.tfevents.*")}  # add_scalars: 2
    assert all(plugin_reader(run).Tags()["tensors"] for run in runs), f"{names} logged nothing"


@pytest.mark.parametrize("name", _CALL_NAMES)
def test_every_call_returns_while_the_stream_is_busy(tmp_path, name):
    _returns_while_busy(tmp_path, (name,))


def test_calls_return_while_busy_with_cupys_pinned_pool_turned_off(tmp_path):
    """A user's setting: with CuPy's pinned pool off, CuPy frees pinned memory on every drop
    (``cudaFreeHost``, a device sync); our copies use a pool of their own."""
    import cupy as cp

    cp.cuda.set_pinned_memory_allocator(None)
    try:
        _returns_while_busy(tmp_path, ("add_histogram", "add_images", "add_histogram window"))
    finally:
        cp.cuda.set_pinned_memory_allocator(cp.get_default_pinned_memory_pool().malloc)


@pytest.mark.parametrize("reduce", [None, "pca"])
def test_add_embedding_waits_only_for_its_own_copies(tmp_path, reduce):
    """add_embedding's files are on disk when it returns (as torch's are): it waits for its
    own result's copy on the matrix's stream, never for the device."""
    import cupy as cp

    import gpu_summary as gs

    busy, own = cp.cuda.Stream(non_blocking=True), cp.cuda.Stream(non_blocking=True)
    with own:
        matrix = cp.random.standard_normal((2000, 32), dtype=cp.float32)
    with gs.SummaryWriter(tmp_path) as writer:
        with own:
            writer.add_embedding(matrix, tag="warm", global_step=0, reduce=reduce)
            own.synchronize()
        with busy:
            _spin(cp, 1.0)
        with own:
            writer.add_embedding(matrix, tag="points", global_step=1, reduce=reduce)
        assert not busy.done, "add_embedding waited for another stream's work"
    assert list(tmp_path.glob("00001/points/tensors.tsv"))


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_a_call_inside_a_graph_capture_is_refused_and_the_capture_survives(tmp_path):
    import torch

    import gpu_summary as gs

    static = torch.randn(1 << 16, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("eager", static, 0)  # compiled, pools warm
        torch.cuda.synchronize()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            (static * 2).sum()  # warm-up, as torch asks before a capture
        torch.cuda.current_stream().wait_stream(side)
        with torch.cuda.graph(graph):
            out = static * 2
            with pytest.raises(RuntimeError, match="capturing a graph"):
                writer.add_histogram("captured", static, 1)
            out += 1
        static.fill_(1.0)
        graph.replay()
        torch.cuda.synchronize()
        assert torch.all(out == 3.0)
        writer.add_histogram("after", out, 2)  # from the graph's static output: the fix
    acc = legacy_reader(tmp_path)
    assert acc.Histograms("after")[0].histogram_value.num == static.numel()
    assert "captured" not in acc.Tags()["histograms"]


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_our_waits_never_invalidate_a_capture_on_another_thread(tmp_path):
    """A thread of ours waits for a result (cudaEventSynchronize) while the training thread
    captures in torch's default "global" mode: the capture must stay valid."""
    import cupy as cp
    import torch

    from gpu_summary._backend import backend_for

    busy = cp.cuda.Stream(non_blocking=True)
    with busy:
        values = cp.random.standard_normal(1 << 20, dtype=cp.float32)
        backend, device = backend_for(values, "values")
        backend.histogram_fixed(device, None).result()  # compiled
        _spin(cp, 0.3)
        pending = backend.histogram_fixed(device, None)  # ready after the spin
    capturing, waited = threading.Event(), threading.Event()
    outcome: list[object] = []

    def writer_thread() -> None:
        capturing.wait(60)
        try:
            outcome.append(pending.result().stats.count)
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcome.append(exc)
        waited.set()

    thread = threading.Thread(target=writer_thread, daemon=True)
    thread.start()
    static = torch.ones(1024, device="cuda")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):  # capture_error_mode="global"
        out = static + 1
        capturing.set()
        assert waited.wait(60), "the result never arrived"
    graph.replay()
    torch.cuda.synchronize()
    assert outcome == [values.size]
    assert torch.all(out == 2.0)


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_a_window_keeps_a_dropped_tensor_from_the_caching_allocator(tmp_path):
    """The step's kernel runs late on a side stream; the tensor, freed at once by the caller,
    must not be handed to the next allocation on the default stream before it has run."""
    import cupy as cp
    import torch

    import gpu_summary as gs

    n = 1 << 22
    clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
    side = torch.cuda.Stream()
    with gs.SummaryWriter(tmp_path) as writer:
        for step in range(4):
            values = torch.full((n,), float(step), device="cuda")
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                torch.cuda._sleep(int(clock_hz * 0.2))  # the step's kernel runs late
                writer.add_histogram("w", values, step, window=4)
            del values
            torch.full((n,), 99.0, device="cuda")  # would reuse the freed block at once
        torch.cuda.synchronize()
    (record,) = legacy_reader(tmp_path).Histograms("w")
    histogram = record.histogram_value
    assert histogram.num == 4 * n
    assert histogram.min == 0.0 and histogram.max == 3.0, "a step read recycled memory"


def test_jax_arrays_are_ordered_through_dlpack(monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        skip_peer("JAX sees no GPU (a JAX without its CUDA plugin)")
    import jax.numpy as jnp

    from gpu_summary._backend import backend_for
    from gpu_summary._backend.cuda import device_tensor

    taken: list[str] = []
    through_dlpack = device_tensor._from_dlpack

    def recorded(obj, argument):
        taken.append("dlpack")
        return through_dlpack(obj, argument)

    monkeypatch.setattr(device_tensor, "_from_dlpack", recorded)

    @jax.jit
    def long_chain(x):  # still running on JAX's stream when it is logged
        return jax.lax.fori_loop(0, 3000, lambda i, y: jnp.sin(y) * 0.5 + 2.0, x)

    x = long_chain(jax.device_put(np.zeros(1 << 22, np.float32), jax.devices("gpu")[0]))
    backend, device = backend_for(x, "values")
    got = backend.histogram_fixed(device, None).result()
    want = np.asarray(x)
    assert taken == ["dlpack"]
    assert got.stats.count == want.size
    assert got.stats.min == want.min() and got.stats.max == want.max()


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_per_thread_default_stream_with_torch_on_its_default_stream(tmp_path):
    script = textwrap.dedent(f"""
        import torch, gpu_summary as gs
        from tensorboard.backend.event_processing import event_accumulator
        with gs.SummaryWriter({str(tmp_path)!r}) as writer:
            writer.add_histogram("h", torch.arange(1000.0, device="cuda"), 0)
        acc = event_accumulator.EventAccumulator({str(tmp_path)!r})
        acc.Reload()
        print(acc.Histograms("h")[0].histogram_value.num)
    """)
    env = {**__import__("os").environ, "CUPY_CUDA_PER_THREAD_DEFAULT_STREAM": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "1000.0"


def test_a_forked_child_makes_no_cuda_call_on_the_parents_results(tmp_path):
    script = textwrap.dedent("""
        import gc, os, sys
        import cupy as cp
        import numpy as np
        from gpu_summary._backend import backend_for
        # No CuPy kernel of its own in the parent (cp.asarray is a copy): any noise would be ours.
        values = cp.asarray(np.arange(10_000, dtype=np.float32))
        backend, device = backend_for(values, "values")
        pending = [backend.histogram_fixed(device, None) for _ in range(4)]
        dropped = backend.histogram_fixed(device, None)
        del dropped  # to the release thread's queue, which the child inherits
        pid = os.fork()
        if pid == 0:
            pending.clear()
            gc.collect()
            sys.exit(0)  # the interpreter's own exit, finalisers and all
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        print("parent", [p.result().stats.count for p in pending])
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "child 0" in done.stdout and "parent [10000, 10000, 10000, 10000]" in done.stdout
    assert "Exception ignored" not in done.stderr, done.stderr[-3000:]
