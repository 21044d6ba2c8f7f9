"""Summary builders: scalar bytes equal protobuf's; histogram emission rules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_summary._core.results import HistogramResult, TensorStats
from gpu_summary._writer.jobs import scalar_event, scalar_events
from gpu_summary.proto import event_pb2
from gpu_summary.summaries.histogram import histogram_proto
from gpu_summary.summaries.scalar import scalar_summary

CASES = [
    ("loss", 0.5, 0, 0.0),
    ("loss", 0.0, 1, 1.7e9),
    ("a/b c/训练", -3.25, -7, 1.7e9),
    ("x", math.nan, 2**62, 1.0),
    ("x", math.inf, 5, 2.0),
    ("x", -math.inf, 5, 2.0),
    ("x", 1e40, 9, 3.0),  # beyond float32: +inf
    ("x", -1e40, 9, 3.0),
    ("x", 1e-50, 2**63 - 1, 4.0),  # underflows to 0 in float32
    ("y" * 300, 1.0, -(2**63), 5.0),
]


@pytest.mark.parametrize("tag,value,step,wall", CASES)
def test_scalar_event_bytes_equal_protobuf(tag, value, step, wall):
    expected = event_pb2.Event(wall_time=wall, step=step, summary=scalar_summary(tag, value))
    assert scalar_event(tag, value, step, wall) == expected.SerializeToString()


def test_scalar_events_in_bulk_equal_one_by_one():
    rng = np.random.default_rng(0)
    calls = [
        (f"tag{rng.integers(3)}", float(v), int(s), float(w))
        for v, s, w in zip(
            rng.standard_normal(500), rng.integers(-5, 5, 500), rng.random(500), strict=True
        )
    ]
    calls += CASES
    assert scalar_events(calls) == [scalar_event(*call) for call in calls]
    for call, data in zip(calls, scalar_events(calls), strict=True):
        parsed = event_pb2.Event.FromString(data)
        assert (parsed.step, parsed.wall_time, parsed.summary.value[0].tag) == (
            call[2],
            call[3],
            call[0],
        )


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
