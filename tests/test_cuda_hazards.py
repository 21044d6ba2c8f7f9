"""The host-side CUDA hazards around the kernels, through the CPU stand-in for CuPy
(tests/support/fake_cupy.py): CUDA graph capture, the ordering of foreign arrays, the inputs a
window keeps, the pinned pool, forked children, and torch's DLPack stream handshake.

What the stand-in cannot show — a real capture's invalidation, real stream ordering, the
caching allocator reusing a freed block, CUDA after fork — tests/test_gpu_hazards.py shows on a
GPU (marked ``gpu``).
"""

from __future__ import annotations

import gc
import importlib.util
import os
import threading
import time
import weakref

import numpy as np
import pytest

from conftest import legacy_reader
from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as nb

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def fake(emulated_cupy, monkeypatch):
    """The stand-in, with its driver library behind ``capture`` (the real one is absent)."""
    from gpu_summary._backend.cuda import capture

    monkeypatch.setattr(capture, "_driver", emulated_cupy.driver_library)
    emulated_cupy.driver_library._modes.clear()
    emulated_cupy.wait_modes.clear()
    return emulated_cupy


def _launches(fake) -> list[tuple]:
    return [entry for entry in fake.log if entry[0] in ("launch", "memset", "memcpy", "copy")]


# -- CUDA graph capture ------------------------------------------------------------------------


def _calls(fake):
    values = fake.asarray(np.linspace(-1.0, 1.0, 1000, dtype=np.float32))
    images = fake.asarray(np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32))
    labels = fake.asarray(np.arange(1000) % 2 == 0)
    predictions = fake.asarray(np.linspace(0.0, 1.0, 1000, dtype=np.float32))
    return {
        "add_scalar": lambda w: w.add_scalar("s", values[:1].reshape(()), 1),
        "add_histogram": lambda w: w.add_histogram("h", values, 1),
        "add_histogram bins=8": lambda w: w.add_histogram("e", values, 1, bins=8),
        "add_histogram window": lambda w: w.add_histogram("w", values, 1, window=4),
        "add_histograms": lambda w: w.add_histograms({"a": values, "b": values}, 1),
        "add_images": lambda w: w.add_images("i", images, 1),
        "add_pr_curve": lambda w: w.add_pr_curve("pr", labels, predictions, 1),
        "add_anomaly": lambda w: w.add_anomaly("an", values, 1),
    }


_CALLS = ("add_scalar", "add_histogram", "add_histogram bins=8", "add_histogram window",
          "add_histograms", "add_images", "add_pr_curve", "add_anomaly")  # fmt: skip


@pytest.mark.parametrize("call", _CALLS)
def test_a_call_on_a_capturing_stream_is_refused_before_anything_is_queued(fake, tmp_path, call):
    import gpu_summary as gs

    log = _calls(fake)[call]
    stream = fake.cuda.Stream(non_blocking=True)
    with gs.SummaryWriter(tmp_path) as writer:
        with stream:
            log(writer)  # compiles, and a first record
            writer.flush()
            fake.log.clear()
            stream.capturing = True
            with pytest.raises(RuntimeError, match=r"capturing a graph.*graph\.replay"):
                log(writer)
            assert _launches(fake) == [], "nothing may be queued into the user's graph"
            stream.capturing = False
    acc = legacy_reader(tmp_path)
    tags = acc.Tags()
    counts = [len(acc.Scalars(t)) for t in tags["scalars"]]
    counts += [len(acc.Histograms(t)) for t in tags["histograms"]]
    counts += [len(acc.Images(t)) for t in tags["images"]]
    counts += [len(acc.Tensors(t)) for t in tags["tensors"]]
    assert counts and set(counts) == {1}, f"the refused call logged nothing: {tags}"


@pytest.mark.parametrize("producer", ["cupy", "dlpack", "array interface", "window's stream"])
def test_no_producer_is_asked_to_order_onto_a_capturing_stream(fake, producer):
    """Refused before any stream operation at all: no memset, launch or copy, and no producer
    asked (through DLPack) to make the capturing stream wait for its writes."""
    array = fake.asarray(np.arange(1000.0))
    values = {"cupy": array, "dlpack": _BothInterfaces(array), "array interface": _Owner(array),
              "window's stream": array}[producer]  # fmt: skip
    stream = fake.cuda.Stream(non_blocking=True)
    window = None
    if producer == "window's stream":  # a window begun on a stream that now captures
        with stream:
            backend, device = backend_for(array, "values")
            window = backend.window_open(None, 2, device)
            backend.window_add(window, device, 0)
    fake.log.clear()
    stream.capturing = True
    with pytest.raises(RuntimeError, match="capturing a graph"):
        if window is None:
            with stream:
                backend_for(values, "values")
        else:  # the next step on another stream, and the window's end
            backend.window_add(window, backend_for(array, "values")[1], 1)
    if window is not None:
        with pytest.raises(RuntimeError, match="window's last step"):
            window.result(1)
    assert fake.log == [], "nothing queued, no producer asked to order onto the stream"
    assert getattr(values, "asked", []) == []


def test_a_stream_that_cannot_be_asked_is_treated_as_capturing(fake, monkeypatch):
    stream = fake.cuda.Stream(non_blocking=True)

    def refuse() -> bool:
        raise fake.CUDARuntimeError(900)  # cudaErrorStreamCaptureUnsupported

    monkeypatch.setattr(stream, "is_capturing", refuse)
    with stream, pytest.raises(RuntimeError, match="asking the stream failed"):
        backend_for(fake.asarray(np.ones(4)), "values")


def test_our_threads_wait_in_relaxed_capture_mode_and_restore_it(fake, tmp_path):
    import gpu_summary as gs
    from gpu_summary._backend.cuda import capture

    values = fake.asarray(np.arange(5000, dtype=np.float32))
    with gs.SummaryWriter(tmp_path) as writer:
        for step in range(3):
            writer.add_histogram("h", values, step)
            writer.add_images("i", fake.asarray(np.ones((1, 3, 4, 4), np.float32)), step)
    backend, device = backend_for(values, "values")
    written = len(fake.waits)
    dropped = backend.histogram_fixed(device, None)
    del dropped  # unread: the release thread waits for it
    deadline = time.monotonic() + 60
    while len(fake.waits) == written and time.monotonic() < deadline:
        time.sleep(0.01)
    waits = len(fake.waits)
    assert waits > written >= 6
    # A caller that waits on purpose (a short argument read whole) is put back as it was.
    fake.driver_library._modes[threading.get_ident()] = capture.RELAXED - 1
    edges = backend_for(fake.asarray(np.linspace(0, 1, 5)), "bins")[1]
    assert backend.to_host(edges).result().size == 5
    assert fake.driver_library.mode() == capture.RELAXED - 1
    assert fake.wait_modes[:waits] == [capture.RELAXED] * waits
    assert fake.wait_modes[-1] == capture.RELAXED
    modes = {thread: mode for thread, mode in fake.driver_library._modes.items()
             if thread != threading.get_ident()}  # fmt: skip
    assert set(modes.values()) <= {fake.driver_library.GLOBAL}, "each thread's mode restored"


# -- foreign arrays ----------------------------------------------------------------------------


class _BothInterfaces:
    """An XLA-like device array: both protocols, and an array interface naming no stream."""

    def __init__(self, array) -> None:
        self._array = array
        self.asked: list[object] = []

    @property
    def __cuda_array_interface__(self) -> dict:
        interface = dict(self._array.__cuda_array_interface__)
        interface.pop("stream", None)
        return interface

    def __dlpack__(self, stream=None, **options):
        self.asked.append(stream)
        return self._array._host.__dlpack__()

    def __dlpack_device__(self) -> tuple[int, int]:
        return (2, 0)  # kDLCUDA


def test_an_array_with_both_interfaces_is_ordered_through_dlpack(fake):
    host = np.random.default_rng(3).standard_normal(4000)
    foreign = _BothInterfaces(fake.asarray(host))
    stream = fake.cuda.Stream(non_blocking=True)
    with stream:
        backend, device = backend_for(foreign, "values")
        got = backend.histogram_fixed(device, None).result()
    assert foreign.asked == [stream.ptr], "the producer was asked to order before our stream"
    assert device.stream.ptr == stream.ptr
    np.testing.assert_array_equal(got.counts, nb.histogram_fixed(host, None).result().counts)


@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_torch_tensors_are_exported_without_a_stream_handshake(fake, monkeypatch):
    """CuPy names the consumer's stream to ``__dlpack__`` (2 under
    CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1, which torch refuses; None makes torch wait on its
    default stream). Our kernels run on the tensor's own current stream: torch is asked for -1,
    no handshake at all."""
    import torch

    from gpu_summary._backend.cuda import device_tensor

    asked: list[object] = []

    class Recording(torch.Tensor):
        def __dlpack__(self, stream=None, **options):
            asked.append(stream)
            return super().__dlpack__(stream=stream, **options)

    current = type("TorchStream", (), {"cuda_stream": 0x7777})()
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: current)
    tensor = torch.arange(6.0).as_subclass(Recording)
    with fake.cuda.Stream(ptds=True):  # CuPy's current stream: the per-thread default
        wrapped = device_tensor._from_torch(tensor, "values")
    assert asked == [-1]
    assert wrapped.stream.ptr == 0x7777, "the kernels run on torch's current stream"
    np.testing.assert_array_equal(wrapped.array.get(), np.arange(6.0))


# -- what a window keeps -----------------------------------------------------------------------


class _Owner:
    """A producer's tensor: a device array behind the array interface, weakly referenceable."""

    def __init__(self, array) -> None:
        self._array = array

    @property
    def __cuda_array_interface__(self) -> dict:
        return self._array.__cuda_array_interface__


@pytest.mark.parametrize("kind", ["window", "multi_window"])
def test_a_window_keeps_each_steps_tensor_until_its_launch_has_run(fake, monkeypatch, kind):
    from gpu_summary._backend.cuda import runtime

    released: list[tuple] = []
    monkeypatch.setattr(
        runtime, "release_after", lambda event, keep: released.append((event, keep))
    )
    stream = fake.cuda.Stream(non_blocking=True)
    window = None
    owners = []
    with stream:
        for step in range(3):
            owner = _Owner(fake.asarray(np.full(3000, float(step))))
            backend, device = backend_for(owner, "values")
            if kind == "window":
                window = window or backend.window_open(None, 3, device)
                backend.window_add(window, device, step)
            else:
                window = window or backend.multi_window_open(3, [device, device])
                backend.multi_window_add(window, [device, device], step)
            owners.append(weakref.ref(owner))
            del owner, device
        result = window.result(3)
    gc.collect()
    assert all(ref() is not None for ref in owners), "each step's tensor is kept"
    assert len(released) == 3
    for step, (event, keep) in enumerate(released):
        assert event.recorded_on == stream.ptr, "after the step's launch, on its stream"
        assert owners[step]() in _flatten(keep)
    del event, keep
    released.clear()
    gc.collect()
    assert all(ref() is None for ref in owners), "and released with its event, not later"
    counts = result.result()
    assert counts is not None


def _flatten(nested) -> list:
    if isinstance(nested, tuple):
        return [leaf for item in nested for leaf in _flatten(item)]
    return [nested]


# -- pinned memory -----------------------------------------------------------------------------


def test_pinned_buffers_come_from_the_backends_own_pool_and_are_never_freed(fake, tmp_path):
    import gpu_summary as gs

    gc.collect()  # the pools of earlier tests' backend modules (imported afresh for each test)
    fake.log.clear()
    values = fake.asarray(np.arange(10_000, dtype=np.float32))
    with gs.SummaryWriter(tmp_path) as writer:
        for step in range(4):
            writer.add_histogram("h", values, step)
            writer.add_histogram("e", values, step, bins=np.linspace(0, 10_000, 9))
            writer.add_images("i", fake.asarray(np.ones((2, 3, 4, 4), np.float32)), step)
    gc.collect()
    assert fake.pinned_blocks, "result copies go through pinned memory"
    # fake.cuda.alloc_pinned_memory raises: CuPy's shared allocator was never used, so a user
    # who turns that pool off (every drop a cudaFreeHost, a device sync) changes nothing.
    assert [e for e in fake.log if e[0] == "freeHost"] == []
    assert len(legacy_reader(tmp_path).Histograms("e")) == 4


@pytest.mark.parametrize("status", [2, 3])  # out of memory; any other CUDA error
def test_a_failed_pinned_allocation_frees_no_block_on_the_callers_thread(fake, monkeypatch, status):
    from gpu_summary._backend.cuda import runtime

    runtime.pinned(100)  # a block in the pool, which CuPy's pool would free on out of memory

    def exhausted(size, flags=0):
        raise fake.CUDARuntimeError(status)

    monkeypatch.setattr(fake.cuda, "PinnedMemory", exhausted)
    fake.log.clear()
    if status == 2:
        with pytest.raises(MemoryError, match="page-lock 4,096 bytes"):
            runtime.pinned(4000)
    else:  # not an allocation failure: CUDA's own error, unchanged
        with pytest.raises(fake.CUDARuntimeError):
            runtime.pinned(4000)
    assert [e for e in fake.log if e[0] == "freeHost"] == []


def test_large_copies_use_pinned_memory_of_their_own_freed_off_the_callers_thread(
    fake, monkeypatch
):
    from gpu_summary._backend.cuda import runtime

    monkeypatch.setattr(runtime, "ONE_OFF_BYTES", 1024)
    released: list[tuple] = []
    monkeypatch.setattr(
        runtime, "release_after", lambda event, keep: released.append((event, keep))
    )
    backend, device = backend_for(fake.asarray(np.arange(4096.0)), "values")
    pooled = len(fake.pinned_blocks)
    host = backend.to_host(device).result()  # the caller reads it (as add_embedding does)
    np.testing.assert_array_equal(host, np.arange(4096.0))
    assert len(fake.pinned_blocks) == pooled, "not from the pool"
    assert [e for e in fake.log if e[0] == "freeHost"] == [], "not freed on the caller's thread"
    assert len(released) == 1 and released[0][0] is None, "handed to the release thread"


# -- forked children ---------------------------------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_touches_the_parents_device_results(fake, tmp_path):
    backend, device = backend_for(fake.asarray(np.arange(2000.0)), "values")
    pending = [backend.histogram_fixed(device, None) for _ in range(3)]
    report = tmp_path / "child.txt"
    errors = tmp_path / "stderr.txt"
    pid = os.fork()
    if pid == 0:  # the child: read one, drop the others, report what CUDA calls were made
        status = 1
        try:
            os.dup2(os.open(errors, os.O_WRONLY | os.O_CREAT), 2)
            try:
                pending[0].result()
                outcome = "read"
            except RuntimeError as exc:
                outcome = str(exc)
            pending.clear()
            gc.collect()
            report.write_text(f"{outcome}\n{fake.in_other_process}\n")
            status = 0
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    outcome, calls = report.read_text().splitlines()
    assert "cannot be read in the child" in outcome and "spawn" in outcome
    assert calls == "[]", "no CUDA call on the parent's events in the child"
    assert errors.read_text() == ""
    assert [p.result().stats.count for p in pending] == [2000] * 3  # the parent's are intact
