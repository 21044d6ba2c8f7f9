"""The host reductions compiled: statistics and histograms in one pass, on every core.

``reduce`` is the specification; this module computes the same results with kernels compiled
by numba (the optional ``fast`` extra), and falls back to ``reduce`` wherever they cannot run:
numba is missing, ``GPU_SUMMARY_COMPILED=0`` is set, the dtype has no kernel (non-native byte
order, ``longdouble``), or the kernels of a dtype are still compiling. Counts, min and max equal
the specification's bit for bit; sums within ``MOMENT_RTOL`` of ``sum(|x|)`` (the tolerance the
CUDA kernels meet), because the summation order differs.

How each dtype is read:

* float32 and float64, in blocks of 4,096 values that stay in L1: one vectorised pass for
  the moments, min and max (on the values' bits made sortable as integers, which vectorises
  where float comparisons with NaN semantics do not) and a count of NaN/±Inf; then one pass that
  counts the buckets — the ladder through its cell table (``_ladder``), an exact binary search
  for values in cells that hold a limit; edges by binary search; even buckets by the
  specification's estimate and correction. A block holding NaN or ±Inf is done by a careful
  loop that counts them and leaves them out.
* int32, uint32, int64, uint64: each block converted to float64 (as the specification does,
  rounding int64 beyond 2**53 to nearest), then as float64.
* bool, int8, uint8, int16, uint16, float16: the 256 or 65,536 bit patterns are counted in one
  pass, and the histogram and stats follow exactly from the patterns' values and counts.

Arrays of at least ``PART`` values are split into contiguous parts counted on a pool of
threads (the kernels run without the GIL); counts merge exactly, sums in a fixed order.
Non-contiguous arrays are copied ``SLAB`` values at a time, never whole.

Compiling takes about a second per dtype (then numba's on-disk cache loads it in a few tens of
milliseconds); it happens on a background thread at a dtype's first use, which meanwhile takes
the specification's path, so no call waits for the compiler. :func:`prepare` compiles ahead
(tests and benchmarks wait for it).
"""

from __future__ import annotations

import concurrent.futures
import functools
import importlib.util
import math
import os
import threading
from collections.abc import Callable, Iterator

import numpy as np

from gpu_summary._backend.numpy import images as reference_images
from gpu_summary._backend.numpy import reduce as reference
from gpu_summary._backend.numpy.anomaly import anomaly as reference_anomaly
from gpu_summary._backend.numpy.arrays import CHUNK, quiet_overflow
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import AnomalyResult, HistogramResult, Pending, Ready, TensorStats

PART = 1 << 20  # arrays this large are split over threads, parts at least this large
SLAB = 1 << 20  # values copied at a time from a non-contiguous array
# Arrays smaller than this never start a compile (numba's import alone costs ~0.5 s of CPU, more
# than the specification spends on them in a short script); once compiled, all sizes use it.
COMPILE_FROM = 1 << 16

# How a part is reduced (the kernels' ``mode``).
LADDER, EDGES, EVEN, STATS = 0, 1, 2, 3

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_WIDE_INTS = tuple(np.dtype(t) for t in (np.int32, np.uint32, np.int64, np.uint64))
_PATTERNS = tuple(
    np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.float16)
)
SUPPORTED = _FLOATS + _WIDE_INTS + _PATTERNS


def enabled() -> bool:
    """Whether compiled kernels may be used: numba is installed (looked up, not imported: that
    happens on the compiling thread) and ``GPU_SUMMARY_COMPILED`` does not switch them off."""
    if os.environ.get("GPU_SUMMARY_COMPILED", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _numba_installed() and _kernel_module is not _NO_NUMBA


@functools.cache
def _numba_installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a finder that refuses it; sys.modules["numba"] = None
        return False


# --- the kernels (built on first use; numba is optional) -------------------------------------

_kernel_module: object = None
_kernel_lock = threading.Lock()
_NO_NUMBA = object()


def _kernels() -> object:
    """The namespace of compiled kernels, or None without numba."""
    global _kernel_module
    if _kernel_module is None:
        with _kernel_lock:
            if _kernel_module is None:
                try:
                    _kernel_module = _build_kernels()
                except ImportError:
                    _kernel_module = _NO_NUMBA
    return None if _kernel_module is _NO_NUMBA else _kernel_module


def _build_kernels() -> object:
    from gpu_summary._backend.numpy import compiled_kernels

    return compiled_kernels


# --- running parts on threads -----------------------------------------------------------------

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def _thread_pool() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_workers(), thread_name_prefix="gpu_summary reduce"
            )
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _in_parts(count: int, work: Callable[[int, int], object]) -> list[object]:
    """``work(start, stop)`` over contiguous parts of range(count), on the pool's threads and
    this one; results in part order."""
    parts = max(1, min(_workers(), count // PART))
    if parts == 1 or threading.current_thread().name.startswith("gpu_summary reduce"):
        return [work(0, count)]
    bounds = [count * k // parts for k in range(parts + 1)]
    try:
        futures = [_thread_pool().submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    except RuntimeError:  # interpreter shutdown: no new threads
        return [work(0, count)]
    return [work(bounds[0], bounds[1]), *(f.result() for f in futures)]


def _in_parts_by_item(count: int, work: Callable[[int, int], object]) -> None:
    """``work(first, stop)`` over ranges of ``count`` items (images), one per thread."""
    parts = max(1, min(_workers(), count))
    bounds = [count * k // parts for k in range(parts + 1)]
    futures = []
    if parts > 1 and not threading.current_thread().name.startswith("gpu_summary reduce"):
        try:
            futures = [
                _thread_pool().submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)
            ]
        except RuntimeError:  # interpreter shutdown
            futures = []
    work(bounds[0], bounds[1] if futures else count)
    for future in futures:
        future.result()


def _pieces(values: np.ndarray) -> Iterator[np.ndarray]:
    """1-D contiguous pieces covering every element once (views when contiguous)."""
    if values.ndim == 0:
        yield values.reshape(1)
    elif values.flags.c_contiguous or values.flags.f_contiguous:
        yield values.ravel(order="K")
    else:
        inner = max(1, values[0].size) if values.shape[0] else 1
        step = max(1, SLAB // inner)
        for start in range(0, values.shape[0], step):
            yield np.ascontiguousarray(values[start : start + step]).reshape(-1)


# --- which inputs the kernels take, and compiling them off the caller's thread ----------------

_INT32_KEY = (31, 0x7FFFFFFF, 0x7F800000)  # float32: sign shift, magnitude and exponent masks
_INT64_KEY = (63, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)  # float64 (and wide ints, converted)

_state: dict[tuple[np.dtype, bool], str] = {}  # variant -> "compiling" | "ready" | "failed"
_state_lock = threading.Lock()


def _variant(piece: np.ndarray) -> tuple[np.dtype, bool] | None:
    """The kernels a 1-D contiguous piece needs (its dtype, whether it is read-only, which
    numba compiles apart), or None when none reads it."""
    if piece.dtype not in SUPPORTED:  # also rejects non-native byte order ('>f4' != float32)
        return None
    return piece.dtype, not piece.flags.writeable


def _usable(variant: tuple[np.dtype, bool], size: int) -> bool:
    """Whether the kernels of ``variant`` are compiled; if nobody has asked for them yet and
    ``size`` values are worth it (``COMPILE_FROM``), compile them on a background thread (the
    caller takes the specification's path meanwhile)."""
    state = _state.get(variant)
    if state == "ready":
        return True
    if state is None and size >= COMPILE_FROM and enabled():
        with _state_lock:
            if variant not in _state:
                _state[variant] = "compiling"
                threading.Thread(
                    target=_compile, args=(variant,), name="gpu_summary compile", daemon=True
                ).start()
    return False


def _compile(variant: tuple[np.dtype, bool]) -> None:
    dtype, readonly = variant
    sample = np.array([0, 1, 2, 3, 4], dtype=np.float64).astype(dtype)
    sample.setflags(write=not readonly)
    try:
        for mode in (LADDER, EDGES, EVEN, STATS):
            _reduce_piece(sample, mode, _limits_for(mode, sample), 0.0, 1.0, False, 4, False)
        if dtype in _FLOATS:  # and the anomaly report's kernels
            _anomaly_report(sample, 0.5, 2.5, 2, 2)
        if variant == (np.dtype(np.uint8), False):  # and the thumbnails' kernel
            image = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
            _shrink_range(_kernels(), image, np.empty((1, 2, 2, 3), np.uint8), 0, 1)
    except Exception as exc:  # noqa: BLE001 - a compiler failure must not reach the caller
        import warnings

        warnings.warn(
            f"gpu_summary: compiling the host kernels for {dtype} failed ({exc}); its "
            "reductions take the NumPy path",
            RuntimeWarning,
            stacklevel=1,
        )
        _state[variant] = "failed"
        return
    _state[variant] = "ready"


def _limits_for(mode: int, sample: np.ndarray) -> np.ndarray:
    if mode == EVEN:
        return _read_only(reference.even_edges(0.0, 4.0, 4))
    return _ladder.LIMITS


def prepare(dtypes: tuple = SUPPORTED, readonly: tuple[bool, ...] = (False, True)) -> bool:
    """Compile (or load from numba's cache) the kernels of ``dtypes`` on this thread, now.

    Returns:
        Whether compiled kernels are in use (False without numba or when switched off).
    """
    if not enabled() or _kernels() is None:
        return False
    for dtype in dtypes:
        for flag in readonly:
            variant = (np.dtype(dtype), flag)
            with _state_lock:
                if _state.get(variant) == "ready":
                    continue
                _state[variant] = "compiling"
            _compile(variant)
    return True


def _read_only(array: np.ndarray) -> np.ndarray:
    """A read-only float64 C-contiguous copy (one kernel signature for every limits array)."""
    array = np.array(array, dtype=np.float64, order="C", copy=True)
    array.setflags(write=False)
    return array


# --- the reductions -----------------------------------------------------------------------------


class _Totals:
    """Counts and stats merged over parts and pieces, exactly (sums in a fixed order)."""

    def __init__(self, buckets: int) -> None:
        self.counts = np.zeros(buckets, np.int64)
        self.count = self.nan = self.posinf = self.neginf = 0
        self.lowest = math.inf
        self.highest = -math.inf
        self.sum = self.sum_squares = 0.0

    def add(
        self, counts: np.ndarray, count: int, lowest: float, highest: float,
        sums: tuple[float, float], nonfinite: tuple[int, int, int],
    ) -> None:  # fmt: skip
        self.counts += counts
        if count:
            self.count += count
            self.lowest = min(self.lowest, lowest)
            self.highest = max(self.highest, highest)
        self.sum += sums[0]
        self.sum_squares += sums[1]
        self.nan += nonfinite[0]
        self.posinf += nonfinite[1]
        self.neginf += nonfinite[2]

    def stats(self) -> TensorStats:
        return TensorStats.of(
            self.count, self.lowest, self.highest, self.sum, self.sum_squares,
            self.nan, self.posinf, self.neginf,
        )  # fmt: skip


def _key_value(key: int, float32: bool) -> float:
    """The float whose sortable key is ``key`` (the key is its own inverse)."""
    top, magnitude, _ = _INT32_KEY if float32 else _INT64_KEY
    bits = key ^ ((key >> top) & magnitude)
    if float32:
        return float(np.array([bits], np.int64).astype(np.int32).view(np.float32)[0])
    return float(np.array([bits], np.int64).view(np.float64)[0])


def _reduce_piece(
    piece: np.ndarray, mode: int, limits: np.ndarray, lo: float, step: float, half: bool,
    bins: int, split: bool, totals: _Totals | None = None,
) -> _Totals:  # fmt: skip
    """Reduce one 1-D contiguous piece (its variant compiled) into ``totals``."""
    kernels = _kernels()
    buckets = 0 if mode == STATS else (bins if mode == EVEN else limits.size)
    totals = totals or _Totals(buckets)
    if piece.dtype in _PATTERNS:
        _reduce_patterns(kernels, piece, mode, limits, bins, split, totals)
        return totals
    float32 = piece.dtype == np.float32
    if piece.dtype in _FLOATS:
        key_type, bit_type = (np.int32, np.uint32) if float32 else (np.int64, np.uint64)
        shift = bit_type(8 * piece.itemsize - _ladder.CELL_BITS)
        table = _ladder.cell_table(piece.dtype)
        top, magnitude, exponent = _INT32_KEY if float32 else _INT64_KEY
    else:
        table = _ladder.cell_table(np.float64)

    def work(start: int, stop: int) -> tuple:
        x = piece[start:stop]
        counts = np.zeros(buckets, np.int64)
        tally = np.zeros(6, np.int64)
        kernels.start_tally(tally)
        sums = np.zeros(2, np.float64)
        if piece.dtype in _FLOATS:
            kernels.reduce_float(
                x, x.view(key_type), x.view(bit_type), top, magnitude, exponent, mode, table,
                shift, limits, lo, step, half, bins, counts, tally, sums,
            )  # fmt: skip
        else:
            kernels.reduce_wide_int(
                x, mode, table, limits, lo, step, half, bins, counts, tally, sums
            )
        return counts, tally, sums

    parts = _in_parts(piece.size, work) if split else [work(0, piece.size)]
    key_is_32 = float32
    for counts, tally, sums in parts:
        count = int(tally[0])
        lowest = _key_value(int(tally[1]), key_is_32) if count else 0.0
        highest = _key_value(int(tally[2]), key_is_32) if count else 0.0
        totals.add(counts, count, lowest, highest, (float(sums[0]), float(sums[1])),
                   (int(tally[3]), int(tally[4]), int(tally[5])))  # fmt: skip
    return totals


def _reduce_patterns(
    kernels: object, piece: np.ndarray, mode: int, limits: np.ndarray, bins: int, split: bool,
    totals: _Totals,
) -> None:  # fmt: skip
    """bool, 8- and 16-bit data: count each bit pattern, then every result from the patterns'
    values (as float64, exactly the specification's) weighted by their counts."""
    unsigned = np.uint8 if piece.itemsize == 1 else np.uint16
    patterns = piece.view(unsigned)

    def work(start: int, stop: int) -> np.ndarray:
        counts = np.zeros(1 << (8 * piece.itemsize), np.int64)
        kernels.count_patterns(patterns[start:stop], counts)
        return counts

    parts = _in_parts(patterns.size, work) if split else [work(0, patterns.size)]
    found = parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
    present = np.flatnonzero(found)
    weights = found[present]
    with np.errstate(invalid="ignore", over="ignore"):
        values = present.astype(unsigned).view(piece.dtype).astype(np.float64)
        finite = np.isfinite(values)
        nonfinite = (
            int(weights[np.isnan(values)].sum()),
            int(weights[values == np.inf].sum()),
            int(weights[values == -np.inf].sum()),
        )
        values, weights = values[finite], weights[finite]
        counts = np.zeros(totals.counts.size, np.int64)
        if mode != STATS and values.size:
            if mode == EVEN:
                index = reference.even_bucket_index(values, limits)
            else:
                index = np.minimum(np.searchsorted(limits, values, side="right"),
                                   limits.size - 1)  # fmt: skip
            np.add.at(counts, index, weights)
        as_float = weights.astype(np.float64)
        sums = (float(np.dot(as_float, values)), float(np.dot(as_float, values * values)))
    count = int(weights.sum())
    lowest = float(values.min()) if count else 0.0
    highest = float(values.max()) if count else 0.0
    totals.add(counts, count, lowest, highest, sums, nonfinite)


def _reduce(
    values: np.ndarray, mode: int, limits: np.ndarray = _ladder.LIMITS, lo: float = 0.0,
    step: float = 0.0, half: bool = False, bins: int = 0, split: bool = True,
) -> _Totals | None:  # fmt: skip
    """The compiled reduction of ``values``, or None where the kernels cannot take it (the
    caller then takes the specification's path)."""
    if values.size == 0 or not enabled():
        return None
    pieces = _pieces(values)
    first = next(pieces)
    variant = _variant(first)
    if variant is None or not _usable(variant, values.size):
        return None
    totals = _reduce_piece(first, mode, limits, lo, step, half, bins, split)
    for piece in pieces:
        if not _usable(_variant(piece), values.size):  # a slab copy is writable: its own kernels
            return None
        _reduce_piece(piece, mode, limits, lo, step, half, bins, split, totals)
    return totals


@quiet_overflow
def tensor_stats(values: np.ndarray) -> Pending[TensorStats]:
    """``reduce.tensor_stats``, compiled."""
    totals = _reduce(values, STATS)
    return reference.tensor_stats(values) if totals is None else Ready(totals.stats())


def _histogram_fixed(values: np.ndarray, limits: np.ndarray | None, split: bool) -> HistogramResult:
    if limits is None:
        totals = _reduce(values, LADDER, split=split)
        limits = _ladder.LIMITS
    else:
        totals = _reduce(values, EDGES, _read_only(limits), split=split)
    if totals is None:
        return reference.histogram_fixed(values, limits).result()
    return HistogramResult(limits=limits, counts=totals.counts, stats=totals.stats())


@quiet_overflow
def histogram_fixed(values: np.ndarray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """``reduce.histogram_fixed``, compiled."""
    return Ready(_histogram_fixed(values, limits, split=True))


@quiet_overflow
def even_counts(values: np.ndarray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """``reduce.even_counts``, compiled."""
    edges = _read_only(reference.even_edges(lo, hi, bins))
    first, last = float(edges[0]), float(edges[-1])
    half = not math.isfinite(last - first)
    step = last / 2 / bins - first / 2 / bins if half else (last - first) / bins
    totals = _reduce(values, EVEN, edges, first, step, half, bins)
    if totals is None:
        return reference.even_counts(values, lo, hi, bins)
    return Ready(totals.counts)


def histogram_even(values: np.ndarray, bins: int) -> Pending[HistogramResult]:
    """``reduce.histogram_even``, compiled."""
    return reference.histogram_even(values, bins, stats=tensor_stats, counts=even_counts)


@quiet_overflow
def histograms(tensors: list[np.ndarray]) -> Pending[list[HistogramResult]]:
    """``reduce.histograms``, compiled: the tensors shared out over the threads (each counted
    whole by one), largest first."""
    sizes = [int(t.size) for t in tensors]
    workers = _workers()
    if workers == 1 or sum(sizes) < 2 * PART or len(tensors) == 1:
        return Ready([_histogram_fixed(t, None, split=True) for t in tensors])
    groups: list[list[int]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for index in sorted(range(len(tensors)), key=lambda k: -sizes[k]):
        lightest = loads.index(min(loads))
        groups[lightest].append(index)
        loads[lightest] += sizes[index]
    results: list[HistogramResult | None] = [None] * len(tensors)

    def run(group: list[int]) -> None:
        for index in group:
            results[index] = _histogram_fixed(tensors[index], None, split=False)

    try:
        futures = [_thread_pool().submit(run, group) for group in groups[1:] if group]
    except RuntimeError:  # interpreter shutdown
        futures = []
        run([k for group in groups[1:] for k in group])
    run(groups[0])
    for future in futures:
        future.result()
    return Ready(results)


def thumbnails(images: np.ndarray, max_size: int | None) -> Pending[np.ndarray]:
    """``images.thumbnails``, the area averages compiled and shared out over the threads by
    image (a few images converted to uint8 at a time, as the specification does)."""
    n, h, w, c = images.shape
    out_h, out_w = reference_images.thumbnail_size(h, w, max_size)
    if (out_h, out_w) == (h, w) or not enabled() or n == 0:
        return reference_images.thumbnails(images, max_size)
    variant = (np.dtype(np.uint8), False)  # the kernel's input: each group as uint8
    if not _usable(variant, images.size):
        return reference_images.thumbnails(images, max_size)
    kernels = _kernels()
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    per_group = max(1, CHUNK * 64 // max(1, h * w * c))

    for start in range(0, n, per_group):
        group = reference_images.image_to_uint8(images[start : start + per_group])
        if not group.flags.c_contiguous:  # one kernel signature: C-contiguous, writable
            group = np.ascontiguousarray(group)
        if not group.flags.writeable:
            group = group.copy()
        local = out[start : start + len(group)]
        _in_parts_by_item(len(group), functools.partial(_shrink_range, kernels, group, local))
    return Ready(out)


def _shrink_range(
    kernels: object, group: np.ndarray, out: np.ndarray, first: int, stop: int
) -> None:
    scratch = np.empty(group.shape[2] * group.shape[3], np.int64)
    for k in range(first, stop):
        kernels.shrink_image(group[k], out[k], scratch)


def _c_order_pieces(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(flat C-order index of the first element, 1-D float32/float64 piece) covering
    ``values`` in C order: a view when C-contiguous, else slabs copied; other dtypes converted
    to float64 (as the specification compares them)."""
    if values.ndim == 0 or values.flags.c_contiguous:
        parts = [(0, values.reshape(-1))]
    else:
        inner = max(1, values[0].size) if values.shape[0] else 1
        step = max(1, SLAB // inner)
        parts = ((start * inner, np.ascontiguousarray(values[start : start + step]).reshape(-1))
                 for start in range(0, values.shape[0], step))  # fmt: skip
    for start, piece in parts:
        yield start, piece if piece.dtype in _FLOATS else piece.astype(np.float64)


@quiet_overflow
def anomaly(
    values: np.ndarray,
    lower: float | None,
    upper: float | None,
    max_positions: int,
    cells: int,
) -> Pending[AnomalyResult]:
    """``anomaly.anomaly``, compiled: one pass for the counts, positions, histogram, moments
    and heat map; the quantiles' order statistics from a second pass that gathers only the
    values of the ladder buckets holding them (found from the histogram's counts)."""
    if values.size and enabled():
        first = next(_c_order_pieces(values))[1]
        usable = _usable(_variant(first), values.size)
        if usable and _usable((first.dtype, False), values.size):
            return Ready(_anomaly_report(values, lower, upper, max_positions, cells))
    return reference_anomaly(values, lower, upper, max_positions, cells)


def _anomaly_report(
    values: np.ndarray, lower: float | None, upper: float | None, max_positions: int, cells: int
) -> AnomalyResult:
    kernels = _kernels()
    n = int(values.size)
    rows, width, cell_rows, cell_columns = _anomaly.heat_grid(n, cells)
    row_cell = np.repeat(np.arange(cell_rows), np.diff(_anomaly.cell_bounds(rows, cell_rows)))
    column_cell = np.repeat(
        np.arange(cell_columns), np.diff(_anomaly.cell_bounds(width, cell_columns))
    )
    size = cell_rows * cell_columns
    heat_sum = np.zeros(size, np.float64)
    heat_count = np.zeros(size, np.int64)
    heat_nonfinite = np.zeros(size, np.int64)
    counts = np.zeros(_ladder.N_LIMITS, np.int64)
    tally = np.zeros(7, np.int64)
    sums = np.array([0.0, 0.0, np.inf, -np.inf])
    positions = np.zeros(max_positions, np.int64)
    position_values = np.zeros(max_positions, np.float64)
    grid = (0, 0)
    for start, piece in _c_order_pieces(values):
        bit_type = np.uint32 if piece.dtype == np.float32 else np.uint64
        grid = kernels.anomaly_piece(
            piece, start, 0.0 if lower is None else float(lower),
            0.0 if upper is None else float(upper), lower is not None, upper is not None,
            positions, position_values, _ladder.cell_table(piece.dtype),
            bit_type(8 * piece.itemsize - _ladder.CELL_BITS), piece.view(bit_type),
            _ladder.LIMITS, counts, tally, sums, width, grid[0], grid[1], row_cell,
            column_cell, cell_columns, heat_sum, heat_count, heat_nonfinite,
        )  # fmt: skip
    count = int(tally[0])
    stats = TensorStats.of(count, sums[2], sums[3], sums[0], sums[1], *map(int, tally[1:4]))
    return AnomalyResult(
        shape=tuple(values.shape),
        stats=stats,
        below=int(tally[4]),
        above=int(tally[5]),
        positions=positions[: tally[6]].copy(),
        position_values=position_values[: tally[6]].copy(),
        order_stats=_order_stats(kernels, values, counts, count),
        heat_sum=heat_sum.reshape(cell_rows, cell_columns),
        heat_count=heat_count.reshape(cell_rows, cell_columns),
        heat_nonfinite=heat_nonfinite.reshape(cell_rows, cell_columns),
        histogram=HistogramResult(limits=_ladder.LIMITS, counts=counts, stats=stats),
    )


def _order_stats(kernels: object, values: np.ndarray, counts: np.ndarray, count: int) -> np.ndarray:
    """The finite values at ``quantile_ranks(count)``: buckets are disjoint ranges in value
    order, so rank r lies in the bucket where the cumulative count passes r, and is the
    (r - values in lower buckets)-th smallest there; only those buckets' values are gathered
    and partitioned."""
    if count == 0:
        return np.zeros(0)
    ranks = _anomaly.quantile_ranks(count)
    cumulative = np.cumsum(counts)
    buckets = np.searchsorted(cumulative, ranks, side="right")
    wanted = np.zeros(counts.size, np.bool_)
    wanted[buckets] = True
    before = cumulative - counts  # values in lower buckets
    gathered_before = np.cumsum(np.where(wanted, counts, 0)) - np.where(wanted, counts, 0)
    gathered = np.empty(int(counts[wanted].sum()), np.float64)
    filled = np.zeros(1, np.int64)
    for _, piece in _c_order_pieces(values):
        bit_type = np.uint32 if piece.dtype == np.float32 else np.uint64
        kernels.gather_buckets(
            piece, piece.view(bit_type), bit_type(8 * piece.itemsize - _ladder.CELL_BITS),
            _ladder.cell_table(piece.dtype), _ladder.LIMITS, wanted, gathered, filled,
        )  # fmt: skip
    where = ranks - before[buckets] + gathered_before[buckets]
    return np.partition(gathered, np.unique(where))[where]
