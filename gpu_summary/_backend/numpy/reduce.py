"""The NumPy backend's statistics and histograms: the specification the kernels must match.

Each public function has a twin with the same signature in the device backend. Results come
back as :class:`~gpu_summary._core.results.Pending` (always ready here).

Arithmetic is float64: each value is converted to float64 (exact for bool, every float dtype
and integers up to 2**53; larger int64 magnitudes round to the nearest double) before it is
compared with a bucket limit or added to a moment. Data is processed in chunks of
``CHUNK`` elements so that the many elementwise steps stay in cache and the temporaries stay
small whatever the input's size; a non-contiguous input is copied a chunk at a time, never
whole.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from gpu_summary._backend.numpy.arrays import CHUNK, as_float, flat_chunks, quiet_overflow
from gpu_summary._core import arguments
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import (
    HistogramResult,
    Pending,
    Ready,
    TensorStats,
)


class Moments:
    """Running moments (float64) and non-finite counts over chunks.

    The sums are numpy's pairwise sums of the float64 values and of their squares (squared
    into a scratch buffer); no BLAS call (``numpy.dot`` runs on BLAS's thread pool, whose
    threads spin against a busy process) is on this path.
    """

    def __init__(self) -> None:
        self.count = 0
        self.min = math.inf
        self.max = -math.inf
        self.sum = 0.0
        self.sum_squares = 0.0
        self.nan = 0
        self.posinf = 0
        self.neginf = 0
        self._scratch = np.empty(0, dtype=np.float64)

    def count_nonfinite(self, x: np.ndarray) -> int:
        """Count NaN, +Inf and -Inf in float array ``x``; return how many there were."""
        finite = np.isfinite(x)
        n_finite = int(np.count_nonzero(finite))
        if n_finite == x.size:
            return 0
        n_nan = int(np.count_nonzero(np.isnan(x)))
        n_pos = int(np.count_nonzero(x == np.inf))
        self.nan += n_nan
        self.posinf += n_pos
        self.neginf += x.size - n_finite - n_nan - n_pos
        return x.size - n_finite

    def add(self, x: np.ndarray, lowest: float | None = None, highest: float | None = None) -> None:
        """Add finite float32/float64 values (``lowest``/``highest``: their min and max, where
        the caller has them already)."""
        if x.size == 0:
            return
        self.count += x.size
        self.min = min(self.min, float(x.min()) if lowest is None else lowest)
        self.max = max(self.max, float(x.max()) if highest is None else highest)
        if self._scratch.size < x.size:
            self._scratch = np.empty(max(x.size, CHUNK), dtype=np.float64)
        scratch = self._scratch[: x.size]
        if x.dtype == np.float64:
            x64 = x
        else:  # widened exactly, into the scratch buffer
            x64 = scratch
            np.copyto(x64, x)
        self.sum += float(x64.sum())  # beyond DBL_MAX: ±inf or NaN (callers silence the warning)
        self.sum_squares += float(np.multiply(x64, x64, out=scratch).sum())

    def add_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """Count a chunk's non-finite values, add its finite ones; return those as float."""
        x = as_float(chunk)
        if x.size == 0:
            return x
        lowest, highest = float(x.min()), float(x.max())
        if math.isfinite(lowest) and math.isfinite(highest):  # NaN would be the min: all finite
            self.add(x, lowest, highest)
            return x
        if self.count_nonfinite(x):
            x = x[np.isfinite(x)]
        self.add(x)
        return x

    def stats(self) -> TensorStats:
        return TensorStats.of(
            self.count, self.min, self.max, self.sum, self.sum_squares,
            self.nan, self.posinf, self.neginf,
        )  # fmt: skip


def _correct(
    index: np.ndarray,
    x: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    last: int,
    scratch: _Scratch | None = None,
) -> np.ndarray:
    """Move each estimated bucket until ``lower[i] <= x < upper[i]`` (``x >= upper`` allowed
    in the last bucket), in place. ``lower``/``upper`` give each bucket's limits; exact in
    float64. ``scratch``: buffers of at least ``x.size`` for the gathered limits and the mask.
    """
    scratch = scratch or _Scratch(x.size)
    gathered, moved = scratch.gathered[: x.size], scratch.mask[: x.size]
    while True:
        np.greater(np.take(lower, index, out=gathered, mode="clip"), x, out=moved)
        if not moved.any():
            break
        index -= moved
    while True:
        np.less_equal(np.take(upper, index, out=gathered, mode="clip"), x, out=moved)
        moved &= index < last
        if not moved.any():
            break
        index += moved
    return index


class _Scratch:
    """Buffers of one chunk's even buckets, reused from chunk to chunk (no allocation per
    chunk): the values as float64, the estimates, the buckets, gathered limits, a mask."""

    def __init__(self, size: int) -> None:
        self.values = np.empty(size, dtype=np.float64)
        self.estimate = np.empty(size, dtype=np.float64)
        self.index = np.empty(size, dtype=np.intp)
        self.gathered = np.empty(size, dtype=np.float64)
        self.mask = np.empty(size, dtype=np.bool_)


class LadderCounter:
    """Ladder counts over chunks: a table lookup for most values, exact comparison for the rest.

    Each value's cell (its top bits, see ``_ladder``) is looked up in the cell table. Values in
    cells that hold a limit, NaN or ±Inf (the table says ``EXACT``; well under 1% of values in
    practice) are set aside and placed by exact comparison with the float64 limits in batches,
    which keeps the per-chunk work to a few vectorised passes.
    """

    _BATCH = 1 << 20  # set-aside values placed together

    def __init__(self, moments: Moments) -> None:
        self.found = np.zeros(_ladder.EXACT + 1, dtype=np.int64)
        self._moments = moments
        self._special: list[np.ndarray] = []
        self._special_size = 0

    def add(self, x: np.ndarray) -> bool:
        """Count float32/float64 chunk ``x``; True if it holds NaN or ±Inf."""
        table = _ladder.cell_table(x.dtype)
        if x.dtype == np.float32:
            key = (x.view(np.uint32) >> (32 - _ladder.CELL_BITS)).astype(np.intp)
        else:
            key = (x.view(np.uint64) >> np.uint64(64 - _ladder.CELL_BITS)).view(np.int64)
        index = np.take(table, key, mode="clip").astype(np.intp)
        found = np.bincount(index, minlength=_ladder.EXACT + 1)
        self.found += found
        if not found[_ladder.EXACT]:
            return False
        special = x[index == _ladder.EXACT]
        self._special.append(special)
        self._special_size += special.size
        if self._special_size >= self._BATCH:
            self._place_special()
        return not np.isfinite(special).all()

    def _place_special(self) -> None:
        if not self._special:
            return
        special = np.concatenate([s.astype(np.float64) for s in self._special])
        self._special, self._special_size = [], 0
        if self._moments.count_nonfinite(special):
            special = special[np.isfinite(special)]
        exact = np.searchsorted(_ladder.LIMITS, special, side="right")
        self.found[: _ladder.EXACT] += np.bincount(
            np.minimum(exact, _ladder.LAST_INDEX), minlength=_ladder.EXACT
        )

    def counts(self) -> np.ndarray:
        """The counts of every bucket (and the non-finite counts added to the moments)."""
        self._place_special()
        return self.found[: _ladder.EXACT].copy()


def even_edges(lo: float, hi: float, bins: int) -> np.ndarray:
    """``bins + 1`` even edges over [lo, hi]: ``edges[i] = i * step + lo``, ``edges[-1] = hi``.

    The formula of ``numpy.linspace``; the device backend builds the same edges. A single value
    (lo == hi) gets the range [lo - 0.5, hi + 0.5], as ``numpy.histogram`` does.
    """
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    step = (hi - lo) / bins
    if math.isfinite(hi - lo):
        edges = np.arange(bins + 1, dtype=np.float64) * step + lo
    else:  # the span overflows float64: the same formula at half scale
        edges = (
            np.arange(bins + 1, dtype=np.float64) * (hi / 2 / bins - lo / 2 / bins) + lo / 2
        ) * 2
    edges[-1] = hi
    return edges


def even_bucket_index(
    x: np.ndarray, edges: np.ndarray, scratch: _Scratch | None = None
) -> np.ndarray:
    """The even bucket of each finite float64 x: the estimate (x - lo) / step, then corrected
    to ``edges[b] <= x < edges[b + 1]`` (the last bucket closed). With ``scratch`` (buffers of
    at least ``x.size``), the result is a view of its ``index``, valid until its next use."""
    bins = edges.size - 1
    lo, hi = float(edges[0]), float(edges[-1])
    scratch = scratch or _Scratch(x.size)
    index = scratch.index[: x.size]
    step = (hi - lo) / bins if math.isfinite(hi - lo) else hi / 2 / bins - lo / 2 / bins
    if step > 0:
        estimate = scratch.estimate[: x.size]
        with np.errstate(invalid="ignore", over="ignore"):
            # the position in units of step; at half scale when the span overflows
            if math.isfinite(hi - lo):
                np.subtract(x, lo, out=estimate)
            else:
                np.subtract(x / 2, lo / 2, out=estimate)
            np.divide(estimate, step, out=estimate)
        np.clip(estimate, 0, bins - 1, out=estimate)
        index[...] = estimate  # truncated, as astype
    else:  # a span so small that the step underflowed: let the correction walk
        index[...] = 0
    return _correct(index, x, edges[:-1], edges[1:], bins - 1, scratch)


# Floating-point types narrower than float16 that NumPy itself lacks (ml_dtypes' bfloat16 and
# float8/6/4 kinds, as JAX and others hand them over; PyTorch's by name, without "torch."). Each
# of their values is exactly a float32, so they are widened to it before any reduction.


@quiet_overflow
def tensor_stats(values: np.ndarray) -> Pending[TensorStats]:
    """Moments and non-finite counts of ``values`` (any shape, numeric dtype)."""
    moments = Moments()
    for chunk in flat_chunks(values):
        moments.add_chunk(chunk)
    return Ready(moments.stats())


@quiet_overflow
def histogram_fixed(values: np.ndarray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """Histogram over fixed limits, with stats, in one pass over ``values``.

    Args:
        values: any shape, numeric dtype.
        limits: strictly increasing float64 bucket limits ending with DBL_MAX, or None for
            TensorBoard's default ladder (counted through the cell table of ``_ladder``).
    """
    moments = Moments()
    if limits is None:
        ladder = LadderCounter(moments)
        for chunk in flat_chunks(values):
            x = as_float(chunk)
            if ladder.add(x):
                x = x[np.isfinite(x)]
            moments.add(x)
        counts, limits = ladder.counts(), _ladder.LIMITS
    else:
        counts = np.zeros(limits.size, dtype=np.int64)
        for chunk in flat_chunks(values):
            x = moments.add_chunk(chunk).astype(np.float64, copy=False)
            index = np.searchsorted(limits, x, side="right")
            counts += np.bincount(np.minimum(index, limits.size - 1), minlength=limits.size)
    return Ready(HistogramResult(limits=limits, counts=counts, stats=moments.stats()))


@quiet_overflow
def histogram_even(
    values: np.ndarray,
    bins: int,
    *,
    stats: Callable[[np.ndarray], Pending[TensorStats]] | None = None,
    counts: Callable[[np.ndarray, float, float, int], Pending[np.ndarray]] | None = None,
) -> Pending[HistogramResult]:
    """Histogram over ``bins`` even buckets spanning [min, max] of the finite values.

    Two passes: the range, then the counts (over the edges of :func:`even_edges`). The bucket
    of x is the b with ``edges[b] <= x < edges[b + 1]``, the last bucket closed at max, so
    counts equal ``numpy.histogram(x, edges)``. ``stats`` and ``counts`` replace
    :func:`tensor_stats` and :func:`even_counts` (the compiled path passes its own).
    """
    found = (stats or tensor_stats)(values).result()
    lo, hi = (found.min, found.max) if found.count else (0.0, 1.0)
    edges = even_edges(lo, hi, bins)
    if found.count:
        counted = (counts or even_counts)(values, lo, hi, bins).result()
    else:
        counted = np.zeros(bins, dtype=np.int64)
    return Ready(HistogramResult(limits=edges[1:], counts=counted, stats=found))


@quiet_overflow
def even_counts(values: np.ndarray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """Counts of the finite values over the ``bins`` even buckets of :func:`even_edges` (lo,
    hi, bins), every finite value lying in [lo, hi] (the range of these values, or of a
    larger set they belong to)."""
    edges = even_edges(lo, hi, bins)
    counts = np.zeros(bins, dtype=np.int64)
    scratch = None
    for chunk in flat_chunks(values):
        if scratch is None or scratch.values.size < chunk.size:
            scratch = _Scratch(chunk.size)
        x = scratch.values[: chunk.size]
        np.copyto(x, as_float(chunk), casting="unsafe")  # widened exactly to float64
        if not np.isfinite(x).all():
            x = x[np.isfinite(x)]
        if x.size:
            counts += np.bincount(even_bucket_index(x, edges, scratch), minlength=bins)
    return Ready(counts)


def scalar(value: np.ndarray) -> Pending[float]:
    """The single element of ``value`` as a Python float."""
    return Ready(float(value.reshape(())) if value.ndim else float(value))


def histograms(tensors: list[np.ndarray]) -> Pending[list[HistogramResult]]:
    """Ladder histograms of several arrays: exactly ``histogram_fixed(a, None)`` of each."""
    return Ready([histogram_fixed(array, None).result() for array in tensors])


def rule_limits(values: np.ndarray, rule: str) -> np.ndarray:
    """Bucket limits for ``numpy.histogram``'s bin estimator ``rule`` (``"auto"``, ``"fd"``,
    ...; ``arguments.NUMPY_BIN_RULES``) on host values: numpy's own edges for
    ``rule`` over the finite values, as limits (its closed last bin is the bucket from the
    last inner edge up), so the counts equal ``numpy.histogram(finite, bins=rule)``."""
    finite = np.asarray(values, dtype=np.float64).ravel()
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        finite = np.zeros(1)
    try:
        edges = np.histogram_bin_edges(finite, bins=rule)
    except ValueError as exc:  # "Too many bins for data range": numpy's own refusal
        raise ValueError(
            f"bins={rule!r}: numpy cannot make its bins over this data ({exc}); use 'auto', "
            "'sqrt', 'sturges' or 'rice' (fewer bins then, with a warning), an int or edges"
        ) from None
    return arguments.bin_spec(np.append(edges[:-1], _ladder.DBL_MAX))[1]
