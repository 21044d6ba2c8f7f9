"""The device side of a probe (gpu_summary/_backend/cuda/probes.py): ``probe_add`` launches
into an accumulator equal the ladder histogram and stats of every input together (the NumPy
backend's reduction of the concatenation is the oracle: counts, min, max and non-finite counts
exactly, sums within MOMENT_RTOL), each call queues one kernel launch and nothing else, and a
call on a capturing stream records no event. On the CPU with the emulated kernels; a replayed
CUDA graph against eager launches with ``-m gpu``."""

from __future__ import annotations

import importlib.util
import threading

import numpy as np
import pytest

from conftest import _cuda_available, assert_stats_match, sample_values
from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as nb
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._core import probe_layout

HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.fixture
def device(emulated_cupy):
    """(the stand-in for CuPy, the device backend running over it)."""
    from gpu_summary._backend import cuda

    return emulated_cupy, cuda


def _accumulator(fake):
    return backend_for(fake.asarray(probe_layout.empty(0, reduce_abi.PROBE_BLOCKS)), "state")[1]


def _on_device(fake, host):
    """(the DeviceArray probe_add takes, the values as float64 on the host)."""
    if host.dtype == np.uint16:  # bfloat16 bit patterns
        from gpu_summary._backend.cuda.device_tensor import BFLOAT16, DeviceArray

        array = fake.asarray(host)
        device = DeviceArray(array, fake.cuda.get_current_stream(), BFLOAT16, array)
        with np.errstate(invalid="ignore"):
            return device, (host.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if host.flags.c_contiguous:
        array = fake.asarray(host)
    else:  # the same strided view, of a device copy of the memory under it
        array = _same_view(fake, fake.asarray(host.base), host)
    return backend_for(array, "values")[1], host.astype(np.float64).ravel()


def _same_view(fake, whole, view):
    """``view`` (a NumPy view of ``view.base``, a contiguous array) taken of ``whole``, the
    device copy of its base."""
    offset = view.__array_interface__["data"][0] - view.base.__array_interface__["data"][0]
    pointer = fake.cuda.MemoryPointer(fake.cuda.UnownedMemory(whole.data.ptr, 0, whole), offset)
    array = fake.ndarray(view.shape, view.dtype, pointer, view.strides)
    array.whole = whole  # the stand-in's view does not keep its memory alive by itself
    return array


def _check(state, inputs):
    counts, stats, _ = probe_layout.parse(state.array.get(), 0)
    together = np.concatenate(inputs) if inputs else np.zeros(0)
    want = nb.histogram_fixed(together, None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, together)
    assert state.array.get()[probe_layout.scratch(0)] == 0  # the next launch starts from zero


def _steps(rng):
    wide = sample_values(np.float64, 4_800, seed=3).reshape(60, 80)
    bits = (sample_values(np.float32, 2_000, seed=4).view(np.uint32) >> 16).astype(np.uint16)
    return {
        "float32": sample_values(np.float32, 7_000, seed=1),
        "float16": sample_values(np.float16, 3_000, seed=2),
        "bfloat16": bits,
        "float64 strided": wide[::2, 1:-1].T,
        "float32 reversed": sample_values(np.float32, 900, seed=5)[::-3],
        "empty": np.zeros(0, np.float32),
        "int16": sample_values(np.int16, 1_000, seed=6),
        "non-finite only": np.array([np.nan, np.inf, -np.inf, np.nan]),
        "many blocks": rng.standard_normal(150_000) * 1e3,  # 147 blocks of one wave
    }


def test_probe_adds_equal_the_histogram_of_their_inputs_together(device):
    fake, cuda = device
    state = _accumulator(fake)
    seen = []
    for host in _steps(np.random.default_rng(7)).values():
        values, as_float = _on_device(fake, host)
        cuda.probe_add(state, values, ())
        seen.append(as_float)
        _check(state, seen)


def test_an_accumulator_reset_on_the_host_starts_again(device):
    fake, cuda = device
    state = _accumulator(fake)
    rng = np.random.default_rng(8)
    first, second = rng.standard_normal(20_000), rng.standard_normal(3_000) * 5
    cuda.probe_add(state, _on_device(fake, first)[0], ())
    state.array._host[:] = probe_layout.empty(0, reduce_abi.PROBE_BLOCKS)  # what collect does
    _check(state, [])
    for _ in range(2):
        cuda.probe_add(state, _on_device(fake, second)[0], ())
    _check(state, [second, second])


def test_each_call_is_one_launch_on_the_values_stream_and_nothing_else(device):
    fake, cuda = device
    state = _accumulator(fake)
    stream = fake.cuda.Stream(non_blocking=True)
    with stream:
        values = _on_device(fake, np.linspace(-1.0, 1.0, 50_000))[0]
    fake.log.clear()
    fake.allocations.clear()
    for _ in range(3):
        cuda.probe_add(state, values, ())
    launches = [("launch", "gs_reduce", reduce_abi.PROBE, 49, stream.ptr)] * 3  # 49 blocks
    assert [(*entry[:4], entry[5]) for entry in fake.log] == launches  # no memset, no copy
    assert fake.allocations == [] and threading.get_ident() not in fake.waits  # no host wait
    # Eagerly, one event a call after its launch keeps the input until the kernel has run.
    assert fake.event_records == [stream.ptr] * 3


def test_a_call_on_a_capturing_stream_records_only_its_launch(device, monkeypatch):
    fake, cuda = device
    from gpu_summary._backend.cuda import capture, runtime

    monkeypatch.setattr(capture, "_driver", fake.driver_library)
    lookups = []
    kernel = runtime.kernel

    def spy(*args):  # the capture mode the kernel is looked up (maybe compiled, loaded) in
        lookups.append(fake.driver_library.mode())
        return kernel(*args)

    monkeypatch.setattr(runtime, "kernel", spy)
    state = _accumulator(fake)
    stream = fake.cuda.Stream(non_blocking=True)
    host = sample_values(np.float32, 5_000)
    with stream:
        values = _on_device(fake, host)[0]  # adopted before the capture: adopt refuses one
    stream.capturing = True
    fake.log.clear()
    cuda.probe_add(state, values, ())
    assert [entry[:2] for entry in fake.log] == [("launch", "gs_reduce")]
    assert fake.event_records == [] and fake.allocations == []
    assert lookups == [capture.RELAXED]
    assert fake.driver_library.mode() == fake.driver_library.GLOBAL  # the thread's mode restored
    _check(state, [host.astype(np.float64)])


def test_the_grid_never_outgrows_the_accumulators_scratch(device, monkeypatch):
    # A device with more resident blocks than the scratch holds partials: the grid is cut to
    # PROBE_BLOCKS, and the last block's partial is the accumulator's last word (a canary
    # after it stays as it was).
    fake, cuda = device
    from gpu_summary._backend.cuda import runtime

    monkeypatch.setattr(runtime, "grid_for", lambda *args: 10 * cuda.PROBE_BLOCKS)
    canary = np.full(4, 0x5A5A5A5A5A5A5A5A, np.int64)
    whole = fake.asarray(np.concatenate([probe_layout.empty(0, cuda.PROBE_BLOCKS), canary]))
    state = backend_for(whole[: cuda.probe_words(0)], "state")[1]
    host = sample_values(np.float64, 3_000, seed=10)
    fake.log.clear()
    cuda.probe_add(state, _on_device(fake, host)[0], ())
    assert [entry[3] for entry in fake.log] == [cuda.PROBE_BLOCKS]
    _check(state, [host])
    np.testing.assert_array_equal(whole.get()[-4:], canary)


def test_a_layout_no_kernel_can_address_is_refused_not_copied(device):
    fake, cuda = device
    state = _accumulator(fake)
    eight_dims = np.arange(3.0**8).reshape((3,) * 8)[(slice(0, 2),) * 8]  # nothing merges
    values = backend_for(_same_view(fake, fake.asarray(eight_dims.base), eight_dims), "v")[1]
    fake.log.clear()
    with pytest.raises(TypeError, match=r"contiguous tensor \(tensor.contiguous\(\)\)"):
        cuda.probe_add(state, values, ())
    assert fake.log == [] and fake.allocations == []


def test_an_accumulator_of_the_wrong_size_or_dtype_is_refused(device):
    fake, cuda = device
    values = _on_device(fake, np.ones(10))[0]
    for wrong in (np.zeros(cuda.probe_words(0), np.float64), np.zeros(cuda.probe_words(1), int)):
        state = backend_for(fake.asarray(wrong), "state")[1]
        with pytest.raises(TypeError, match=r"probe's accumulator: \d+ contiguous int64 words"):
            cuda.probe_add(state, values, ())
    assert cuda.probe_words(2) == probe_layout.words(2, cuda.PROBE_BLOCKS)


@pytest.mark.gpu
@pytest.mark.skipif(not (_cuda_available() and HAS_TORCH), reason="needs a CUDA device and torch")
def test_a_captured_probe_replayed_equals_as_many_eager_calls():
    torch = pytest.importorskip("torch")
    from gpu_summary._backend import cuda
    from gpu_summary._backend.cuda.device_tensor import adopt

    replays = 5
    host = sample_values(np.float32, 300_000, seed=9).reshape(1000, 300)
    x = torch.from_numpy(host).cuda()[:, ::3]  # strided: read in place
    empty = torch.from_numpy(probe_layout.empty(0, cuda.PROBE_BLOCKS))
    captured, eager = empty.cuda(), empty.cuda()
    cuda.warm_up(("float32",), x.device.index)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # adopt refuses a capturing stream: wrap them beforehand
        state, values = adopt(captured, "state"), adopt(x, "values")
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=side):
        cuda.probe_add(state, values, ())
    for _ in range(replays):
        graph.replay()
    for _ in range(replays):
        cuda.probe_add(adopt(eager, "state"), adopt(x, "values"), ())
    torch.cuda.synchronize()
    head = probe_layout.FORMATS
    got, want_eager = captured.cpu().numpy(), eager.cpu().numpy()
    np.testing.assert_array_equal(got[:head], want_eager[:head])  # one grid: the same bits
    assert got[probe_layout.scratch(0)] == 0
    together = np.tile(host[:, ::3].astype(np.float64).ravel(), replays)
    counts, stats, _ = probe_layout.parse(got, 0)
    want = nb.histogram_fixed(together, None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, together)


def test_probe_take_copies_out_then_empties_on_the_stream(device):
    fake, cuda = device
    state = _accumulator(fake)
    first = sample_values(np.float32, 5_000, seed=11)
    values, as_float = _on_device(fake, first)
    cuda.probe_add(state, values, ())
    cuda.probe_add(state, values, ())
    fake.log.clear()
    taken = cuda.probe_take(state, 0)
    assert not any(entry[0] == "launch" for entry in fake.log)  # copies only: no kernel
    raw = taken.result()
    counts, stats, _ = probe_layout.parse(raw, 0)
    want = nb.histogram_fixed(np.concatenate([as_float, as_float]), None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert (stats.count, stats.min, stats.max) == (want.stats.count, want.stats.min,
                                                   want.stats.max)  # fmt: skip
    # Emptied on the stream: the accumulator starts again from zero.
    words = probe_layout.scratch(0)
    np.testing.assert_array_equal(state.array.get()[:words], probe_layout.empty(0)[:words])
    second = sample_values(np.float16, 700, seed=12)
    values, as_float = _on_device(fake, second)
    cuda.probe_add(state, values, ())
    _check(state, [as_float])
