"""The host reductions compiled: statistics and histograms in one pass, on every core.

``reduce`` is the specification; this module computes the same results with kernels compiled
by numba (the optional ``fast`` extra), and falls back to ``reduce`` wherever they cannot run:
numba is missing, ``GPU_SUMMARY_COMPILED=0`` is set, the dtype has no kernel (non-native byte
order, ``longdouble``), or the kernels of a dtype are still compiling. Counts, min and max equal
the specification's bit for bit; sums within ``MOMENT_RTOL`` of ``sum(|x|)`` (the tolerance the
CUDA kernels meet), because the summation order differs.

How each dtype is read:

* float32 and float64, in blocks of 4,096 values that stay in L1. The ladder's buckets are
  counted first, as the block comes from memory, through the cell table
  (``_ladder.compare_table``: a value in a cell that holds a limit takes one comparison, NaN and
  ±Inf go to a row that is never added); then one vectorised pass, from L1, for the moments,
  min and max (on the values' bits made sortable as integers, which vectorises where float
  comparisons with NaN semantics do not) and a count of NaN/±Inf. Edges are searched after the
  moments. A block holding NaN or ±Inf has its statistics taken by a careful loop that counts
  them and leaves them out. Even buckets (``bins=n``) take two passes: the statistics (the
  range), then one that only counts, each bucket estimated by a multiply with the step's
  reciprocal (a vectorised loop) and walked to the exact float64 edges (the specification's
  rule, whatever the estimate).
* int32, uint32, int64, uint64: each block converted to float64 (as the specification does,
  rounding int64 beyond 2**53 to nearest), then as float64.
* bool, int8, uint8, int16, uint16, float16: the 256 or 65,536 bit patterns are counted in one
  pass, and the histogram and stats follow exactly from the patterns' values and counts.

Arrays of at least ``compiled_runtime.PART`` values are split into contiguous parts counted
on a pool of threads (the kernels run without the GIL); counts merge exactly, sums in a fixed
order.
Non-contiguous arrays are copied ``SLAB`` values at a time, never whole.

The machinery (loading the kernels off the caller's thread, the thread pool) is in
``compiled_runtime``; anomaly reports and thumbnails in ``compiled_reports``.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from gpu_summary._backend.numpy import compiled_runtime as runtime
from gpu_summary._backend.numpy import reduce as reference
from gpu_summary._backend.numpy.arrays import quiet_overflow
from gpu_summary._backend.numpy.compiled_runtime import (
    FLOATS,
    PATTERNS,
    SUPPORTED,
    enabled,
    prepare,
    read_only,
)
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import HistogramResult, Pending, Ready, TensorStats

__all__ = ["SUPPORTED", "enabled", "prepare"]

# How a part is reduced (the kernels' ``mode``).
LADDER, EDGES, EVEN, STATS = 0, 1, 2, 3

_INT32_KEY = (31, 0x7FFFFFFF, 0x7F800000)  # float32: sign shift, magnitude and exponent masks
_INT64_KEY = (63, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)  # float64 (and wide ints, converted)
_KEY_MAX, _KEY_MIN = 2**63 - 1, -(2**63)  # where the running min and max of keys start


class _Totals:
    """Counts and stats merged over parts and pieces, exactly (sums in a fixed order)."""

    def __init__(self, buckets: int) -> None:
        self.counts = np.zeros(buckets, np.int64)
        self.count = self.nan = self.posinf = self.neginf = 0
        self.lowest = math.inf
        self.highest = -math.inf
        self.sum = self.sum_squares = 0.0

    def add(
        self, counts: np.ndarray | None, count: int, lowest: float, highest: float,
        sums: tuple[float, float], nonfinite: tuple[int, int, int],
    ) -> None:  # fmt: skip
        if counts is not None:  # None: added to self.counts by the kernel
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


_FLOAT32_BITS, _INT32_BITS = struct.Struct("<f"), struct.Struct("<i")
_FLOAT64_BITS, _INT64_BITS = struct.Struct("<d"), struct.Struct("<q")


def _key_value(key: int, float32: bool) -> float:
    """The float whose sortable key is ``key`` (the key is its own inverse)."""
    top, magnitude, _ = _INT32_KEY if float32 else _INT64_KEY
    bits = key ^ ((key >> top) & magnitude)
    if float32:
        return _FLOAT32_BITS.unpack(_INT32_BITS.pack(bits))[0]
    return _FLOAT64_BITS.unpack(_INT64_BITS.pack(bits))[0]


# What the kernels take for each float dtype: (keys, bits, cell shift, compare table, sign
# shift, magnitude, exponent); wide ints are read as float64 (the kernel converts them).
_FLOAT_ARGUMENTS: dict[np.dtype, tuple] = {}


def _float_arguments(dtype: np.dtype) -> tuple:
    arguments = _FLOAT_ARGUMENTS.get(dtype)
    if arguments is None:
        float32 = dtype == np.float32
        key_type, bit_type = (np.int32, np.uint32) if float32 else (np.int64, np.uint64)
        shift = bit_type(8 * dtype.itemsize - _ladder.CELL_BITS)
        arguments = (key_type, bit_type, shift, _ladder.compare_table(dtype),
                     *(_INT32_KEY if float32 else _INT64_KEY))  # fmt: skip
        _FLOAT_ARGUMENTS[dtype] = arguments
    return arguments


def _reduce_piece(
    piece: np.ndarray, mode: int, limits: np.ndarray, bins: int, split: bool,
    totals: _Totals | None = None,
) -> _Totals:  # fmt: skip
    """Reduce one 1-D contiguous piece (its variant compiled) into ``totals``; ``EVEN`` (over
    ``bins`` buckets whose edges are ``limits``) only for bit patterns (``_even_piece``)."""
    kernels = runtime.kernels()
    buckets = 0 if mode == STATS else (bins if mode == EVEN else limits.size)
    totals = totals or _Totals(buckets)
    dtype = piece.dtype
    if dtype in PATTERNS:
        _reduce_patterns(kernels, piece, mode, limits, bins, split, totals)
        return totals
    floats = dtype in FLOATS
    key_type, bit_type, shift, table, top, magnitude, exponent = _float_arguments(
        dtype if floats else np.dtype(np.float64)
    )
    parts = runtime.part_count(piece.size) if split else 1

    def work(start: int, stop: int) -> tuple:
        x = piece[start:stop]
        # one part adds to the totals' counts itself; parts on threads each to their own
        counts = totals.counts if parts == 1 else np.zeros(buckets, np.int64)
        tally = np.array([0, _KEY_MAX, _KEY_MIN, 0, 0, 0], np.int64)  # count, keys, non-finite
        sums = np.zeros(2, np.float64)
        if floats:
            kernels.reduce_float(
                x, x.view(key_type), x.view(bit_type), top, magnitude, exponent, mode, table,
                shift, limits, counts, tally, sums,
            )  # fmt: skip
        else:
            kernels.reduce_wide_int(x, mode, table, limits, counts, tally, sums)
        return None if parts == 1 else counts, tally.tolist(), sums.tolist()

    results = runtime.in_parts(piece.size, work) if parts > 1 else [work(0, piece.size)]
    float32 = dtype == np.float32
    for counts, tally, sums in results:
        count = tally[0]
        lowest = _key_value(tally[1], float32) if count else 0.0
        highest = _key_value(tally[2], float32) if count else 0.0
        totals.add(counts, count, lowest, highest, (sums[0], sums[1]),
                   (tally[3], tally[4], tally[5]))  # fmt: skip
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

    parts = runtime.in_parts(patterns.size, work) if split else [work(0, patterns.size)]
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
        weighted = weights * values  # float64 (no BLAS: numpy's pairwise sums)
        sums = (float(weighted.sum()), float(np.multiply(weighted, values, out=weighted).sum()))
    count = int(weights.sum())
    lowest = float(values.min()) if count else 0.0
    highest = float(values.max()) if count else 0.0
    totals.add(counts, count, lowest, highest, sums, nonfinite)


def _reduce(
    values: np.ndarray, mode: int, limits: np.ndarray = _ladder.LIMITS, split: bool = True
) -> _Totals | None:
    """The compiled reduction of ``values``, or None where the kernels cannot take it (the
    caller then takes the specification's path)."""
    if values.size < runtime.SMALL or not enabled():
        return None
    pieces = runtime.pieces(values)
    first = next(pieces)
    variant = runtime.variant_of(first)
    if variant is None or not runtime.usable(variant, values.size):
        return None
    totals = _reduce_piece(first, mode, limits, 0, split)
    for piece in pieces:
        # a slab copy is writable: its own kernels
        if not runtime.usable(runtime.variant_of(piece), values.size):
            return None
        _reduce_piece(piece, mode, limits, 0, split, totals)
    return totals


@quiet_overflow
def tensor_stats(values: np.ndarray) -> Pending[TensorStats]:
    """``reduce.tensor_stats``, compiled."""
    totals = _reduce(values, STATS) if values.size >= runtime.SMALL_STATS else None
    return reference.tensor_stats(values) if totals is None else Ready(totals.stats())


def _histogram_fixed(values: np.ndarray, limits: np.ndarray | None, split: bool) -> HistogramResult:
    if limits is None:
        totals = _reduce(values, LADDER, split=split)
    else:
        totals = _reduce(values, EDGES, read_only(limits), split=split)
    if totals is None:  # the ladder (None) by its cell table, not a search of its limits
        return reference.histogram_fixed(values, limits).result()
    limits = _ladder.LIMITS if limits is None else limits
    return HistogramResult(limits=limits, counts=totals.counts, stats=totals.stats())


@quiet_overflow
def histogram_fixed(values: np.ndarray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """``reduce.histogram_fixed``, compiled."""
    return Ready(_histogram_fixed(values, limits, split=True))


@quiet_overflow
def even_counts(values: np.ndarray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """``reduce.even_counts``, compiled: one pass that counts the buckets and nothing else."""
    edges = read_only(reference.even_edges(lo, hi, bins))
    counts = (
        _even_counts(values, edges, bins) if values.size >= runtime.SMALL and enabled() else None
    )
    return reference.even_counts(values, lo, hi, bins) if counts is None else Ready(counts)


def _even_counts(values: np.ndarray, edges: np.ndarray, bins: int) -> np.ndarray | None:
    """The even buckets' counts by the compiled kernels, or None where they cannot take
    ``values``."""
    counts = np.zeros(bins, np.int64)
    for piece in runtime.pieces(values):
        variant = runtime.variant_of(piece)
        if variant is None or not runtime.usable(variant, values.size):
            return None
        counts += _even_piece(piece, edges, bins)
    return counts


def _even_piece(piece: np.ndarray, edges: np.ndarray, bins: int) -> np.ndarray:
    """The even buckets' counts of one 1-D contiguous piece (its variant compiled)."""
    if piece.dtype in PATTERNS:
        return _reduce_piece(piece, EVEN, edges, bins, True).counts
    first, last = float(edges[0]), float(edges[-1])
    half = not math.isfinite(last - first)
    step = last / 2 / bins - first / 2 / bins if half else (last - first) / bins
    scale = 1.0 / step if step > 0 else 0.0
    if not math.isfinite(scale):  # a subnormal step: every value starts at bucket 0
        scale = 0.0
    kernels = runtime.kernels()
    kernel = kernels.even_float if piece.dtype in FLOATS else kernels.even_wide_int

    def work(start: int, stop: int) -> np.ndarray:
        part = np.zeros(bins, np.int64)
        kernel(piece[start:stop], first, scale, half, edges, bins, part)
        return part

    parts = runtime.in_parts(piece.size, work)
    return parts[0] if len(parts) == 1 else np.sum(parts, axis=0)


def histogram_even(values: np.ndarray, bins: int) -> Pending[HistogramResult]:
    """``reduce.histogram_even``, compiled."""
    return reference.histogram_even(values, bins, stats=tensor_stats, counts=even_counts)


@quiet_overflow
def histograms(tensors: list[np.ndarray]) -> Pending[list[HistogramResult]]:
    """``reduce.histograms``, compiled: the tensors shared out over the threads (each counted
    whole by one), largest first."""
    sizes = [int(t.size) for t in tensors]
    workers = runtime.workers()
    if workers == 1 or sum(sizes) < 2 * runtime.PART or len(tensors) == 1:
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
        futures = [runtime.thread_pool().submit(run, group) for group in groups[1:] if group]
    except RuntimeError:  # interpreter shutdown
        futures = []
        run([k for group in groups[1:] for k in group])
    run(groups[0])
    for future in futures:
        future.result()
    return Ready(results)


def _warm(sample: np.ndarray) -> None:
    for mode in (LADDER, EDGES, STATS):
        _reduce_piece(sample, mode, _ladder.LIMITS, 0, False)
    _even_piece(sample, read_only(reference.even_edges(0.0, 4.0, 4)), 4)


runtime.WARMERS.append(_warm)
