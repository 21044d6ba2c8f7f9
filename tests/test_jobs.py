"""gpu_summary._writer.jobs: the one place Events are built — scalar bytes equal protobuf's,
jobs name themselves in errors, and a failed merge writes nothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_summary._core.results import Ready
from gpu_summary._writer import jobs
from gpu_summary._writer.jobs import scalar_event, scalar_events
from gpu_summary.distributed import AggregationFailed, Merged
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


def test_scalar_jobs_are_built_in_bulk():
    first, second = jobs.scalar("a", 1.0, 0, 5.0), jobs.scalar("b", 2.0, 1, 6.0)
    assert first.kind is second.kind and first.kind.build_many is scalar_events
    assert first.build() == scalar_event("a", 1.0, 0, 5.0)
    assert first.describe() == "scalar for tag 'a'"


def test_summary_jobs_stamp_their_event_and_name_themselves():
    job = jobs.summary("image", "img", 3, 9.5, lambda: scalar_summary("img", 1.0), nbytes=12)
    assert (job.nbytes, job.describe()) == (12, "image 'img' at step 3")
    event = job.build()
    assert (event.step, event.wall_time, event.summary.value[0].tag) == (3, 9.5, "img")


def _failed() -> Merged:
    merged = Merged()
    merged.fail(RuntimeError("rank 1 logged something else"))
    return merged


def test_a_failed_merge_writes_nothing():
    # The aggregation's own error reaches the caller from its next call (test_aggregation).
    assert jobs.pending_scalar("s", _failed(), 0, 1.0).build() is None
    assert jobs.pending_scalar("s", Ready(2.0), 0, 1.0).build() == scalar_event("s", 2.0, 0, 1.0)

    def build() -> summary_pb2.Summary:
        _failed().result()
        raise AssertionError("not reached")

    assert jobs.summary("histogram", "h", 0, 1.0, build).build() is None
    with pytest.raises(AggregationFailed):
        _failed().result()


def test_ready_summaries_and_graphs_are_serialised_at_the_call():
    message = scalar_summary("x", 4.0)
    job = jobs.ready_summary(message, 7, 3.0)
    assert job.nbytes == len(job.build()) > 0
    assert event_pb2.Event.FromString(job.build()).summary == message
    graph = event_pb2.Event.FromString(jobs.graph(b"\x0a\x00", 2.0).build())
    assert (graph.step, graph.graph_def) == (0, b"\x0a\x00")


def test_session_end_is_stamped_when_built():
    event = jobs.session_end("failure").build()
    assert event.step == 0 and event.wall_time > 0
    assert event.summary.value[0].tag == "_hparams_/session_end_info"
    assert not math.isnan(event.wall_time) and np.isfinite(event.wall_time)


@pytest.mark.parametrize("step", [0, 7, -3, 2**62])
@pytest.mark.parametrize("tag", ["a", "é" * 100, "x" * 300])
def test_image_records_from_parts_are_protobufs_bytes(step, tag):
    from gpu_summary.summaries.image import encode_pngs

    images = np.random.default_rng(1).integers(0, 256, (3, 20, 30, 4), dtype=np.uint8)
    pngs = encode_pngs(images)
    tags = [f"{tag}/image/{i}" for i in range(3)]
    parts = jobs.image_event_parts(tags, pngs, 20, 30, 4, step, 123.25)
    summary = summary_pb2.Summary()  # built by protobuf, the reference
    for name, png in zip(tags, pngs, strict=True):
        image = summary_pb2.Summary.Image(height=20, width=30, colorspace=4,
                                          encoded_image_string=png)  # fmt: skip
        summary.value.add(tag=name, image=image)
    want = event_pb2.Event(wall_time=123.25, step=step, summary=summary).SerializeToString()
    assert b"".join(parts) == want
    assert any(part is png for part in parts for png in pngs)  # referenced, not copied
