"""gpu_summary._writer.jobs: the one place Events are built — scalars in bulk, jobs name
themselves in errors, and a failed merge writes nothing (the bytes: test_wire.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_summary._core.results import Ready
from gpu_summary._events.wire import scalar_event, scalar_events
from gpu_summary._writer import jobs
from gpu_summary.distributed import AggregationFailed, Merged
from gpu_summary.kinds.graph import graph_job
from gpu_summary.proto import event_pb2, summary_pb2
from gpu_summary.summaries.scalar import scalar_summary


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
    graph = event_pb2.Event.FromString(graph_job(b"\x0a\x00", 2.0).build())
    assert (graph.step, graph.graph_def) == (0, b"\x0a\x00")


def test_session_end_is_stamped_when_built():
    event = jobs.session_end("failure").build()
    assert event.step == 0 and event.wall_time > 0
    assert event.summary.value[0].tag == "_hparams_/session_end_info"
    assert not math.isnan(event.wall_time) and np.isfinite(event.wall_time)
