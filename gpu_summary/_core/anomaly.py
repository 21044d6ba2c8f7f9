"""Anomaly reports: what both backends compute, and the host arithmetic they share.

A backend's ``anomaly`` reduction returns an :class:`AnomalyResult` (compact: counts, the first
offending positions, the order statistics the quantiles need, a heat-map grid of cell sums).
Everything here runs on the host on those few numbers; it is shared so that the NumPy backend
and the device backend give identical reports from identical order statistics.

Quantiles follow ``numpy.quantile``'s default (``method="linear"``) over the finite values,
converted to float64: for quantile q of n values, ``h = (n - 1) * q``, the order statistics
``x[floor(h)]`` and ``x[floor(h) + 1]`` (clipped to n - 1) are interpolated by NumPy's own
formula (:func:`interpolate`). The backends only find order statistics, which are exact.

Heat map: the n values, in C order, are laid out row by row on a near-square grid of
``width = ceil(sqrt(n))`` columns and ``ceil(n / width)`` rows; the grid is cut into at most
``cells`` × ``cells`` rectangles at integer boundaries (cell i of k over m rows spans rows
``i * m // k`` up to ``(i + 1) * m // k``), and each rectangle reports the sum and number of its
finite values and the number of its non-finite ones.
"""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np

from gpu_summary._core.results import AnomalyResult, HistogramResult, Pending, TensorStats

QUANTILES = (0.0, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 1.0)
HEATMAP_CELLS = 64  # most cells a side of the heat map
MAX_POSITIONS = 100_000  # most offending positions one report may ask for

# What made a position offending, in the order a value is tested.
KINDS = ("nan", "posinf", "neginf", "below", "above")


def quantile_ranks(count: int, quantiles: tuple[float, ...] = QUANTILES) -> np.ndarray:
    """The 0-based ranks of the order statistics the quantiles of ``count`` values need:
    for each quantile, ``[floor(h), floor(h) + 1]`` clipped to ``count - 1`` (int64, 2 per q)."""
    h = (count - 1) * np.asarray(quantiles, dtype=np.float64)
    lo = np.minimum(np.floor(h), count - 1).astype(np.int64)
    hi = np.minimum(lo + 1, count - 1)
    return np.stack([lo, hi], axis=1).reshape(-1)


def interpolate(a: np.ndarray, b: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """``numpy.quantile``'s linear interpolation between neighbours ``a <= b`` (float64)."""
    diff = b - a
    out = a + diff * gamma
    upper = gamma >= 0.5
    out[upper] = (b - diff * (1 - gamma))[upper]
    return out


def quantiles_from_order_stats(
    count: int, order_stats: np.ndarray, quantiles: tuple[float, ...] = QUANTILES
) -> np.ndarray:
    """The quantiles of ``count`` finite values from the order statistics at
    :func:`quantile_ranks` (float64; NaN for every quantile when ``count`` is 0)."""
    q = np.asarray(quantiles, dtype=np.float64)
    if count == 0:
        return np.full(q.shape, np.nan)
    h = (count - 1) * q
    gamma = h - np.minimum(np.floor(h), count - 1)
    pairs = np.asarray(order_stats, dtype=np.float64).reshape(-1, 2)
    with np.errstate(over="ignore", invalid="ignore"):  # ±DBL_MAX neighbours: inf is right
        return interpolate(pairs[:, 0], pairs[:, 1], gamma)


def heat_grid(n: int, cells: int) -> tuple[int, int, int, int]:
    """(rows, width, cell_rows, cell_columns) of the heat map of ``n`` values."""
    width = max(1, math.isqrt(n - 1) + 1) if n else 1
    rows = max(1, -(-n // width))
    return rows, width, min(rows, cells), min(width, cells)


def cell_bounds(length: int, parts: int) -> np.ndarray:
    """Integer boundaries cutting ``length`` rows (or columns) into ``parts`` (int64, parts+1)."""
    return np.arange(parts + 1, dtype=np.int64) * length // parts


@dataclasses.dataclass(frozen=True)
class Position:
    """One offending value: its index in the tensor (a distributed writer: in that rank's
    shard), its value and what made it offend."""

    index: tuple[int, ...]
    value: float
    kind: str  # one of KINDS
    rank: int | None = None  # the rank whose shard holds it (distributed writers)


@dataclasses.dataclass(frozen=True)
class AnomalyReport:
    """The host-side report of one ``add_anomaly`` call.

    Attributes:
        tag, step: where it was logged.
        nan, posinf, neginf: non-finite counts.
        below, above: finite values below ``lower`` / above ``upper`` (0 without a bound).
        count: finite values.
        positions: the first offending values in C order (at most ``max_positions``).
        quantiles: ``{q: value}`` over the finite values (empty when there are none).
        whiskers: box-plot whiskers ``(q1 - 1.5 IQR, q3 + 1.5 IQR)`` clipped to [min, max]
            (None without finite values).
        heatmap: per-cell mean of the finite values (float64, NaN where a cell has none).
        tensors: from ``add_histograms(check_nonfinite=True)`` (and ``gs.watch``): the tags
            of every tensor holding NaN/±Inf, in the order given; ``tag`` is the first, and
            the counts are its own. From ``gs.watch(flight_recorder=K)``: ``tag`` is
            ``"flight_recorder"``, ``step`` the first step holding NaN/±Inf, ``tensors`` that
            step's offending tensors in the order it produced them, and the counts the
            first one's.
    """

    tag: str
    step: int
    nan: int
    posinf: int
    neginf: int
    below: int
    above: int
    count: int
    positions: tuple[Position, ...]
    quantiles: dict[float, float]
    whiskers: tuple[float, float] | None
    heatmap: np.ndarray
    tensors: tuple[str, ...] = ()  # add_histograms(check_nonfinite=True): every offending tag

    @property
    def total(self) -> int:
        """Every offending value: non-finite, below and above."""
        return self.nan + self.posinf + self.neginf + self.below + self.above

    def __bool__(self) -> bool:
        """True when anything offended."""
        return self.total > 0


def position_kind(value: float, lower: float | None, upper: float | None) -> str:
    """Why ``value`` offends (see KINDS)."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "posinf" if value > 0 else "neginf"
    if lower is not None and value < lower:
        return "below"
    return "above"


def report(
    result: AnomalyResult,
    tag: str,
    step: int,
    lower: float | None,
    upper: float | None,
    quantiles: tuple[float, ...] = QUANTILES,
) -> AnomalyReport:
    """Build the report of one reduction (host arithmetic on compact results only)."""
    stats = result.stats
    order_count = stats.count if result.order_count is None else result.order_count
    values = quantiles_from_order_stats(order_count, result.order_stats, quantiles)
    by_q = {} if order_count == 0 else dict(zip(quantiles, values.tolist(), strict=True))
    whiskers = None
    if order_count:
        q1, q3 = by_q.get(0.25), by_q.get(0.75)
        if q1 is not None and q3 is not None:
            iqr = q3 - q1
            whiskers = (max(stats.min, q1 - 1.5 * iqr), min(stats.max, q3 + 1.5 * iqr))
    shape = result.shape
    positions = []
    ranks = result.position_ranks
    pairs = zip(result.positions.tolist(), result.position_values.tolist(), strict=True)
    for k, (flat, value) in enumerate(pairs):
        rank = None if ranks is None else int(ranks[k])
        where = shape if rank is None or result.rank_shapes is None else result.rank_shapes[rank]
        index = tuple(int(i) for i in np.unravel_index(flat, where)) if where else ()
        positions.append(Position(index, value, position_kind(value, lower, upper), rank))
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(result.heat_count > 0, result.heat_sum / result.heat_count, np.nan)
    return AnomalyReport(
        tag=tag,
        step=step,
        nan=stats.nan,
        posinf=stats.posinf,
        neginf=stats.neginf,
        below=result.below,
        above=result.above,
        count=stats.count,
        positions=tuple(positions),
        quantiles=by_q,
        whiskers=whiskers,
        heatmap=means,
    )


class AnomalyHandle:
    """What ``SummaryWriter.add_anomaly`` returns: the report, once the reduction is done.

    Creating it never waits for the device. :meth:`result` waits (on a device: for the CUDA
    event after the copy of the compact result, a sync of the caller's thread *only if the
    caller asks*) and builds the report once; the writer thread uses the same report.
    Thread-safe.
    """

    def __init__(
        self,
        pending: Pending[AnomalyResult],
        tag: str,
        step: int,
        lower: float | None,
        upper: float | None,
    ) -> None:
        self.tag, self.step, self.lower, self.upper = tag, step, lower, upper
        self._pending = pending
        self._lock = threading.Lock()
        self._report: AnomalyReport | None = None
        self._result: AnomalyResult | None = None

    def result(self) -> AnomalyReport:
        """The report (blocks until the reduction's result is on the host)."""
        with self._lock:
            if self._report is None:
                self._result = self._pending.result()
                self._report = report(self._result, self.tag, self.step, self.lower, self.upper)
                self._pending = None
            return self._report

    def summary_parts(self) -> tuple[AnomalyReport, HistogramResult, np.ndarray]:
        """(report, histogram of the finite values, per-cell non-finite counts)."""
        report_ = self.result()
        return report_, self._result.histogram, self._result.heat_nonfinite

    def __repr__(self) -> str:
        state = "ready" if self._report is not None else "pending"
        return f"<AnomalyHandle {self.tag!r} step {self.step} ({state})>"


def nonfinite_report(tags: list[str], stats: list[TensorStats], step: int) -> AnomalyReport | None:
    """The report of a group of tensors' non-finite counts: None when all are finite."""
    offending = [k for k, st in enumerate(stats) if st.nan or st.posinf or st.neginf]
    if not offending:
        return None
    first = stats[offending[0]]
    return AnomalyReport(
        tag=tags[offending[0]],
        step=step,
        nan=first.nan,
        posinf=first.posinf,
        neginf=first.neginf,
        below=0,
        above=0,
        count=first.count,
        positions=(),
        quantiles={},
        whiskers=None,
        heatmap=np.zeros((0, 0)),
        tensors=tuple(tags[k] for k in offending),
    )
