"""gs_reduce and gs_format_counts themselves, run on the CPU, against the NumPy backend.

The kernel module's exact source (the text NVRTC compiles, ladder spliced in) is compiled with
the host C++ compiler after tests/native/cuda_on_cpu.h, which runs each CUDA thread of a block
as a fiber from barrier to barrier (__syncthreads, per-warp exchanges for shuffles), two blocks
at a time on two real threads in an order shuffled at every launch (atomic builtins for
atomics). The test drives it as the device backend does — the same buffer layout
(``reduce_abi.ReduceBuffer``), launch arguments (``reduce_abi.reduce_args``), collapsed layouts
(``kernel_layout.kernel_view``) and result parsing (``reduce_abi.parse_result``) — so the per-block
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

from conftest import DTYPES, assert_stats_match, near_thresholds, sample_values
from gpu_summary._backend import numpy as nb
from gpu_summary._backend.cuda_kernels import formats as formats_abi
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import formats as _formats
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout
from support import emulator as emulator_module


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    """gs_reduce.cu compiled for the CPU, as a loaded library."""
    return emulator_module.build(kernel_sources.REDUCE_FILE, tmp_path_factory.mktemp("emulated"))


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
    view = kernel_layout.kernel_view(values.ctypes.data, values.shape, values.strides, itemsize)
    assert view is not None, "test views must not need a copy"
    pointer, shape, strides = view
    n_limits = 0 if limits is None else limits.size
    n_buckets = {
        reduce_abi.STATS: 0,
        reduce_abi.LADDER: _ladder.N_LIMITS,
        reduce_abi.EDGES: n_limits,
        reduce_abi.EVEN: bins,
    }[mode]
    buffer = reduce_abi.ReduceBuffer(n_buckets, grid, n_limits)
    memory = np.full(buffer.total_bytes, 0xAB, dtype=np.uint8)  # garbage, as fresh memory is
    memory[: buffer.zero_bytes] = 0  # the backend's memsetAsync
    base = memory.ctypes.data
    if limits is not None:
        memory[buffer.limits :].view(np.float64)[:] = limits
    modes = [reduce_abi.STATS, reduce_abi.EVEN] if mode == reduce_abi.EVEN else [mode]
    for launch_mode in modes:
        args = reduce_abi.reduce_args(
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
        shared = reduce_abi.reduce_shared_bytes(launch_mode, n_limits, bins)
        _launch(emulator, dtype_name, itemsize, launch_mode, grid, args, shared)
    return reduce_abi.parse_result(memory[: buffer.result_bytes], n_buckets)


def _check(emulator, values, mode, **kwargs):
    counts, stats = run_reduce(emulator, values, mode, **kwargs)
    if mode == reduce_abi.LADDER:
        want = nb.histogram_fixed(values, None).result()
    elif mode == reduce_abi.EDGES:
        want = nb.histogram_fixed(values, kwargs["limits"]).result()
    elif mode == reduce_abi.EVEN:
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
    _check(emulator, values, reduce_abi.STATS)
    _check(emulator, values, reduce_abi.LADDER)
    _check(emulator, values, reduce_abi.EDGES, limits=_EDGES)
    _check(emulator, values, reduce_abi.EVEN, bins=30)


def test_global_memory_counts_paths(emulator):
    values = sample_values(np.float32, 5_000)
    _check(emulator, values, reduce_abi.EDGES, limits=_MANY_EDGES)  # limits beyond shared memory
    _check(emulator, values, reduce_abi.EVEN, bins=reduce_abi.SHARED_EVEN_BINS + 1)


def test_ladder_near_every_limit_across_blocks(emulator):
    limits = _ladder.LIMITS[1:-1]
    near = np.concatenate([limits, np.nextafter(limits, np.inf), np.nextafter(limits, -np.inf)])
    _check(emulator, near, reduce_abi.LADDER, grid=5)
    _check(emulator, near.astype(np.float32), reduce_abi.LADDER, grid=2)


def test_bfloat16_bits(emulator):
    bits = np.arange(1 << 16, dtype=np.uint16)
    counts, stats = run_reduce(emulator, bits, reduce_abi.LADDER, dtype_name="bfloat16")
    with np.errstate(invalid="ignore"):
        as_f32 = (bits.astype(np.uint32) << 16).view(np.float32)
    want = nb.histogram_fixed(as_f32, None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, as_f32)


# Views of a 60 x 40 array that the kernels read where they lie.
LAYOUTS = {
    "transposed": lambda a: a.T,
    "sliced": lambda a: a[::3, 1:-1],
    "reversed": lambda a: a[::-1, ::-2],
    "4-d strided": lambda a: a.reshape(6, 10, 5, 8)[:, ::2, :, ::3],
    "0-d": lambda a: a[5, 7, ...],
    "empty": lambda a: a[:0],
    "broadcast": lambda a: np.broadcast_to(a[:1], (4, 40)),
}


@pytest.mark.parametrize("make", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_strided_layouts(emulator, make):
    values = make(sample_values(np.float64, 2400).reshape(60, 40))
    _check(emulator, values, reduce_abi.LADDER)
    _check(emulator, values, reduce_abi.EVEN, bins=7)


@pytest.mark.parametrize("values", [[np.nan, np.inf, -np.inf], [3.0], [2.5, 2.5], [-0.0, 0.0]])
def test_degenerate_inputs(emulator, values):
    array = np.array(values)
    _check(emulator, array, reduce_abi.LADDER, grid=1)
    _check(emulator, array, reduce_abi.EVEN, bins=5, grid=4)  # more blocks than values


def test_results_repeat_exactly(emulator):
    values = np.random.default_rng(5).standard_normal(20_000)
    first = run_reduce(emulator, values, reduce_abi.LADDER, grid=6)
    second = run_reduce(emulator, values, reduce_abi.LADDER, grid=6)
    np.testing.assert_array_equal(first[0], second[0])
    assert first[1] == second[1]  # sums too: a fixed reduction order


def test_more_block_partials_than_threads_repeat_exactly(emulator):
    # 300 blocks (the last block reduces more partials than it has threads), run two at a
    # time in a new order at each launch: the same counts and the same fixed-order sums.
    values = np.random.default_rng(9).standard_normal(300 * 1024 + 77)
    runs = [run_reduce(emulator, values, reduce_abi.LADDER, grid=300) for _ in range(3)]
    want = nb.histogram_fixed(values, None).result()
    for counts, stats in runs:
        np.testing.assert_array_equal(counts, want.counts)
        assert stats == runs[0][1]
    assert_stats_match(runs[0][1], want.stats, values)


def _probe_launch(emulator, state, values, grid, dtype_name=None):
    """One PROBE launch of gs_reduce adding ``values`` into the accumulator ``state``."""
    itemsize = values.dtype.itemsize
    view = kernel_layout.kernel_view(values.ctypes.data, values.shape, values.strides, itemsize)
    pointer, shape, strides = view
    args = reduce_abi.probe_args(state.ctypes.data, 0, pointer, values.size, shape, strides)
    shared = reduce_abi.reduce_shared_bytes(reduce_abi.PROBE)
    _launch(emulator, dtype_name or values.dtype.name, itemsize, reduce_abi.PROBE, grid, args,
            shared)  # fmt: skip


def test_probe_launches_accumulate_and_leave_their_counter_at_zero(emulator):
    # Launches of different grids into one accumulator, none zeroed in between: counts add,
    # stats combine, and each launch leaves blocks_done at zero for the next. The block
    # partials are never zeroed (garbage here): each block writes its own before it counts.
    rng = np.random.default_rng(11)
    steps = [sample_values(np.float32, 7_000, seed=1), rng.standard_normal(50_000),
             np.array([np.nan, -np.inf]), np.zeros(0), rng.standard_normal(3) * 1e-30]  # fmt: skip
    grids = [7, 40, 1, 3, 2]
    state = probe_layout.empty(0, reduce_abi.PROBE_BLOCKS)
    done = probe_layout.scratch(0)
    state[done + 1 :] = 0x0BADBADBADBADBAD
    for values, grid in zip(steps, grids, strict=True):
        _probe_launch(emulator, state, values, grid)
        assert state[done] == 0
    counts, stats, _ = probe_layout.parse(state, 0)
    together = np.concatenate([s.astype(np.float64) for s in steps])
    want = nb.histogram_fixed(together, None).result()
    np.testing.assert_array_equal(counts, want.counts)
    assert_stats_match(stats, want.stats, together)


def test_probe_accumulators_repeat_exactly(emulator):
    values = np.random.default_rng(12).standard_normal(30_000)
    states = [probe_layout.empty(0, reduce_abi.PROBE_BLOCKS) for _ in range(3)]
    for state in states:
        for grid in (9, 30, 9):
            _probe_launch(emulator, state, values, grid)
    head = probe_layout.FORMATS
    assert all(np.array_equal(s[:head], states[0][:head]) for s in states[1:])


# -- gs_format_counts (kernels/gs_formats.cu) against the NumPy backend's format_counts -------


@pytest.fixture(scope="module")
def formats_emulator(tmp_path_factory):
    """gs_formats.cu compiled for the CPU, as a loaded library."""
    return emulator_module.build(
        kernel_sources.FORMATS_FILE, tmp_path_factory.mktemp("emulated_formats")
    )


def run_format_counts(lib, values, formats, *, dtype_name=None, grid=5, out=None):
    """gs_format_counts of a NumPy array as the device backend drives it, added to ``out``
    (uint64 words; zeroed here when None); the counts as int64 (formats x 2)."""
    dtype_name = dtype_name or values.dtype.name
    if out is None:
        out = np.zeros(2 * len(formats), np.uint64)
    view = kernel_layout.kernel_view(values.ctypes.data, values.shape, values.strides,
                                     values.itemsize)  # fmt: skip
    assert view is not None, "test views must not need a copy"
    args = formats_abi.format_args(*view[:1], values.size, *view[1:], dtype_name, formats,
                                   out.ctypes.data)  # fmt: skip
    size = lib.emu_gs_format_counts(
        emulator_module.TYPE_CODES[dtype_name], ctypes.c_uint(grid),
        *emulator_module.as_ctypes(args),
    )  # fmt: skip
    assert size == values.itemsize, f"{dtype_name}: kernel type is {size} bytes"
    return formats_abi.parse(out.view(np.uint8), len(formats))


def _format_values(dtype):
    if dtype == "bfloat16":  # every pattern, as uint16 bits; the specification reads float32
        bits = np.arange(1 << 16, dtype=np.uint16)
        with np.errstate(invalid="ignore"):
            return bits, (bits.astype(np.uint32) << 16).view(np.float32)
    values = near_thresholds(dtype)
    if np.dtype(dtype).kind == "f":
        spread = sample_values(dtype, 4_000, seed=4)
        values = np.concatenate([values, spread, np.ldexp(spread[:2000], -100).astype(dtype)])
    else:
        values = np.concatenate([values, sample_values(dtype, 4_000, seed=4)])
    return values, values


@pytest.mark.parametrize(
    "dtype", [np.float16, "bfloat16", np.float32, np.float64, np.int64, np.int16, np.bool_]
)
def test_format_counts_equal_numpy_for_every_kind_of_input(formats_emulator, dtype):
    stored, host = _format_values(dtype)
    name = "bfloat16" if dtype == "bfloat16" else None
    want = nb.format_counts(host, _formats.FORMATS).result()
    got = run_format_counts(formats_emulator, stored, _formats.FORMATS, dtype_name=name)
    np.testing.assert_array_equal(got, want)
    some = ("bfloat16", "float8_e4m3fn")  # fewer formats, in the caller's order
    got = run_format_counts(formats_emulator, stored, some, dtype_name=name, grid=1)
    np.testing.assert_array_equal(got, nb.format_counts(host, some).result())


@pytest.mark.parametrize("make", LAYOUTS.values(), ids=LAYOUTS.keys())
def test_format_counts_of_strided_layouts(formats_emulator, make):
    base = np.resize(near_thresholds(np.float32), 2400).reshape(60, 40)
    values = make(base)
    got = run_format_counts(formats_emulator, values, _formats.FORMATS, grid=3)
    np.testing.assert_array_equal(got, nb.format_counts(values, _formats.FORMATS).result())


def test_format_counts_add_to_what_out_holds(formats_emulator):
    # A probe's buffer is never zeroed by the kernel: launches accumulate.
    values = near_thresholds(np.float64)
    out = np.zeros(4, np.uint64)
    formats = ("float16", "float8_e5m2")
    once = nb.format_counts(values, formats).result()
    for _ in range(3):
        got = run_format_counts(formats_emulator, values, formats, out=out, grid=4)
    np.testing.assert_array_equal(got, 3 * once)
