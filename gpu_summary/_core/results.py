"""Compact results that every backend returns, and the handle the writer thread waits on.

A backend reduction runs (or, on a device, is launched) on the caller's thread and returns a
:class:`Pending`; the writer thread calls :meth:`Pending.result` to get host values. The NumPy
backend's results are ready at once; the device backend's wait on a CUDA event.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class Pending(abc.ABC, Generic[T]):
    """A backend result that may still be in flight."""

    @abc.abstractmethod
    def result(self) -> T:
        """Block until the value is on the host and return it (called on the writer thread,
        or by a call documented to wait, such as ``add_embedding``)."""


class Ready(Pending[T]):
    """A result that is already on the host."""

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    def result(self) -> T:
        return self._value


class Derived(Pending[T]):
    """A result computed on first use, once, by ``compute()`` (on the writer thread): a
    function of other pending results, e.g. a device copy converted on the host."""

    __slots__ = ("_compute", "_value")

    def __init__(self, compute: Callable[[], T]) -> None:
        self._compute: Callable[[], T] | None = compute
        self._value: T | None = None

    def result(self) -> T:
        if self._compute is not None:
            self._value = self._compute()
            self._compute = None
        return self._value


@dataclasses.dataclass
class TensorStats:
    """Moments and non-finite counts of a tensor, in float64 / int.

    ``count``, ``min``, ``max``, ``sum`` and ``sum_squares`` cover the finite values only;
    ``min``/``max`` are 0.0 when there are none. NaN, +Inf and -Inf are counted, never summed.
    """

    count: int
    min: float
    max: float
    sum: float
    sum_squares: float
    nan: int
    posinf: int
    neginf: int

    @classmethod
    def of(
        cls,
        count: int,
        lowest: float,
        highest: float,
        sum: float,
        sum_squares: float,
        nan: int,
        posinf: int,
        neginf: int,
    ) -> TensorStats:
        """Stats from a reduction's raw fields: ``lowest``/``highest`` are kept only when there
        are finite values (``count``), else ``min``/``max`` are 0.0 (the one place of that rule,
        for every backend and for the merge across ranks)."""
        return cls(
            count=int(count),
            min=float(lowest) if count else 0.0,
            max=float(highest) if count else 0.0,
            sum=float(sum),
            sum_squares=float(sum_squares),
            nan=int(nan),
            posinf=int(posinf),
            neginf=int(neginf),
        )

    @property
    def size(self) -> int:
        """Number of elements, finite or not."""
        return self.count + self.nan + self.posinf + self.neginf


@dataclasses.dataclass
class HistogramResult:
    """Counts of the finite values over fixed bucket limits, with the tensor's stats.

    ``counts[i]`` counts the finite x with ``limits[i-1] <= x < limits[i]`` (bucket 0 has no
    lower limit; values at or above the last limit are counted in the last bucket), so
    ``counts.sum() == stats.count``.
    """

    limits: np.ndarray  # float64, nondecreasing (strictly increasing but for degenerate even bins)
    counts: np.ndarray  # int64, same length as limits
    stats: TensorStats


@dataclasses.dataclass
class AnomalyResult:
    """What a backend's ``anomaly`` reduction brings back to the host.

    ``positions`` are flat C-order indices of the first offending values (in index order),
    ``position_values`` their values as float64; ``order_stats`` the finite values (float64)
    at the ranks ``gpu_summary._anomaly.quantile_ranks(stats.count)``; ``heat_sum``,
    ``heat_count`` and ``heat_nonfinite`` the per-cell sum (float64) and counts (int64) of the
    heat map, shape (cell_rows, cell_columns).
    """

    shape: tuple[int, ...]
    stats: TensorStats
    below: int
    above: int
    positions: np.ndarray
    position_values: np.ndarray
    order_stats: np.ndarray
    heat_sum: np.ndarray
    heat_count: np.ndarray
    heat_nonfinite: np.ndarray
    histogram: HistogramResult  # the ladder histogram of the finite values, from the same pass
    # Merged across ranks: which rank each position is on, and how many finite values the
    # order statistics and heat map (rank 0's shard) cover.
    position_ranks: np.ndarray | None = None
    rank_shapes: tuple[tuple[int, ...], ...] | None = None  # each rank's shard shape
    order_count: int | None = None


@dataclasses.dataclass
class PrCounts:
    """What a backend's ``pr_counts`` reduction brings back: per threshold bucket, the summed
    weights of positives (``tp``: label × weight) and negatives (``fp``: (1 − label) ×
    weight), float64; how many pairs there were (``pairs``), and how many were left out: a
    NaN prediction or a non-finite label or weight (``nan``), a prediction below 0
    (``below``) or above 1 (``above``)."""

    tp: np.ndarray
    fp: np.ndarray
    nan: int
    below: int
    above: int
    pairs: int

    @property
    def skipped(self) -> int:
        return self.nan + self.below + self.above
