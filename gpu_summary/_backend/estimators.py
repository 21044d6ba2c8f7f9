"""NumPy's bin estimators (``bins="auto"``, ``"fd"``, ``"stone"``, ...) counted on a tensor's
backend: the statistics each estimator reads, then its even bins, then the counts over them, so
a device tensor's histogram equals ``numpy.histogram`` of its finite values without being copied
whole. The estimators' arithmetic itself is ``gpu_summary._core.bin_rules``."""

from __future__ import annotations

import warnings

import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments, bin_rules
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.anomaly import QUANTILES, quantiles_from_order_stats
from gpu_summary._core.results import Derived, HistogramResult, Pending, Ready


def rule_histogram(backend: object, array: object, rule: str) -> Pending[HistogramResult]:
    """``numpy.histogram(finite, bins=rule)`` for a rule of ``bin_rules.DEVICE_RULES``,
    counted on ``array``'s backend: the count, min and max (and, for ``"auto"`` and ``"fd"``,
    the exact quartiles, by the anomaly report's selection; for ``"stone"``, one even
    histogram per candidate bin count), then NumPy's bin count from them, then the counts over
    those even edges. On a device the first pass runs on a private copy of the
    tensor (the caller may overwrite it) and the rest on the writer thread: no sync here.

    The limits are those of ``numpy_backend.rule_limits``: numpy's edges, the last bucket open.
    A bin count over ``arguments.MAX_BINS`` (``fd`` on data with a narrow middle), or one that
    numpy refuses because the range is too narrow for that many distinct edges ("Too many bins
    for data range"), is halved until it fits, with a RuntimeWarning (on a device this is
    known only on the writer thread).
    """
    host = backend is numpy_backend
    source = array if host else backend.snapshot(array)
    quartiles = rule in bin_rules.NEEDS_QUARTILES
    found = backend.anomaly(source, None, None, 0, 1) if quartiles else backend.tensor_stats(source)

    def count() -> HistogramResult:
        result = found.result()
        stats = result.stats if quartiles else result
        q25 = q75 = 0.0
        if quartiles and stats.count:
            q = quantiles_from_order_stats(stats.count, result.order_stats)
            q25, q75 = float(q[QUANTILES.index(0.25)]), float(q[QUANTILES.index(0.75)])
        lo, hi = stats.min, stats.max
        if rule == "stone":

            def counts_for(nbins: int) -> np.ndarray:
                return backend.even_counts(source, lo, hi, nbins).result()

            asked = bins = bin_rules.stone_bin_count(stats.count, lo, hi, counts_for)
        else:
            asked = bins = bin_rules.bin_count(rule, stats.count, lo, hi, q25, q75)
        while bins > arguments.MAX_BINS:
            bins //= 2
        edges = numpy_backend.even_edges(lo, hi, bins)
        while bins > 1 and not bool(np.all(edges[1:] > edges[:-1])):
            bins //= 2
            edges = numpy_backend.even_edges(lo, hi, bins)
        if bins != asked:
            warnings.warn(
                f"gpu_summary: bins={rule!r} asks for {asked} buckets, more than "
                f"{arguments.MAX_BINS} or than the range [{lo!r}, {hi!r}] has distinct edges; "
                f"{bins} used (halved until they fit)",
                RuntimeWarning,
                stacklevel=2,
            )
        if stats.count:
            counts = np.asarray(backend.even_counts(source, lo, hi, bins).result(), np.int64)
        else:
            counts = np.zeros(bins, dtype=np.int64)
        limits = np.append(edges[:-1], _ladder.DBL_MAX)  # rule_limits' limits: one below min
        return HistogramResult(limits=limits, counts=np.concatenate([[0], counts]), stats=stats)

    if host:  # the caller's array may change once this returns: count it now
        return Ready(count())
    return Derived(count)
