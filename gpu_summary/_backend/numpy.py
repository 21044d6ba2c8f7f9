"""The NumPy backend: host reductions, and the specification every device kernel must match.

Each public function has a twin with the same signature in the device backend. Results come
back as :class:`~gpu_summary._backend._results.Pending` (always ready here).

Arithmetic is float64: each value is converted to float64 (exact for bool, every float dtype
and integers up to 2**53; larger int64 magnitudes round to the nearest double) before it is
compared with a bucket limit or added to a moment. Data is processed in chunks of
``CHUNK`` elements so that the many elementwise steps stay in cache and the temporaries stay
small whatever the input's size; a non-contiguous input is copied a chunk at a time, never
whole.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import numpy as np

from gpu_summary import _anomaly, _embedding, _ladder
from gpu_summary._backend._results import (
    AnomalyResult,
    HistogramResult,
    Pending,
    Ready,
    TensorStats,
)

CHUNK = 1 << 15  # 32K values: measured fastest (temporaries stay in L2)


def _flat_chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    """1-D pieces of ``values`` covering every element once, in no particular order."""
    if values.ndim == 0:
        yield values.reshape(1)
        return
    if values.flags.c_contiguous or values.flags.f_contiguous:
        flat = values.ravel(order="K")  # a view for either memory order
        for start in range(0, flat.size, CHUNK):
            yield flat[start : start + CHUNK]
        return
    # Strided: copy slabs of the leading axis, about CHUNK elements at a time.
    inner = max(1, values[0].size) if values.shape[0] else 1
    step = max(1, CHUNK // inner)
    for start in range(0, values.shape[0], step):
        yield values[start : start + step].reshape(-1)


def _c_order_chunks(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(flat C-order index of the first element, 1-D piece) covering ``values`` in C order."""
    if values.ndim == 0 or values.flags.c_contiguous:
        flat = values.reshape(-1)
        for start in range(0, flat.size, CHUNK):
            yield start, flat[start : start + CHUNK]
        return
    inner = max(1, values[0].size) if values.shape[0] else 1
    step = max(1, CHUNK // inner)
    for start in range(0, values.shape[0], step):
        yield start * inner, values[start : start + step].reshape(-1)


def _quiet_overflow(reduction: Callable) -> Callable:
    """Run a reduction with float overflow warnings off: sums beyond DBL_MAX are ±inf (or NaN),
    which is the right answer, not a reason to warn the user."""

    @functools.wraps(reduction)
    def quiet(*args: object) -> object:
        with np.errstate(over="ignore", invalid="ignore"):
            return reduction(*args)

    return quiet


def _as_float(chunk: np.ndarray) -> np.ndarray:
    """A chunk as native-order float32 (where that is exact: float16, bool, 8/16-bit ints) or
    float64 (everything else; int64 beyond 2**53 rounds to the nearest double)."""
    if chunk.dtype in (np.float32, np.float64):  # native order only: '>f4' != float32
        return chunk
    if chunk.dtype.kind == "b" or chunk.dtype.itemsize <= 2:
        return chunk.astype(np.float32)
    return chunk.astype(np.float64)


class _Moments:
    """Running moments (float64) and non-finite counts over chunks."""

    def __init__(self) -> None:
        self.count = 0
        self.min = math.inf
        self.max = -math.inf
        self.sum = 0.0
        self.sum_squares = 0.0
        self.nan = 0
        self.posinf = 0
        self.neginf = 0

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

    def add(self, x: np.ndarray) -> None:
        """Add finite float32/float64 values."""
        if x.size == 0:
            return
        self.count += x.size
        self.min = min(self.min, float(x.min()))
        self.max = max(self.max, float(x.max()))
        x64 = x.astype(np.float64, copy=False)
        self.sum += float(x64.sum())  # beyond DBL_MAX: ±inf or NaN (callers silence the warning)
        self.sum_squares += float(np.dot(x64, x64))

    def add_chunk(self, chunk: np.ndarray) -> np.ndarray:
        """Count a chunk's non-finite values, add its finite ones; return those as float."""
        x = _as_float(chunk)
        if self.count_nonfinite(x):
            x = x[np.isfinite(x)]
        self.add(x)
        return x

    def stats(self) -> TensorStats:
        empty = self.count == 0
        return TensorStats(
            count=self.count,
            min=0.0 if empty else self.min,
            max=0.0 if empty else self.max,
            sum=self.sum,
            sum_squares=self.sum_squares,
            nan=self.nan,
            posinf=self.posinf,
            neginf=self.neginf,
        )


def _correct(
    index: np.ndarray, x: np.ndarray, lower: np.ndarray, upper: np.ndarray, last: int
) -> np.ndarray:
    """Move each estimated bucket until ``lower[i] <= x < upper[i]`` (``x >= upper`` allowed
    in the last bucket). ``lower``/``upper`` give each bucket's limits; exact in float64.
    """
    while True:
        down = lower[index] > x
        if not down.any():
            break
        index -= down
    while True:
        up = (upper[index] <= x) & (index < last)
        if not up.any():
            break
        index += up
    return index


class _LadderCounter:
    """Ladder counts over chunks: a table lookup for most values, exact comparison for the rest.

    Each value's cell (its top bits, see ``_ladder``) is looked up in the cell table. Values in
    cells that hold a limit, NaN or ±Inf (the table says ``EXACT``; well under 1% of values in
    practice) are set aside and placed by exact comparison with the float64 limits in batches,
    which keeps the per-chunk work to a few vectorised passes.
    """

    _BATCH = 1 << 20  # set-aside values placed together

    def __init__(self, moments: _Moments) -> None:
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


def _even_bucket_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = edges.size - 1
    lo, hi = float(edges[0]), float(edges[-1])
    step = (hi - lo) / bins if math.isfinite(hi - lo) else hi / 2 / bins - lo / 2 / bins
    if step > 0:
        with np.errstate(invalid="ignore", over="ignore"):
            # the position in units of step; at half scale when the span overflows
            estimate = (x - lo) / step if math.isfinite(hi - lo) else (x / 2 - lo / 2) / step
        np.clip(estimate, 0, bins - 1, out=estimate)
        index = estimate.astype(np.int64)
    else:  # a span so small that the step underflowed: let the correction walk
        index = np.zeros(x.shape, dtype=np.int64)
    return _correct(index, x, edges[:-1], edges[1:], bins - 1)


# Floating-point types narrower than float16 that NumPy itself lacks (ml_dtypes' bfloat16 and
# float8/6/4 kinds, as JAX and others hand them over; PyTorch's by name, without "torch."). Each
# of their values is exactly a float32, so they are widened to it before any reduction.
NARROW_FLOATS = ("bfloat16", "float8_", "float6_", "float4_")


def is_narrow_float(dtype_name: str) -> bool:
    """Whether a dtype name (``bfloat16``, ``torch.float8_e4m3fn``, ...) is a narrow float."""
    return dtype_name.rpartition(".")[2].startswith(NARROW_FLOATS)


def numeric(values: np.ndarray, argument: str) -> np.ndarray:
    """``values``, narrow floats widened to float32; TypeError unless the data is numeric."""
    if is_narrow_float(values.dtype.name):
        values = values.astype(np.float32)
    check_numeric(values, argument)
    return values


def check_numeric(values: np.ndarray, argument: str) -> None:
    """Raise TypeError unless ``values`` holds bool, integer or real floating-point data."""
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"{argument} must hold bool, integer or floating-point numbers, got dtype "
            f"{values.dtype}; convert it (for example with .astype(float)) before logging"
        )


def as_array(values: object, argument: str) -> np.ndarray:
    """``values`` (array, number, list) as a NumPy array without copying where possible."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"{argument} must be an array, a number or a list of numbers; "
            f"{type(values).__name__} could not be converted: {exc}"
        ) from None
    return numeric(array, argument)


@_quiet_overflow
def tensor_stats(values: np.ndarray) -> Pending[TensorStats]:
    """Moments and non-finite counts of ``values`` (any shape, numeric dtype)."""
    moments = _Moments()
    for chunk in _flat_chunks(values):
        moments.add_chunk(chunk)
    return Ready(moments.stats())


@_quiet_overflow
def histogram_fixed(values: np.ndarray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """Histogram over fixed limits, with stats, in one pass over ``values``.

    Args:
        values: any shape, numeric dtype.
        limits: strictly increasing float64 bucket limits ending with DBL_MAX, or None for
            TensorBoard's default ladder (counted through the cell table of ``_ladder``).
    """
    moments = _Moments()
    if limits is None:
        ladder = _LadderCounter(moments)
        for chunk in _flat_chunks(values):
            x = _as_float(chunk)
            if ladder.add(x):
                x = x[np.isfinite(x)]
            moments.add(x)
        counts, limits = ladder.counts(), _ladder.LIMITS
    else:
        counts = np.zeros(limits.size, dtype=np.int64)
        for chunk in _flat_chunks(values):
            x = moments.add_chunk(chunk).astype(np.float64, copy=False)
            index = np.searchsorted(limits, x, side="right")
            counts += np.bincount(np.minimum(index, limits.size - 1), minlength=limits.size)
    return Ready(HistogramResult(limits=limits, counts=counts, stats=moments.stats()))


@_quiet_overflow
def histogram_even(values: np.ndarray, bins: int) -> Pending[HistogramResult]:
    """Histogram over ``bins`` even buckets spanning [min, max] of the finite values.

    Two passes: the range, then the counts (over the edges of :func:`even_edges`). The bucket
    of x is the b with ``edges[b] <= x < edges[b + 1]``, the last bucket closed at max, so
    counts equal ``numpy.histogram(x, edges)``.
    """
    stats = tensor_stats(values).result()
    lo, hi = (stats.min, stats.max) if stats.count else (0.0, 1.0)
    edges = even_edges(lo, hi, bins)
    if stats.count:
        counts = even_counts(values, lo, hi, bins).result()
    else:
        counts = np.zeros(bins, dtype=np.int64)
    return Ready(HistogramResult(limits=edges[1:], counts=counts, stats=stats))


@_quiet_overflow
def even_counts(values: np.ndarray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """Counts of the finite values over the ``bins`` even buckets of :func:`even_edges` (lo,
    hi, bins), every finite value lying in [lo, hi] (the range of these values, or of a
    larger set they belong to)."""
    edges = even_edges(lo, hi, bins)
    counts = np.zeros(bins, dtype=np.int64)
    for chunk in _flat_chunks(values):
        x = _as_float(chunk).astype(np.float64, copy=False)
        if not np.isfinite(x).all():
            x = x[np.isfinite(x)]
        if x.size:
            counts += np.bincount(_even_bucket_index(x, edges), minlength=bins)
    return Ready(counts)


def scalar(value: np.ndarray) -> Pending[float]:
    """The single element of ``value`` as a Python float."""
    return Ready(float(value.reshape(())) if value.ndim else float(value))


def image_to_uint8(images: np.ndarray) -> np.ndarray:
    """uint8 pixels: uint8 as is, bool as 0/255, floats in [0, 1] scaled by 255.

    Floats: ``floor(clip(x, 0, 1) * 255 + 0.5)`` in float64; NaN becomes 0.
    """
    if images.dtype == np.uint8:
        return images
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * np.uint8(255)
    x = images.astype(np.float64)
    np.fmax(x, 0.0, out=x)  # fmax/fmin also turn NaN into the other operand
    np.fmin(x, 1.0, out=x)
    x *= 255.0
    x += 0.5
    np.floor(x, out=x)
    return x.astype(np.uint8)


def thumbnail_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Output (height, width): the longer side shrunk to ``max_size``, aspect kept (rounded
    half up, at least 1); unchanged when it already fits or ``max_size`` is None."""
    longest = max(height, width)
    if max_size is None or longest <= max_size:
        return height, width

    def scale(n: int) -> int:
        return max(1, (2 * n * max_size + longest) // (2 * longest))

    return scale(height), scale(width)


def _shrink_axis(x: np.ndarray, axis: int, n_out: int, dtype: type) -> np.ndarray:
    """Area-weighted integer sums along ``axis``, from ``n_in`` samples down to ``n_out``.

    In units of 1/n_out of an input pixel, input pixel y spans [y * n_out, (y + 1) * n_out) and
    output i spans [a, b) = [i * n_in, (i + 1) * n_in); each input contributes its overlap
    (an integer) times its value. Output i covers the whole pixels y0 <= y < y1
    (y0 = ceil(a / n_out), y1 = floor(b / n_out)), each of weight n_out, plus the partial
    pixels y0 - 1 (weight y0 * n_out - a) and y1 (weight b - y1 * n_out).

    The whole-pixel runs are summed by gathering each run's rows into a block of equal length
    (the longest run; shorter runs padded with a zero row) and reducing the blocks, which NumPy
    vectorises well; the partial pixels are one gathered row each.
    """
    n_in = x.shape[axis]
    i = np.arange(n_out, dtype=np.int64)
    a, b = i * n_in, (i + 1) * n_in
    y0, y1 = -(-a // n_out), b // n_out  # y0 <= y1 whenever n_out <= n_in
    longest = int((y1 - y0).max())
    shape = [1] * x.ndim
    shape[axis] = n_out
    if longest:
        padded = np.concatenate([x, np.zeros_like(np.take(x, [0], axis=axis))], axis=axis)
        rows = y0[:, None] + np.arange(longest)[None, :]
        rows = np.where(rows < y1[:, None], rows, n_in)  # n_in: the zero row
        blocks = np.take(padded, rows.ravel(), axis=axis)
        block_shape = [*x.shape[:axis], n_out, longest, *x.shape[axis + 1 :]]
        whole = blocks.reshape(block_shape).sum(axis=axis + 1, dtype=dtype)
        whole *= n_out
    else:
        whole = np.zeros([*x.shape[:axis], n_out, *x.shape[axis + 1 :]], dtype=dtype)
    left = (y0 * n_out - a).astype(dtype).reshape(shape)
    right = (b - y1 * n_out).astype(dtype).reshape(shape)
    whole += np.take(x, np.maximum(y0 - 1, 0), axis=axis).astype(dtype) * left
    whole += np.take(x, np.minimum(y1, n_in - 1), axis=axis).astype(dtype) * right
    return whole


def _area_resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average uint8 NHWC images to (height, width), exactly, in integers.

    ``out = round_half_up(sum(w_y * w_x * pixel) / (H * W))`` with the integer overlap weights
    of :func:`_shrink_axis`; the device kernel computes the same integers.
    """
    _, h, w, _ = images.shape
    # Row sums stay below h * 255; full sums below h * w * 255 (int64 beyond int32's range).
    rows = _shrink_axis(images, 1, height, np.int32)
    wide = np.int32 if h * w * 255 * 2 < 2**31 else np.int64
    sums = _shrink_axis(rows, 2, width, wide)
    area = h * w
    return ((2 * sums + area) // (2 * area)).astype(np.uint8)


def thumbnails(images: np.ndarray, max_size: int | None) -> Pending[np.ndarray]:
    """uint8 NHWC thumbnails of NHWC ``images`` (uint8, bool or float in [0, 1]).

    The result is a new C-contiguous array the caller may keep; ``images`` (which may be a
    strided view of a batch) is read a few images at a time, so peak extra memory stays near
    one image's float64 copy, not the batch's.
    """
    n, h, w, c = images.shape
    out_h, out_w = thumbnail_size(h, w, max_size)
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    per_group = max(1, CHUNK * 64 // max(1, h * w * c))
    for start in range(0, n, per_group):
        group = image_to_uint8(images[start : start + per_group])
        if (out_h, out_w) != (h, w):
            group = _area_resize(group, out_h, out_w)
        out[start : start + per_group] = group
    return Ready(out)


class _HeatCells:
    """Per-cell sums and counts of the heat map (see ``gpu_summary._anomaly``)."""

    def __init__(self, n: int, cells: int) -> None:
        rows, self.width, cell_rows, cell_columns = _anomaly.heat_grid(n, cells)
        self.row_cell = np.repeat(
            np.arange(cell_rows), np.diff(_anomaly.cell_bounds(rows, cell_rows))
        )
        self.column_cell = np.repeat(
            np.arange(cell_columns), np.diff(_anomaly.cell_bounds(self.width, cell_columns))
        )
        self.shape = (cell_rows, cell_columns)
        size = cell_rows * cell_columns
        self.sum = np.zeros(size, dtype=np.float64)
        self.count = np.zeros(size, dtype=np.int64)
        self.nonfinite = np.zeros(size, dtype=np.int64)

    def add(self, start: int, x: np.ndarray, finite: np.ndarray) -> None:
        flat = np.arange(start, start + x.size, dtype=np.int64)
        cell = (
            self.row_cell[flat // self.width] * self.shape[1] + self.column_cell[flat % self.width]
        )
        size = self.sum.size
        self.sum += np.bincount(cell, weights=np.where(finite, x, 0.0), minlength=size)
        self.count += np.bincount(cell, weights=finite, minlength=size).astype(np.int64)
        self.nonfinite += np.bincount(cell, weights=~finite, minlength=size).astype(np.int64)


@_quiet_overflow
def anomaly(
    values: np.ndarray,
    lower: float | None,
    upper: float | None,
    max_positions: int,
    cells: int,
) -> Pending[AnomalyResult]:
    """Non-finite and out-of-range counts, the first offending positions, the order
    statistics of the quantiles and the heat-map cells of ``values``, in C order.

    Every value is compared as float64. A value offends when it is NaN or ±Inf (counted only
    as such), or finite and ``< lower`` ("below") or ``> upper`` ("above"); the first
    ``max_positions`` offending flat indices are kept in index order. The quantiles' order
    statistics are found with ``numpy.partition`` over a float64 copy of the finite values
    (this reference keeps them all; the device backend selects them without a copy). The
    ladder histogram of the finite values comes from the same pass.
    """
    moments = _Moments()
    ladder = _LadderCounter(_Moments())  # its own non-finite tally: counted once, below
    heat = _HeatCells(int(values.size), cells)
    below = above = 0
    positions: list[np.ndarray] = []
    position_values: list[np.ndarray] = []
    kept = 0
    finite_parts: list[np.ndarray] = []
    for start, chunk in _c_order_chunks(values):
        x = _as_float(chunk).astype(np.float64, copy=False)
        moments.count_nonfinite(x)
        finite = np.isfinite(x)
        offending = ~finite
        if lower is not None:
            low = finite & (x < lower)
            below += int(np.count_nonzero(low))
            offending |= low
        if upper is not None:
            high = finite & (x > upper)
            above += int(np.count_nonzero(high))
            offending |= high
        if kept < max_positions and offending.any():
            where = np.flatnonzero(offending)[: max_positions - kept]
            positions.append(where + start)
            position_values.append(x[where])
            kept += where.size
        ladder.add(x)
        finite_x = x[finite]
        moments.add(finite_x)
        finite_parts.append(finite_x)
        heat.add(start, x, finite)
    stats = moments.stats()
    histogram = HistogramResult(limits=_ladder.LIMITS, counts=ladder.counts(), stats=stats)
    if stats.count:
        finite_values = np.concatenate(finite_parts)
        ranks = _anomaly.quantile_ranks(stats.count)
        order_stats = np.partition(finite_values, np.unique(ranks))[ranks]
    else:
        order_stats = np.zeros(0)
    return Ready(
        AnomalyResult(
            shape=tuple(values.shape),
            stats=stats,
            below=below,
            above=above,
            positions=np.concatenate(positions) if positions else np.zeros(0, np.int64),
            position_values=(np.concatenate(position_values) if position_values else np.zeros(0)),
            order_stats=order_stats,
            heat_sum=heat.sum.reshape(heat.shape),
            heat_count=heat.count.reshape(heat.shape),
            heat_nonfinite=heat.nonfinite.reshape(heat.shape),
            histogram=histogram,
        )
    )


def to_host(values: np.ndarray) -> Pending[np.ndarray]:
    """A copy of ``values`` on the host (the caller may change its array afterwards)."""
    return Ready(np.array(values, copy=True))


def embedding(matrix: np.ndarray, components: int | None) -> Pending[np.ndarray]:
    """An N×D matrix (N×d1×... flattened per row) as float32 for the Projector, or its N×k
    principal-component projection (``gpu_summary._embedding.principal_components``, in
    float64) when ``components`` is set.

    Raises:
        ValueError: ``components`` is set and the matrix holds NaN or ±Inf.
    """
    matrix = matrix.reshape(len(matrix), -1)
    if components is None:
        return Ready(np.array(matrix, dtype=np.float32, copy=True))
    x = matrix.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(
            "mat holds NaN or ±Inf, which principal components cannot place; log it without "
            "reduce='pca', or check it first with add_anomaly"
        )
    return Ready(_embedding.principal_components(x, components))


def snapshot(values: np.ndarray) -> np.ndarray:
    """A private copy of ``values`` that later reductions may read after the caller changed
    its array (distributed ``bins=n`` counts once the global range is known)."""
    return np.array(values, copy=True)


def histograms(tensors: list[np.ndarray]) -> Pending[list[HistogramResult]]:
    """Ladder histograms of several arrays: exactly ``histogram_fixed(a, None)`` of each."""
    return Ready([histogram_fixed(array, None).result() for array in tensors])
