"""The NumPy backend's probes (``writer.probe``): a tensor's ladder counts, stats and
low-precision format counts added into a probe's accumulator (``_core/probe_layout.py``), and
the accumulator taken out and emptied by ``writer.collect`` — the specification of the device
backend's ``probe_add`` (one accumulating launch of gs_reduce) and ``probe_take``."""

from __future__ import annotations

import os
import threading

import numpy as np

from gpu_summary._backend.numpy.compiled import histogram_fixed
from gpu_summary._backend.numpy.compiled_formats import format_counts
from gpu_summary._core import probe_layout
from gpu_summary._core.results import Ready

_lock = threading.Lock()  # a probe may be called and collected on different threads


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()  # in a forked child: another thread may have held the parent's


os.register_at_fork(after_in_child=_new_lock)

_STATS = probe_layout.STATS


def probe_add(state: np.ndarray, values: np.ndarray, formats: tuple[str, ...]) -> None:
    """Add ``values``' ladder counts, stats and ``formats`` counts into ``state`` (int64
    words: ``probe_layout``); NaN and ±Inf counted apart, min/max exact."""
    result = histogram_fixed(values, None).result()
    counts = None
    if formats:
        counts = format_counts(values, formats).result().reshape(-1)
    with _lock:
        state[:_STATS] += result.counts
        head = state[_STATS : _STATS + probe_layout.STATS_WORDS]
        doubles = head.view(np.float64)
        s = result.stats
        head[:4] += (s.count, s.nan, s.posinf, s.neginf)
        if s.count:
            doubles[4] = min(doubles[4], s.min)
            doubles[5] = max(doubles[5], s.max)
        doubles[6] += s.sum
        doubles[7] += s.sum_squares
        if counts is not None:
            state[probe_layout.FORMATS : probe_layout.FORMATS + counts.size] += counts


def probe_take(state: np.ndarray, n_formats: int) -> Ready[np.ndarray]:
    """A copy of ``state``'s counts, stats and format counts; ``state`` emptied."""
    end = probe_layout.scratch(n_formats)
    with _lock:
        taken = state[:end].copy()
        state[:end] = probe_layout.empty(n_formats)[:end]
    return Ready(taken)
