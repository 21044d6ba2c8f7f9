"""The CUDA backend against the NumPy backend (the specification).

Counts, min, max and non-finite counts must be equal exactly; sums within
``cuda.MOMENT_RTOL`` of sum(|x|). The ``cp`` fixture runs each test twice: on a GPU with the
real CuPy (marked ``gpu``, skipped cleanly without a device; ``pytest -m gpu`` runs them all,
as ``benchmarks/gpu_check.sh`` does), and on the CPU with tests/support/fake_cupy.py, which runs the
same backend code with the kernels compiled for the CPU. Tests of streams, asynchrony and
PyTorch need the real device only.
"""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest

from conftest import DTYPES, _cuda_available, assert_stats_match, legacy_reader, sample_values
from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as nb
from gpu_summary._backend.cuda_kernels import catalogue
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import ladder as _ladder
from support.require_gpu import skip_peer

HAS_TORCH = importlib.util.find_spec("torch") is not None
_NEEDS_GPU = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device and CuPy")
gpu_only = [pytest.mark.gpu, _NEEDS_GPU]


@pytest.fixture(params=[pytest.param("cupy", marks=gpu_only), "emulated"])
def cp(request):
    """CuPy on a GPU, or the CPU stand-in that runs the same backend over emulated kernels."""
    if request.param == "emulated":
        return request.getfixturevalue("emulated_cupy")
    import cupy

    return cupy


@pytest.fixture
def real_cp():
    import cupy

    return cupy


def _device(values):
    backend, array = backend_for(values, "values")
    assert backend.__name__.endswith(".cuda"), backend
    return backend, array


def _size(cp, n: int) -> int:
    """n on a GPU; a tenth of it through the CPU emulation of the kernels."""
    return n // 10 if cp.__name__ == "support.fake_cupy" else n


def _compare(cp, host, bins="ladder"):
    backend, device = _device(cp.asarray(host))
    if isinstance(bins, str):
        got, want = backend.histogram_fixed(device, None), nb.histogram_fixed(host, None)
    elif isinstance(bins, int):
        got, want = backend.histogram_even(device, bins), nb.histogram_even(host, bins)
    else:
        got, want = backend.histogram_fixed(device, bins), nb.histogram_fixed(host, bins)
    got, want = got.result(), want.result()
    np.testing.assert_array_equal(got.limits, want.limits)
    np.testing.assert_array_equal(got.counts, want.counts)
    assert_stats_match(got.stats, want.stats, host)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bins", ["ladder", 1, 30, 10_000, "edges", "many_edges"])
def test_histograms_equal_numpy_for_every_dtype(cp, dtype, bins):
    host = sample_values(dtype, _size(cp, 300_001))
    if bins == "edges":
        bins = np.append(np.linspace(-1e3, 1e3, 101), _ladder.DBL_MAX)
    elif bins == "many_edges":  # more than fit in shared memory
        bins = np.append(np.sort(np.random.default_rng(1).normal(size=5000)) * 1e4, 1.8e308)
    _compare(cp, host, bins)


@pytest.mark.parametrize(
    "rule,dtype",
    [("auto", np.float16), ("auto", np.float64), ("auto", np.int32), ("sqrt", np.float32),
     ("fd", np.float32), ("sturges", np.int64), ("rice", np.float32), ("stone", np.int32)],
)  # fmt: skip
@pytest.mark.filterwarnings("ignore:gpu_summary. bins=:RuntimeWarning")  # fd: halved, both
@pytest.mark.filterwarnings("ignore:The number of bins estimated:RuntimeWarning")  # stone's
def test_numpys_summary_rules_equal_the_host(cp, dtype, rule):
    from gpu_summary._backend.estimators import rule_histogram
    from gpu_summary._core import bin_rules

    host = sample_values(dtype, _size(cp, 20_001))
    backend, device = _device(cp.asarray(host))
    got = rule_histogram(backend, device, rule).result()
    want = rule_histogram(nb, host, rule).result()
    np.testing.assert_array_equal(got.limits, want.limits)
    np.testing.assert_array_equal(got.counts, want.counts)
    assert_stats_match(got.stats, want.stats, host)
    finite = host.astype(np.float64)
    finite = finite[np.isfinite(finite)]
    q25, q75 = np.percentile(finite, [25, 75])
    if rule == "stone":  # bounded by max(100, sqrt(n)): numpy's own count is cheap
        asked = len(np.histogram_bin_edges(finite, bins=rule)) - 1
    else:  # fd may ask for ~1e15 bins, which numpy would try to allocate
        asked = bin_rules.bin_count(rule, finite.size, finite.min(), finite.max(), q25, q75)
    if asked == len(got.counts) - 1:  # not halved: numpy's own histogram, bucket for bucket
        np.testing.assert_array_equal(got.counts[1:], np.histogram(finite, bins=rule)[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ladder_exact_at_every_limit(cp, dtype):
    limits = _ladder.LIMITS[1:-1]
    x = [limits]
    up, down = limits.copy(), limits.copy()
    for _ in range(3):
        up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        x += [up, down]
    _compare(cp, np.concatenate(x).astype(dtype))


@pytest.mark.parametrize("dtype,unsigned", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_ladder_exact_on_random_bit_patterns(cp, dtype, unsigned):
    rng = np.random.default_rng(2)
    n = _size(cp, 2_000_000)
    bits = rng.integers(0, np.iinfo(unsigned).max, n, dtype=unsigned, endpoint=True)
    _compare(cp, bits.view(dtype))


def test_float16_every_bit_pattern(cp):
    _compare(cp, np.arange(1 << 16, dtype=np.uint16).view(np.float16))


@pytest.mark.gpu
@_NEEDS_GPU
@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_bfloat16_every_bit_pattern_from_torch(real_cp):
    import torch

    bits = np.arange(1 << 16, dtype=np.uint16)
    tensor = torch.from_numpy(bits.view(np.int16)).cuda().view(torch.bfloat16)
    backend, device = _device(tensor)
    got = backend.histogram_fixed(device, None).result()
    with np.errstate(invalid="ignore"):
        as_f32 = (bits.astype(np.uint32) << 16).view(np.float32)
    want = nb.histogram_fixed(as_f32, None).result()
    np.testing.assert_array_equal(got.counts, want.counts)
    assert_stats_match(got.stats, want.stats, as_f32)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,
        lambda a: a[::3, 1:-1],
        lambda a: a[::-1, ::-2],
        lambda a: a.reshape(10, 20, 30, 40)[:, ::2, :, ::3],
        # 12 dimensions that do not merge: the backend copies them to contiguous memory first
        lambda a: a.reshape((2, 3, 2, 5, 2, 5, 2, 5, 2, 5, 2, 2))[
            :, ::2, :, ::2, :, ::2, :, ::2, :, ::2, :, ::-1
        ],
        lambda a: a[5, 7, ...],
        lambda a: a[:0],
    ],
)
def test_strided_inputs_equal_numpy(cp, make):
    host = sample_values(np.float32, 240_000).reshape(400, 600)
    device = cp.asarray(host)
    host_view, device_view = make(host), make(device)
    backend, wrapped = _device(device_view)
    for got, want in [
        (backend.histogram_fixed(wrapped, None), nb.histogram_fixed(host_view, None)),
        (backend.histogram_even(wrapped, 17), nb.histogram_even(host_view, 17)),
    ]:
        got, want = got.result(), want.result()
        np.testing.assert_array_equal(got.counts, want.counts)
        assert_stats_match(got.stats, want.stats, host_view)


@pytest.mark.parametrize("values", [[], [np.nan, np.inf], [3.0], [2.5, 2.5, 2.5], [-0.0, 0.0]])
def test_degenerate_inputs(cp, values):
    host = np.array(values, dtype=np.float64)
    for bins in ("ladder", 5):
        _compare(cp, host, bins)


@pytest.mark.gpu
@_NEEDS_GPU
def test_large_tensor_many_blocks(real_cp):
    cp = real_cp
    host = np.random.default_rng(3).standard_normal(20_000_003).astype(np.float32)
    _compare(cp, host)
    _compare(cp, host, 256)
    backend, device = _device(cp.asarray(host))
    assert_stats_match(backend.tensor_stats(device).result(), nb.tensor_stats(host).result(), host)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64, np.float16, np.bool_])
@pytest.mark.parametrize("layout", ["NHWC", "NCHW", "flipped"])
@pytest.mark.parametrize("max_size", [None, 7, 64])
@pytest.mark.parametrize("truncate", [False, True], ids=["half-up", "torch"])
def test_thumbnails_equal_numpy(cp, dtype, layout, max_size, truncate):
    rng = np.random.default_rng(4)
    shape = (3, 45, 77, 3)
    if dtype == np.uint8:
        host = rng.integers(0, 256, shape, dtype=np.uint8)
    elif dtype == np.bool_:
        host = rng.random(shape) < 0.5
    else:
        host = (rng.random(shape) * 1.2 - 0.1).astype(dtype)
        host.flat[::13] = np.nan
    device = cp.asarray(host)
    if layout == "NCHW":
        host = np.ascontiguousarray(host.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
        device = cp.ascontiguousarray(device.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    elif layout == "flipped":
        host, device = host[:, ::-1, ::-1], device[:, ::-1, ::-1]
    backend, wrapped = _device(device)
    got = backend.thumbnails(wrapped, max_size, truncate=truncate).result()
    np.testing.assert_array_equal(got, nb.thumbnails(host, max_size, truncate=truncate).result())


def test_scalars_from_device(cp):
    values = [cp.asarray(1.5), cp.asarray(np.array([7], dtype=np.int64)), cp.asarray(np.float16(2))]
    for value in values:
        backend, device = _device(value)
        assert backend.scalar(device).result() == float(value.get().reshape(-1)[0])


class _ArrayInterfaceOnly:
    """A foreign device array that speaks only __cuda_array_interface__ (like Numba's)."""

    def __init__(self, array):
        self._array = array

    @property
    def __cuda_array_interface__(self):
        return self._array.__cuda_array_interface__


def test_cuda_array_interface_input(cp):
    host = sample_values(np.float64, 50_000).reshape(200, 250)
    device = cp.asarray(host)[:, ::-2]
    backend, wrapped = _device(_ArrayInterfaceOnly(device))
    got = backend.histogram_fixed(wrapped, None).result()
    want = nb.histogram_fixed(host[:, ::-2], None).result()
    np.testing.assert_array_equal(got.counts, want.counts)


@pytest.mark.gpu
@_NEEDS_GPU
@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_torch_tensors_on_their_current_stream(tmp_path):
    import torch

    import gpu_summary as gs

    host = sample_values(np.float32, 100_000).reshape(250, 400)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream), gs.SummaryWriter(tmp_path) as writer:
        tensor = torch.from_numpy(host).cuda().requires_grad_(True)
        writer.add_histogram("h", tensor.t(), 0)
        writer.add_histogram("h16", tensor.to(torch.bfloat16), 0)
        writer.add_scalar("s", tensor[3, 4], 0)
        writer.add_images("i", torch.rand(2, 3, 40, 50, device="cuda"), 0, dataformats="NCHW")
    acc = legacy_reader(tmp_path)
    want = nb.histogram_fixed(host, None).result().stats
    assert acc.Histograms("h")[0].histogram_value.num == want.count
    assert acc.Scalars("s")[0].value == pytest.approx(float(host[3, 4]))
    assert [(e.width, e.height) for e in acc.Images("i")] == [(2 * 50, 40)]  # torch's grid


@pytest.mark.gpu
@_NEEDS_GPU
@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_torch_float8_on_the_device_reduces_as_its_float32_values(tmp_path):
    import torch

    import gpu_summary as gs

    host = sample_values(np.float32, 50_000)
    with gs.SummaryWriter(tmp_path) as writer:
        for name in ("float8_e4m3fn", "float8_e5m2"):
            narrow = torch.from_numpy(host).cuda().to(getattr(torch, name))
            writer.add_histogram(f"device/{name}", narrow, 0)
            writer.add_histogram(f"host/{name}", narrow.cpu(), 0)
    acc = legacy_reader(tmp_path)
    for name in ("float8_e4m3fn", "float8_e5m2"):
        (got,), (want,) = acc.Histograms(f"device/{name}"), acc.Histograms(f"host/{name}")
        assert list(got.histogram_value.bucket) == list(want.histogram_value.bucket)
        assert got.histogram_value.num == want.histogram_value.num > 0


@pytest.mark.gpu
@_NEEDS_GPU
@pytest.mark.skipif(not HAS_TORCH, reason="needs PyTorch")
def test_no_host_sync_under_torch_sync_debug_mode(tmp_path):
    import torch

    import gpu_summary as gs

    tensor = torch.randn(1 << 20, device="cuda")
    images = torch.rand(4, 3, 64, 64, device="cuda")
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("warm", tensor, 0)  # compiles outside the checked region
        writer.add_histogram("warm", tensor, 1, bins=10)
        writer.add_histogram("warm", tensor, 2, bins="auto")
        writer.add_images("warm", images, 0, dataformats="NCHW", max_size=32)
        writer.flush()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(3):
                writer.add_histogram("h", tensor, step)
                writer.add_histogram("e", tensor, step, bins=64)
                writer.add_histogram("rule", tensor, step, bins="auto")  # quartiles on the GPU
                writer.add_scalar("s", tensor[0], step)
                writer.add_images("i", images, step, dataformats="NCHW", max_size=32)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    assert len(legacy_reader(tmp_path).Histograms("e")) == 3


_SPIN = r"""
extern "C" __global__ void spin(long long cycles) {
    long long start = clock64();
    while (clock64() - start < cycles) {}
}
"""


@pytest.mark.gpu
@_NEEDS_GPU
def test_add_histogram_returns_while_the_stream_is_busy(real_cp, tmp_path):
    import gpu_summary as gs

    cp = real_cp
    values = cp.random.standard_normal(1 << 22, dtype=cp.float32)
    spin = cp.RawKernel(_SPIN, "spin")
    stream = cp.cuda.Stream(non_blocking=True)
    with gs.SummaryWriter(tmp_path) as writer, stream:
        writer.add_histogram("warm", values, 0)
        writer.flush()
        clock_hz = cp.cuda.Device().attributes["ClockRate"] * 1000
        spin((1,), (1,), (np.int64(clock_hz),))  # about one second of device time
        start = time.perf_counter()
        writer.add_histogram("h", values, 1)
        writer.add_histogram("e", values, 1, bins=32)
        elapsed = time.perf_counter() - start
        # The calls came back while the spin kernel queued before them was still running.
        assert not stream.done, f"add_histogram waited for the device ({elapsed:.3f} s)"
    acc = legacy_reader(tmp_path)
    assert acc.Histograms("h")[0].histogram_value.num == values.size


@pytest.mark.gpu
@_NEEDS_GPU
def test_dropped_results_wait_for_their_copies(real_cp):
    cp = real_cp
    values = cp.random.standard_normal(1 << 20)
    backend, device = _device(values)
    for _ in range(50):
        backend.histogram_fixed(device, None)  # never read: must not free buffers in flight
    cp.cuda.get_current_stream().synchronize()
    assert backend.histogram_fixed(device, None).result().stats.count == values.size


# -- the launch protocol, recorded by the CPU stand-in for CuPy --------------------------------


class _OnStream(_ArrayInterfaceOnly):
    """A foreign array whose producer orders its writes on stream 7 (interface v3)."""

    @property
    def __cuda_array_interface__(self):
        return {**self._array.__cuda_array_interface__, "stream": 7}


def test_even_bins_range_never_visits_the_host(emulated_cupy):
    cp = emulated_cupy
    host = np.random.default_rng(6).standard_normal(5000)
    backend, device = _device(_OnStream(cp.asarray(host)))
    pending = backend.histogram_even(device, 16)
    ops = [entry[:3] if entry[0] == "launch" else entry[0] for entry in cp.log]
    # zero the buffer, stats pass, counting pass, then the only copy: the result, to the host
    assert ops == [
        "memset",
        ("launch", "gs_reduce", reduce_abi.STATS),
        ("launch", "gs_reduce", reduce_abi.EVEN),
        "memcpy",
    ]
    assert {entry[-1] for entry in cp.log} == {7}, "every operation on the producer's stream"
    np.testing.assert_array_equal(
        pending.result().counts, nb.histogram_even(host, 16).result().counts
    )


def test_ladder_is_one_launch_and_one_small_copy(emulated_cupy):
    cp = emulated_cupy
    backend, device = _device(cp.asarray(np.arange(100_000, dtype=np.float32)))
    backend.histogram_fixed(device, None).result()
    launches = [e for e in cp.log if e[0] == "launch"]
    copies = [e for e in cp.log if e[0] == "memcpy"]
    assert len(launches) == 1 and launches[0][4] == _ladder.N_LIMITS * 12  # shared bytes
    assert len(copies) == 1 and copies[0][1] == 8 * (_ladder.N_LIMITS + 8)  # counts + stats


def test_caller_edges_travel_on_the_stream(emulated_cupy):
    cp = emulated_cupy
    edges = np.append(np.linspace(-2, 2, 9), _ladder.DBL_MAX)
    backend, device = _device(cp.asarray(np.linspace(-3, 3, 1000)))
    backend.histogram_fixed(device, edges).result()
    copies = [e for e in cp.log if e[0] == "memcpy"]
    assert [(size, kind) for _, size, kind, _ in copies] == [(8 * 10, 1), (8 * (10 + 8), 2)]


def test_non_numeric_device_data_is_a_type_error(cp, tmp_path):
    import gpu_summary as gs

    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(TypeError, match="values must hold bool, integer or floating"):
            writer.add_histogram("h", cp.asarray(np.array([1j, 2j])), 0)
        with pytest.raises(ValueError, match="value must be a single number"):
            writer.add_scalar("s", cp.asarray(np.arange(3.0)), 0)
        writer.add_scalar("s", cp.asarray(np.float32(2.5)), 0)  # the writer still works
    assert legacy_reader(tmp_path).Scalars("s")[0].value == 2.5


def test_device_backend_provides_the_interface(emulated_cupy):
    import inspect

    from gpu_summary._backend import BACKEND_FUNCTIONS, Backend, cuda

    assert isinstance(cuda, Backend)
    for name in BACKEND_FUNCTIONS:
        ours, reference = getattr(cuda, name), getattr(nb, name)
        assert list(inspect.signature(ours).parameters) == list(
            inspect.signature(reference).parameters
        ), name


@pytest.mark.gpu
@_NEEDS_GPU
def test_jax_arrays(monkeypatch):
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave memory to the others
    jax = pytest.importorskip("jax")
    if not any(d.platform == "gpu" for d in jax.devices()):
        skip_peer("JAX sees no GPU (a JAX without its CUDA plugin)")
    host = sample_values(np.float32, 10_000)
    backend, device = _device(jax.device_put(host, jax.devices("gpu")[0]))
    got = backend.histogram_fixed(device, None).result()
    want = nb.histogram_fixed(host, None).result()
    np.testing.assert_array_equal(got.counts, want.counts)


def test_grid_is_one_wave_of_resident_blocks(emulated_cupy):
    # 132 multiprocessors x the occupancy calculator's blocks: more than 256 block partials,
    # which the last block reduces (as on an H100), and results equal to NumPy's.
    cp = emulated_cupy
    wave = cp.MULTIPROCESSORS * cp.RESIDENT_BLOCKS
    host = sample_values(np.float32, wave * kernel_sources.THREADS * 4 + 12_345, seed=4)
    backend, device = _device(cp.asarray(host))
    got = backend.histogram_fixed(device, None).result()
    grids = [e[3] for e in cp.log if e[0] == "launch"]
    assert grids == [wave] and wave > kernel_sources.THREADS
    want = nb.histogram_fixed(host, None).result()
    np.testing.assert_array_equal(got.counts, want.counts)
    assert_stats_match(got.stats, want.stats, host)
    small = cp.asarray(host[:5000])  # fewer items than a wave: a block per 1024
    backend.histogram_fixed(_device(small)[1], None).result()
    assert [e[3] for e in cp.log if e[0] == "launch"][-1] == 5


def test_cross_block_results_repeat_whatever_the_block_order(emulated_cupy):
    # Blocks run two at a time in a fresh order at every launch: counts, min, max and the
    # fixed-order sums must come out the same every time.
    cp = emulated_cupy
    host = np.random.default_rng(8).standard_normal(260 * 1024).astype(np.float32)
    backend, device = _device(cp.asarray(host))
    runs = [backend.histogram_even(device, 50).result() for _ in range(3)]
    multi = [backend.histograms([device, device]) for _ in range(2)]
    want = nb.histogram_even(host, 50).result()
    for got in runs:
        np.testing.assert_array_equal(got.counts, want.counts)
        assert got.stats == runs[0].stats
    assert_stats_match(runs[0].stats, want.stats, host)
    for pending in multi:
        first, second = pending.result()
        np.testing.assert_array_equal(first.counts, nb.histogram_fixed(host, None).result().counts)
        assert first.stats == second.stats == multi[0].result()[0].stats


def test_dropping_a_result_never_waits_on_the_caller(emulated_cupy):
    import threading
    import time as time_module

    cp = emulated_cupy
    backend, device = _device(cp.asarray(np.arange(1000.0)))
    pending = backend.histogram_fixed(device, None)
    del pending  # unread: its buffers must outlive the copy, but the caller must not wait
    assert threading.get_ident() not in cp.waits
    deadline = time_module.monotonic() + 60
    while not cp.waits and time_module.monotonic() < deadline:
        time_module.sleep(0.01)  # the release thread waits on the event instead
    assert cp.waits and threading.get_ident() not in cp.waits


def test_warm_up_compiles_off_the_calling_thread(emulated_cupy, tmp_path):
    import threading

    import gpu_summary as gs

    cp = emulated_cupy
    from gpu_summary._backend.cuda import runtime

    runtime._functions.clear()
    runtime._modules.clear()
    thread = gs.warm_up(["float32", np.float16], device=0)
    thread.join(timeout=120)
    assert not thread.is_alive()
    compiled = {(f, t) for f, _, t in cp.compiles}
    assert {f for f, _ in compiled} == set(catalogue.MODULES)
    assert threading.get_ident() not in {t for _, t in compiled}
    assert len(cp.compiles) == 2 * len(catalogue.MODULES)  # one program per module and dtype
    cp.compiles.clear()
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("h", cp.asarray(np.ones(10, np.float32)), 0)
        writer.add_histogram("e", cp.asarray(np.ones(10, np.float16)), 0, bins=4)
    assert cp.compiles == []  # nothing left to compile on the training thread
    with pytest.raises(ValueError, match="no kernel reads"):
        gs.warm_up(["complex64"])
    with pytest.raises(ValueError, match="device must be"):
        gs.warm_up("float32", device=-1)
