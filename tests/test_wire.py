"""gpu_summary._events.wire: the Events assembled from bytes (scalars, images) are protobuf's
bytes, byte for byte."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_summary._events.wire import image_event_parts, scalar_event, scalar_events
from gpu_summary.proto import event_pb2, summary_pb2
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


@pytest.mark.parametrize("step", [0, 7, -3, 2**62])
@pytest.mark.parametrize("tag", ["a", "é" * 100, "x" * 300])
def test_image_records_from_parts_are_protobufs_bytes(step, tag):
    from gpu_summary.summaries.image import encode_pngs

    images = np.random.default_rng(1).integers(0, 256, (3, 20, 30, 4), dtype=np.uint8)
    pngs = encode_pngs(images)
    tags = [f"{tag}/image/{i}" for i in range(3)]
    parts = image_event_parts(tags, pngs, 20, 30, 4, step, 123.25)
    summary = summary_pb2.Summary()  # built by protobuf, the reference
    for name, png in zip(tags, pngs, strict=True):
        image = summary_pb2.Summary.Image(height=20, width=30, colorspace=4,
                                          encoded_image_string=png)  # fmt: skip
        summary.value.add(tag=name, image=image)
    want = event_pb2.Event(wall_time=123.25, step=step, summary=summary).SerializeToString()
    assert b"".join(parts) == want
    assert any(part is png for part in parts for png in pngs)  # referenced, not copied


def _histogram_results():
    from gpu_summary._backend.numpy import reduce as spec
    from gpu_summary._core.results import HistogramResult

    rng = np.random.default_rng(5)
    normal = rng.standard_normal(10_000) * 0.01
    mixed = np.concatenate([normal, [np.nan, np.inf, -0.0, 0.0, 1e300, -1e300]])
    results = [
        spec.histogram_fixed(normal, None).result(),
        spec.histogram_fixed(mixed, None).result(),
        spec.histogram_fixed(np.array([np.nan]), None).result(),  # no finite value
        spec.histogram_fixed(np.array([0.0, 0.0]), None).result(),  # +0.0 stats left out
        spec.histogram_fixed(np.array([-0.0]), None).result(),  # min and max -0.0
        spec.histogram_fixed(np.array([1e308, 1e308]), None).result(),  # sums +inf
        spec.histogram_fixed(normal, np.array([-0.01, 0.0, 0.02])).result(),
    ]
    whole = results[0]
    # fractional (weighted) counts, as add_histogram_raw's
    results.append(HistogramResult(whole.limits, whole.counts * 0.5, whole.stats))
    return results


@pytest.mark.parametrize("collapse", [True, False])
@pytest.mark.parametrize("step,wall", [(0, 0.0), (7, 1.7e9), (-3, 2.5)])
def test_histogram_records_are_protobufs_bytes(collapse, step, wall):
    from gpu_summary._events.wire import summary_event
    from gpu_summary.summaries.histogram import histogram_summary, histogram_summary_bytes

    results = _histogram_results()
    tags = [f"h{i}/é" for i in range(len(results))]
    expected = summary_pb2.Summary()
    for tag, result in zip(tags, results, strict=True):
        one = histogram_summary(tag, result, collapse)
        assert histogram_summary_bytes(tag, result, collapse) == one.SerializeToString()
        expected.value.extend(one.value)
    pairs = zip(tags, results, strict=True)
    joined = b"".join(histogram_summary_bytes(tag, result, collapse) for tag, result in pairs)
    event = event_pb2.Event(wall_time=wall, step=step, summary=expected)
    assert summary_event(joined, step, wall) == event.SerializeToString()
    parsed = event_pb2.Event.FromString(summary_event(joined, step, wall))
    assert [v.tag for v in parsed.summary.value] == tags
    assert parsed.summary.value[1].histo.num == results[1].stats.count
