"""The one interface both backends implement: ``gpu_summary._backend.numpy`` (the host, and the
specification) and ``gpu_summary._backend.cuda`` (CUDA kernels, matching it).

Each backend is a module whose functions have these signatures and semantics; the dispatch
(``gpu_summary._backend.backend_for``) hands one back with the array in the form it takes, and
the writer never knows which it got. Reductions return a ``Pending`` whose ``result()`` the
writer thread calls; on a device they only launch work and queue the copy of the compact result
to the host, never waiting on the caller's thread. ``Array`` is a NumPy array for the host
backend, a ``DeviceArray`` (CuPy array + stream) for the device one.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from gpu_summary._core.results import (
    AnomalyResult,
    HistogramResult,
    Pending,
    PrCounts,
    TensorStats,
)

Array = object


@runtime_checkable
class Backend(Protocol):
    """A reduction backend (a module satisfying this protocol)."""

    def scalar(self, value: Array) -> Pending[float]:
        """The one number of a one-element array."""
        ...

    def tensor_stats(self, values: Array) -> Pending[TensorStats]:
        """Moments and non-finite counts."""
        ...

    def histogram_fixed(self, values: Array, limits: np.ndarray | None) -> Pending[HistogramResult]:
        """Counts over fixed bucket limits (None: TensorBoard's ladder), with the stats."""
        ...

    def histogram_even(self, values: Array, bins: int) -> Pending[HistogramResult]:
        """``bins`` even buckets over [min, max] of the finite values, with the stats."""
        ...

    def even_counts(self, values: Array, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
        """int64 counts over ``bins`` even buckets of [lo, hi] (a range known beforehand)."""
        ...

    def histograms(self, tensors: list[Array]) -> Pending[list[HistogramResult]]:
        """Ladder histograms of several arrays of one dtype (and device), together."""
        ...

    def thumbnails(
        self, images: Array, max_size: int | None, *, truncate: bool = False
    ) -> Pending[np.ndarray]:
        """NHWC images as uint8 on the host, area-shrunk so the longer side is ``max_size``;
        floats scaled as ``image_to_uint8`` scales them (``truncate``: as torch's writer)."""
        ...

    def thumbnail_size(self, height: int, width: int, max_size: int | None) -> tuple[int, int]:
        """The size :meth:`thumbnails` makes (pure arithmetic)."""
        ...

    def anomaly(
        self,
        values: Array,
        lower: float | None,
        upper: float | None,
        max_positions: int,
        cells: int,
    ) -> Pending[AnomalyResult]:
        """Counts, first positions, quantiles and heat map of what is wrong in ``values``."""
        ...

    def pr_counts(
        self,
        predictions: Array,
        labels: Array,
        weights: Array | None,
        thresholds: int,
        prediction_dtype: str | None = None,
    ) -> Pending[PrCounts]:
        """Positive and negative weight per threshold bucket of a precision-recall curve."""
        ...

    def window_open(
        self, limits: np.ndarray | None, size: int, like: Array, histogram: bool = True
    ) -> object:
        """An empty accumulator of ``size`` steps: counts over ``limits`` (None: the ladder;
        none without ``histogram``) and each step's stats."""
        ...

    def window_add(self, window: object, values: Array, slot: int) -> None:
        """Add one step's values into the window (on a device: one launch, no sync)."""
        ...

    def window_result(
        self, window: object, slots: int
    ) -> Pending[tuple[np.ndarray, list[TensorStats]]]:
        """The summed counts and the first ``slots`` steps' stats."""
        ...

    def flight_open(self, slots: int, tensors: int, like: Array) -> object:
        """An empty flight recorder ring (``gpu_summary._core.flight``) of ``slots`` steps of
        ``tensors`` tensors, where ``like`` lives."""
        ...

    def flight_add(
        self, ring: object, arrays: list[Array], columns: list[int], orders: list[int], step: int
    ) -> Pending[int]:
        """One step's statistics of ``arrays`` into the ring (nothing after its first step
        holding NaN/±Inf); the ring's ``first_bad`` word after it (on a device: no sync)."""
        ...

    def flight_result(self, ring: object) -> Pending[np.ndarray]:
        """The ring's words (uint64), copied to the host once."""
        ...

    def format_counts(self, values: Array, formats: tuple[str, ...]) -> Pending[np.ndarray]:
        """int64 counts of shape (len(formats), 2): per low-precision format
        (``gpu_summary._core.formats``), the values that overflow and that underflow it."""
        ...

    def to_host(self, values: Array) -> Pending[np.ndarray]:
        """A copy on the host."""
        ...

    def embedding(self, matrix: Array, components: int | None) -> Pending[np.ndarray]:
        """An N×D matrix as float32 on the host, or its N×k principal components."""
        ...

    def snapshot(self, values: Array) -> Array:
        """A private copy of the same kind (on a device: made on the producer's stream)."""
        ...


# The protocol's functions, for checks that a module provides each with its signature.
BACKEND_FUNCTIONS = tuple(
    name for name in vars(Backend) if not name.startswith("_") and callable(vars(Backend)[name])
)
