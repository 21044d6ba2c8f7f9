"""Summary builders: pure functions from compact results to Summary protos (histogram emission
rules here; each kind's plugin reads them back in its own test module)."""

from __future__ import annotations

import numpy as np

from gpu_summary._core.results import HistogramResult, TensorStats
from gpu_summary.summaries.histogram import histogram_proto


def _result(counts, limits, values):
    finite = np.asarray(values, dtype=np.float64)
    stats = TensorStats(
        count=finite.size,
        min=float(finite.min()) if finite.size else 0.0,
        max=float(finite.max()) if finite.size else 0.0,
        sum=float(finite.sum()),
        sum_squares=float((finite**2).sum()),
        nan=0,
        posinf=0,
        neginf=0,
    )
    return HistogramResult(np.asarray(limits, float), np.asarray(counts, np.int64), stats)


def test_histogram_emission_trims_and_collapses():
    limits = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    counts = [0, 0, 2, 0, 0, 0, 1, 0]
    proto = histogram_proto(_result(counts, limits, [2.5, 2.5, 6.5]), collapse_empty_runs=True)
    assert list(proto.bucket_limit) == [3.0, 6.0, 7.0]
    assert list(proto.bucket) == [2.0, 0.0, 1.0]
    kept = histogram_proto(_result(counts, limits, [2.5, 2.5, 6.5]), collapse_empty_runs=False)
    assert list(kept.bucket_limit) == [3.0, 4.0, 5.0, 6.0, 7.0]
    assert list(kept.bucket) == [2.0, 0.0, 0.0, 0.0, 1.0]
    assert (proto.min, proto.max, proto.num, proto.sum) == (2.5, 6.5, 3.0, 11.5)


def test_histogram_emission_without_values():
    proto = histogram_proto(_result([0, 0], [1.0, 2.0], []), collapse_empty_runs=True)
    assert (list(proto.bucket_limit), list(proto.bucket), proto.num) == ([0.0], [0.0], 0.0)
