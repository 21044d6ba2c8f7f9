"""Anomaly reports and thumbnails on the host, compiled (numba, through ``compiled_runtime``):
the same results as ``anomaly`` and ``images``, the specification, which runs wherever the
kernels cannot.

An anomaly report is one pass over the values in C order (counts, the first offending
positions, the ladder histogram, moments and the heat map) and one that gathers only the values
of the ladder buckets holding the quantiles' order statistics, which are then selected exactly
among those. Thumbnails are the specification's integer area averages, images shared out over
the threads.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

from gpu_summary._backend.numpy import compiled_runtime as runtime
from gpu_summary._backend.numpy import images as reference_images
from gpu_summary._backend.numpy.anomaly import anomaly as reference_anomaly
from gpu_summary._backend.numpy.arrays import CHUNK, quiet_overflow
from gpu_summary._backend.numpy.compiled_runtime import FLOATS, enabled
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import AnomalyResult, HistogramResult, Pending, Ready, TensorStats


def thumbnails(
    images: np.ndarray, max_size: int | None, *, truncate: bool = False
) -> Pending[np.ndarray]:
    """``images.thumbnails``, the area averages compiled and shared out over the threads by
    image (a few images converted to uint8 at a time, as the specification does)."""
    n, h, w, c = images.shape
    out_h, out_w = reference_images.thumbnail_size(h, w, max_size)
    if (
        (out_h, out_w) == (h, w)
        or not enabled()
        or n == 0
        or h * w * c > reference_images.STREAM_ABOVE
    ):
        # (one huge image: streamed)
        return reference_images.thumbnails(images, max_size, truncate=truncate)
    variant = (np.dtype(np.uint8), False)  # the kernel's input: each group as uint8
    if not runtime.usable(variant, images.size):
        return reference_images.thumbnails(images, max_size, truncate=truncate)
    kernels = runtime.kernels()
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    per_group = max(1, CHUNK * 64 // max(1, h * w * c))

    for start in range(0, n, per_group):
        group = reference_images.image_to_uint8(images[start : start + per_group], truncate)
        if not group.flags.c_contiguous:  # one kernel signature: C-contiguous, writable
            group = np.ascontiguousarray(group)
        if not group.flags.writeable:
            group = group.copy()
        local = out[start : start + len(group)]
        shrink = functools.partial(_shrink_range, kernels, group, local)
        runtime.in_parts_by_item(len(group), shrink)
    return Ready(out)


def _shrink_range(
    kernels: object, group: np.ndarray, out: np.ndarray, first: int, stop: int
) -> None:
    scratch = np.empty(group.shape[2] * group.shape[3], np.int64)
    for k in range(first, stop):
        kernels.shrink_image(group[k], out[k], scratch)


def _c_order_pieces(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(flat C-order index of the first element, 1-D float32/float64 piece) covering
    ``values`` in C order: a view when C-contiguous float32/float64, else ``SLAB`` values at a
    time copied, other dtypes converted to float64 (as the specification compares them)."""
    if values.ndim == 0 or values.flags.c_contiguous:
        flat = values.reshape(-1)
        if flat.dtype in FLOATS:
            yield 0, flat
            return
        for start in range(0, flat.size, runtime.SLAB):
            yield start, flat[start : start + runtime.SLAB].astype(np.float64)
        return
    inner = max(1, values[0].size) if values.shape[0] else 1
    step = max(1, runtime.SLAB // inner)
    for start in range(0, values.shape[0], step):
        slab = np.ascontiguousarray(values[start : start + step]).reshape(-1)
        yield start * inner, slab if slab.dtype in FLOATS else slab.astype(np.float64)


def _pieces_variant(values: np.ndarray) -> tuple[np.dtype, bool]:
    """The kernel variant of every piece ``_c_order_pieces`` yields for ``values``."""
    if values.dtype not in FLOATS:
        return np.dtype(np.float64), False
    view = values.ndim == 0 or values.flags.c_contiguous
    return values.dtype, view and not values.flags.writeable


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
    if values.size and enabled() and runtime.usable(_pieces_variant(values), values.size):
        return Ready(_anomaly_report(values, lower, upper, max_positions, cells))
    return reference_anomaly(values, lower, upper, max_positions, cells)


def _anomaly_report(
    values: np.ndarray, lower: float | None, upper: float | None, max_positions: int, cells: int
) -> AnomalyResult:
    kernels = runtime.kernels()
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


def _warm(sample: np.ndarray) -> None:
    if sample.dtype in FLOATS:
        _anomaly_report(sample, 0.5, 2.5, 2, 2)
    if sample.dtype == np.uint8 and sample.flags.writeable:
        image = np.arange(48, dtype=np.uint8).reshape(1, 4, 4, 3)
        _shrink_range(runtime.kernels(), image, np.empty((1, 2, 2, 3), np.uint8), 0, 1)


runtime.WARMERS.append(_warm)
