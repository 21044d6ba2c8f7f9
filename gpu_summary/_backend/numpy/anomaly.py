"""The NumPy backend's anomaly report: counts and positions of NaN, ±Inf and out-of-bounds
values, exact quantiles and the heat map, in one chunked pass (the specification of
gs_anomaly.cu)."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.numpy.arrays import as_float, c_order_chunks, quiet_overflow
from gpu_summary._backend.numpy.reduce import LadderCounter, Moments
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import (
    AnomalyResult,
    HistogramResult,
    Pending,
    Ready,
)


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


@quiet_overflow
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
    moments = Moments()
    ladder = LadderCounter(Moments())  # its own non-finite tally: counted once, below
    heat = _HeatCells(int(values.size), cells)
    below = above = 0
    positions: list[np.ndarray] = []
    position_values: list[np.ndarray] = []
    kept = 0
    finite_parts: list[np.ndarray] = []
    for start, chunk in c_order_chunks(values):
        x = as_float(chunk).astype(np.float64, copy=False)
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
