"""gs_reduce itself, run on the CPU, against the NumPy backend.

The kernel module's exact source (the text NVRTC compiles, ladder spliced in) is compiled with
the host C++ compiler after tests/native/cuda_on_cpu.h, which runs each CUDA thread of a block
as a fiber from barrier to barrier (__syncthreads, per-warp exchanges for shuffles), two blocks
at a time on two real threads in an order shuffled at every launch (atomic builtins for
atomics). The test drives it as the device backend does — the same buffer layout
(``_kernels.ReduceBuffer``), launch arguments (``_kernels.reduce_args``), collapsed layouts
(``_layout.kernel_view``) and result parsing (``_kernels.parse_result``) — so the per-block
shared-memory histograms, the fixed-order reduction of block partials by the last block, the
even-bin pass that reads min and max from the stats pass, strided addressing and every dtype
are checked on every CI run, without a GPU. What it cannot check: timing, the weaker memory
ordering of a GPU between concurrently running blocks, and CuPy's launch itself
(tests/test_backend_cuda.py does, on a GPU).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from gpu_summary import _kernels, _ladder
from gpu_summary._backend import _layout
from gpu_summary._backend import numpy as nb

import emulator as emulator_module
from conftest import DTYPES, assert_stats_match, sample_values


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """gs_reduce.cu compiled for the CPU, as a loaded library."""
    return emulator_module.build(_kernels.REDUCE_FILE, tmp_path_factory.mktemp("emulated"))


def _launch(emulator, dtype_name, itemsize, mode, grid, args, shared):
    size = emulator.emu_gs_reduce(
        emulator_module.TYPE_CODES[dtype_name],
        mode,
        ctypes.c_uint(grid),
        ctypes.c_uint64(shared),
        *emulator_module.as_ctypes(args),
    )
    assert size == itemsize, f"{dtype_name}: kernel type is {size} bytes"


def run_reduce(emulator, values, mode, *, limits=None, bins=0, grid=3, dtype_name=None):
    """Histogram (or stats) of a NumPy array by gs_reduce, as the device backend drives it."""
    dtype_name = dtype_name or values.dtype.name
    itemsize = values.dtype.itemsize
    view = _layout.kernel_view(values.ctypes.data, values.shape, values.strides, itemsize)
    assert view is not None, "test views must not need a copy"
    pointer, shape, strides = view
    n_limits = 0 if limits is None else limits.size
    n_buckets = {
        _kernels.STATS: 0,
        _kernels.LADDER: _ladder.N_LIMITS,
        _kernels.EDGES: n_limits,
        _kernels.EVEN: bins,
    }[mode]
    buffer = _kernels.ReduceBuffer(n_buckets, grid, n_limits)
    memory = np.full(buffer.total_bytes, 0xAB, dtype=np.uint8)  # garbage, as fresh memory is
    memory[: buffer.zero_bytes] = 0  # the backend's memsetAsync
    base = memory.ctypes.data
    if limits is not None:
        memory[buffer.limits :].view(np.float64)[:] = limits
    modes = [_kernels.STATS, _kernels.EVEN] if mode == _kernels.EVEN else [mode]
    for launch_mode in modes:
        args = _kernels.reduce_args(
            buffer,
            base,
            launch_mode,
            pointer,
            values.size,
            shape,
            strides,
            limits=base + buffer.limits if n_limits else 0,
            n_limits=n_limits,
            bins=bins,
        )
        shared = _kernels.reduce_shared_bytes(launch_mode, n_limits, bins)
        _launch(emulator, dtype_name, itemsize, launch_mode, grid, args, shared)
    return _kernels.parse_result(memory[: buffer.result_bytes], n_buckets)


def _check(emulator, values, mode, **kwargs):
    counts, stats = run_reduce(emulator, values, mode, **kwargs)
    if mode == _kernels.LADDER:
        want = nb.histogram_fixed(values, None).result()
    elif mode == _kernels.EDGES:
        want = nb.histogram_fixed(values, kwargs["limits"]).result()
    elif mode == _kernels.EVEN:
        want = nb.histogram_even(values, kwargs["bins"]).result()
    else:
        want = nb.histogram_fixed(values, None).result()  # its stats are tensor_stats'
        counts = want.counts
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, values)


_EDGES = np.append(np.linspace(-1e3, 1e3, 101), _ladder.DBL_MAX)
_MANY_EDGES = np.append(np.sort(np.random.default_rng(1).normal(size=3000)) * 1e4, 1.8e308)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_and_mode_equals_numpy(emulator, dtype):
    values = sample_values(dtype, 6_001)
    _check(emulator, values, _kernels.STATS)
    _check(emulator, values, _kernels.LADDER)
    _check(emulator, values, _kernels.EDGES, limits=_EDGES)
    _check(emulator, values, _kernels.EVEN, bins=30)


def test_global_memory_counts_paths(emulator):
    values = sample_values(np.float32, 5_000)
    _check(emulator, values, _kernels.EDGES, limits=_MANY_EDGES)  # limits beyond shared memory
    _check(emulator, values, _kernels.EVEN, bins=_kernels.SHARED_EVEN_BINS + 1)


def test_ladder_near_every_limit_across_blocks(emulator):
    limits = _ladder.LIMITS[1:-1]
    near = np.concatenate([limits, np.nextafter(limits, np.inf), np.nextafter(limits, -np.inf)])
    _check(emulator, near, _kernels.LADDER, grid=5)
    _check(emulator, near.astype(np.float32), _kernels.LADDER, grid=2)


def test_bfloat16_bits(emulator):
    bits = np.arange(1 << 16, dtype=np.uint16)
    counts, stats = run_reduce(emulator, bits, _kernels.LADDER, dtype_name="bfloat16")
    with np.errstate(invalid="ignore"):
        as_f32 = (bits.astype(np.uint32) << 16).view(np.float32)
    want = nb.histogram_fixed(as_f32, None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, as_f32)


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,
        lambda a: a[::3, 1:-1],
        lambda a: a[::-1, ::-2],
        lambda a: a.reshape(6, 10, 5, 8)[:, ::2, :, ::3],
        lambda a: a[5, 7, ...],  # a 0-d view
        lambda a: a[:0],
        lambda a: np.broadcast_to(a[:1], (4, 40)),
    ],
    ids=["transposed", "sliced", "reversed", "4-d strided", "0-d", "empty", "broadcast"],
)
def test_strided_layouts(emulator, make):
    values = make(sample_values(np.float64, 2400).reshape(60, 40))
    _check(emulator, values, _kernels.LADDER)
    _check(emulator, values, _kernels.EVEN, bins=7)


@pytest.mark.parametrize("values", [[np.nan, np.inf, -np.inf], [3.0], [2.5, 2.5], [-0.0, 0.0]])
def test_degenerate_inputs(emulator, values):
    array = np.array(values)
    _check(emulator, array, _kernels.LADDER, grid=1)
    _check(emulator, array, _kernels.EVEN, bins=5, grid=4)  # more blocks than values


def test_results_repeat_exactly(emulator):
    values = np.random.default_rng(5).standard_normal(20_000)
    first = run_reduce(emulator, values, _kernels.LADDER, grid=6)
    second = run_reduce(emulator, values, _kernels.LADDER, grid=6)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]  # sums too: a fixed reduction order


def test_more_block_partials_than_threads_repeat_exactly(emulator):
    # 300 blocks (the last block reduces more partials than it has threads), run two at a
    # time in a new order at each launch: the same counts and the same fixed-order sums.
    values = np.random.default_rng(9).standard_normal(300 * 1024 + 77)
    runs = [run_reduce(emulator, values, _kernels.LADDER, grid=300) for _ in range(3)]
    want = nb.histogram_fixed(values, None).result()
    for counts, stats in runs:
        np.testing.assert_array_equal(counts, want.counts)
        assert stats == runs[0][1]
    assert_stats_match(runs[0][1], want.stats, values)
