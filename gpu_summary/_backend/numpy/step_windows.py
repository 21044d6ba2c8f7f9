"""The NumPy backend's windows: the counts of every step of a window added up, each step's
moments and non-finite counts kept, for one record at the window's end (the specification of
the device backend's ``windows``)."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.numpy.compiled import histogram_fixed, tensor_stats
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import Ready, TensorStats


class HostWindow:
    """A window's accumulator: int64 counts over ``limits`` (the ladder when None; none at
    all when ``histogram`` is False) and the stats of each step so far."""

    def __init__(self, limits: np.ndarray | None, size: int, histogram: bool) -> None:
        self.limits = limits
        self.histogram = histogram
        buckets = _ladder.N_LIMITS if limits is None else limits.size
        self.counts = np.zeros(buckets if histogram else 0, np.int64)
        self.stats: list[TensorStats] = []
        self.size = size


def window_open(
    limits: np.ndarray | None, size: int, like: np.ndarray, histogram: bool = True
) -> HostWindow:
    """An empty window of ``size`` steps (``like``: the first step's data)."""
    return HostWindow(limits, size, histogram)


def window_add(window: HostWindow, values: np.ndarray, slot: int) -> None:
    """Add one step (the ``slot``-th of the window) to it."""
    if window.histogram:
        result = histogram_fixed(values, window.limits).result()
        window.counts += result.counts
        window.stats.append(result.stats)
    else:
        window.stats.append(tensor_stats(values).result())


def window_result(window: HostWindow, slots: int) -> Ready[tuple[np.ndarray, list[TensorStats]]]:
    """(the summed counts, each of the first ``slots`` steps' stats)."""
    return Ready((window.counts.copy(), list(window.stats[:slots])))
