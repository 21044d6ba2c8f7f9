"""TensorBoard's default histogram bucket limits, and the closed form that finds a bucket.

The limits are TensorFlow's (``tensorflow/core/lib/histogram/histogram.cc``): v = 1e-12,
multiplied by 1.1 while v < 1e20, giving 774 positive limits ``v_0 .. v_773``; then DBL_MAX;
the same mirrored below zero; and 0::

    L = [-DBL_MAX, -v_773, ..., -v_0, 0, v_0, ..., v_773, DBL_MAX]      (1551 limits)

A finite x is counted in bucket i, the first with ``L[i] > x``; x = DBL_MAX, which no limit
exceeds, is counted in the last bucket. Because the limits are fixed, histograms of different
shards or steps merge exactly by adding counts.

Finding i without a binary search: the top bits of an IEEE-754 number are its sign, its binary
exponent (the integer part of log2|x|) and the leading bits of its mantissa (the fraction,
piecewise linearly), so the top ``CELL_BITS`` bits of x name a *cell*, an interval of values
1/256 of an octave wide (float64; 1/2048 for float32). :func:`cell_table` maps every cell to its
bucket, or to ``EXACT`` when it holds a limit or holds NaN/±Inf; values in ``EXACT`` cells (about
0.2% of float64 cells, 0.5% of float32 ones) are placed by an exact comparison with the float64
limits. Both steps are exact, so every backend that follows the definition agrees bit for bit.

The table needs buckets wider than 1/256 of an octave. A float64 cell is [m, m + 2**-8) * 2**e
for a mantissa m in [1, 2): its ends differ by a factor of at most 1 + 2**-8 (1 + 2**-11 for
float32). Consecutive limits differ by ``GROWTH`` = 1.1, so no cell holds two limits: a cell
lies in one bucket or holds exactly one limit, and a bucket spans some 25 to 50 float64 cells
(200 to 400 float32 ones), of which only the one holding its lower limit is ``EXACT``. The
table is correct for any ladder (a cell whose ends fall in different buckets is ``EXACT``, and
``EXACT`` values are placed by a full binary search), but with limits closer together than a
cell is wide, every cell in the ladder's range would hold a limit and every value there would
take the search that the table exists to avoid. ``EXACT`` (= ``N_LIMITS``) must also fit the
table's int16.

The CUDA kernels find i their own way (``ladder_estimate`` in ``kernels/gs_common.cuh``: a
guess from log2|x| times ``BUCKETS_PER_OCTAVE``, then an exact correction); they take the
constants below and the limits from the prologue that
``gpu_summary/_backend/cuda_kernels/sources.py`` writes, never from a copy of their own.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np

DBL_MAX = sys.float_info.max
SMALLEST = 1.0e-12  # the smallest positive limit, v_0
CEILING = 1.0e20  # the positive limits stop below it
GROWTH = 1.1  # each positive limit is the one before times GROWTH (rounded)
BUCKETS_PER_OCTAVE = 1.0 / math.log2(GROWTH)  # limits per doubling of |x|: 7.27...


def _positive_limits() -> list[float]:
    limits = []
    v = SMALLEST
    while v < CEILING:
        limits.append(v)
        v *= GROWTH  # repeated multiplication in double, exactly as TensorFlow builds them
    return limits


_POSITIVE = _positive_limits()
N_POSITIVE = len(_POSITIVE)  # 774
LIMITS = np.array(
    [-DBL_MAX, *(-v for v in reversed(_POSITIVE)), 0.0, *_POSITIVE, DBL_MAX], dtype=np.float64
)
LIMITS.setflags(write=False)
N_LIMITS = LIMITS.size  # 1551
ZERO_INDEX = N_POSITIVE + 1  # LIMITS[ZERO_INDEX] == 0.0
LAST_INDEX = N_LIMITS - 1

# Cells: the top CELL_BITS bits of a float32 or float64 value.
CELL_BITS = 20
CELL_SHIFT = {np.dtype(np.float32): 32 - CELL_BITS, np.dtype(np.float64): 64 - CELL_BITS}
EXACT = N_LIMITS  # table value of a cell that needs an exact comparison
SEARCH = -(1 << 15)  # compare_table's value of a cell that needs the full search


_tables: dict[tuple[np.dtype, bool], np.ndarray] = {}  # (dtype, compare) -> table
_tables_lock = threading.Lock()


def cell_table(dtype: np.dtype) -> np.ndarray:
    """Bucket of every cell of ``dtype`` (float32 or float64), or ``EXACT``; int16.

    Built on first use (about 0.1 s, 8 MiB of temporaries) and kept; once, however many
    threads ask for it first at the same time (they wait for the one building it).
    """
    return _table(np.dtype(dtype), compare=False)


def compare_table(dtype: np.dtype) -> np.ndarray:
    """:func:`cell_table` as the compiled kernels read it, int16: a cell's bucket (>= 0); ``~j``
    for a cell holding exactly one limit j, whose values x go to ``j + (x >= LIMITS[j])`` (one
    comparison, not a search); ``SEARCH`` for a cell holding NaN/±Inf or several limits. Every
    exceptional cell is negative, so one test of four cells' minimum finds them all.

    Built on first use and kept, as :func:`cell_table`.
    """
    return _table(np.dtype(dtype), compare=True)


def _table(dtype: np.dtype, compare: bool) -> np.ndarray:
    key = (dtype, compare)
    table = _tables.get(key)
    if table is None:
        with _tables_lock:
            table = _tables.get(key)
            if table is None:
                table = _tables[key] = _build_cell_table(dtype, compare)
    return table


def _build_cell_table(dtype: np.dtype, compare: bool = False) -> np.ndarray:
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    shift = CELL_SHIFT[np.dtype(dtype)]
    first = np.arange(1 << CELL_BITS, dtype=np.uint64) << np.uint64(shift)
    last = first | np.uint64((1 << shift) - 1)
    with np.errstate(invalid="ignore"):  # NaN bit patterns
        lo = first.astype(unsigned).view(dtype).astype(np.float64)
        hi = last.astype(unsigned).view(dtype).astype(np.float64)
        finite = np.isfinite(lo) & np.isfinite(hi)
        low_bucket = bucket_index_reference(np.fmin(lo, hi))
        high_bucket = bucket_index_reference(np.fmax(lo, hi))
    if compare:
        # one limit, LIMITS[low], in the cell: below it bucket low, from it up low + 1 (the
        # last bucket's cap included: then low + 1 is LAST_INDEX)
        exceptional = np.where(finite & (high_bucket == low_bucket + 1), ~low_bucket, SEARCH)
        table = np.where(finite & (low_bucket == high_bucket), low_bucket, exceptional)
    else:
        table = np.where(finite & (low_bucket == high_bucket), low_bucket, EXACT)
    table = table.astype(np.int16)
    table.setflags(write=False)
    return table


def bucket_index_reference(x: np.ndarray) -> np.ndarray:
    """The definition, by binary search: for each finite x, the first i with LIMITS[i] > x.

    Slow; the independent oracle for tests of the closed form.
    """
    idx = np.searchsorted(LIMITS, np.asarray(x, dtype=np.float64), side="right")
    return np.minimum(idx, LAST_INDEX)
