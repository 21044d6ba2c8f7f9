"""The jobs a SummaryWriter queues, and where their Events are assembled; a kind moved to
``gpu_summary.kinds`` keeps its own jobs there (``kinds.anomaly``: the ``on_anomaly`` call back;
``kinds.image``: the images' record, from its parts; ``kinds.graph``: the GraphDef's Event;
``kinds.hparams``: the events of a run of its own, written whole by the caller).

Each function returns a :class:`~gpu_summary._events.jobs.Job` for the writer thread; nothing
here waits for a device on the caller's thread: pending results are read when the job is built.
A job whose pending result failed to merge across ranks (``AggregationFailed``) writes nothing:
that failure reaches the caller from its next call. Scalar Events are assembled as bytes, for
speed, by ``gpu_summary._events.wire``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gpu_summary._core.anomaly import AnomalyReport, nonfinite_report
from gpu_summary._core.results import HistogramResult, Pending
from gpu_summary._events.jobs import Job, JobKind
from gpu_summary._events.wire import scalar_event, scalar_events, summary_event
from gpu_summary.distributed import AggregationFailed
from gpu_summary.proto import event_pb2, summary_pb2
from gpu_summary.summaries import hparams as hparams_summaries
from gpu_summary.summaries.scalar import scalar_tensor_summary


def _pending_scalar_event(
    tag: str, pending: Pending[float], step: int, wall_time: float
) -> bytes | None:
    try:
        value = pending.result()
    except AggregationFailed:
        return None
    return scalar_event(tag, value, step, wall_time)


def _pending_tensor_scalar_event(
    tag: str, pending: Pending[float], step: int, wall_time: float, double_precision: bool
) -> event_pb2.Event | None:
    try:
        value = pending.result()
    except AggregationFailed:
        return None
    summary = scalar_tensor_summary(tag, value, double_precision)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def _session_start_event(step: int) -> event_pb2.Event:
    event = event_pb2.Event(wall_time=time.time(), step=step)
    event.session_log.status = event_pb2.SessionLog.START
    return event


def _summary_event(
    wall_time: float, step: int, build: Callable[[], summary_pb2.Summary | bytes | None]
) -> event_pb2.Event | bytes | None:
    try:
        summary = build()
    except AggregationFailed:
        return None
    if summary is None:  # the job found its data unusable, said so, and writes nothing
        return None
    if isinstance(summary, bytes):  # serialized already (histograms: ``summaries.histogram``)
        return summary_event(summary, step, wall_time)
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def _session_end_event(status: str) -> event_pb2.Event:
    now = time.time()
    summary = hparams_summaries.session_end_summary(status, now)
    return event_pb2.Event(wall_time=now, step=0, summary=summary)


def _serialized(data: bytes) -> bytes:
    return data


def _call_back_nonfinite(
    tags: list[str],
    histograms: Pending[list[HistogramResult]],
    step: int,
    callback: Callable[[AnomalyReport], object],
) -> None:
    try:
        merged = histograms.result()
    except AggregationFailed:
        return
    found = nonfinite_report(tags, [h.stats for h in merged], step)
    if found is not None:
        callback(found)


def _act(action: Callable[[], None]) -> None:
    action()


# Scalars known on the host: SummaryWriter.add_scalar queues Job(SCALAR, (tag, value, step,
# wall_time)) itself, its hot path.
SCALAR = JobKind("scalar", scalar_event, scalar_events)
_PENDING_SCALAR = JobKind("scalar", _pending_scalar_event)
_TENSOR_SCALAR = JobKind("scalar", _pending_tensor_scalar_event)
_SESSION_START = JobKind("session start", _session_start_event)
_SUMMARY = JobKind("summary", _summary_event)
_SESSION_END = JobKind("hparams session end", _session_end_event)
_SERIALIZED = JobKind("event", _serialized)
_NONFINITE_CALL_BACK = JobKind("on_anomaly call back", _call_back_nonfinite)
_CALL_BACK = JobKind("on_anomaly call back", _act)


def scalar(tag: str, value: float, step: int, wall_time: float) -> Job:
    """One scalar known on the host (the hot path: no message is built on the caller's
    thread)."""
    return Job(SCALAR, (tag, value, step, wall_time))


def pending_scalar(tag: str, pending: Pending[float], step: int, wall_time: float) -> Job:
    """One scalar read from a backend (or a merge across ranks) on the writer thread."""
    return Job(_PENDING_SCALAR, (tag, pending, step, wall_time))


def pending_tensor_scalar(
    tag: str, pending: Pending[float], step: int, wall_time: float, double_precision: bool
) -> Job:
    """One scalar as torch's ``new_style``: a tensor summary of the scalars plugin."""
    return Job(_TENSOR_SCALAR, (tag, pending, step, wall_time, double_precision))


def session_start(step: int) -> Job:
    """``SessionLog(START)`` at ``step``: TensorBoard discards what the run logged after
    ``step`` before it (``purge_step``: a restart from a checkpoint)."""
    return Job(_SESSION_START, (step,), 0, f"session start at step {step}")


def ready_event(data: bytes, description: str) -> Job:
    """An Event serialised by the caller (``FileWriter.add_event``)."""
    return Job(_SERIALIZED, (data,), len(data), description)


def summary(
    what: str,
    tag: str,
    step: int,
    wall_time: float,
    build: Callable[[], summary_pb2.Summary | bytes | None],
    nbytes: int = 0,
) -> Job:
    """An Event of the Summary ``build()`` makes on the writer thread (serialized or not; None:
    nothing);
    ``what`` (``"image"``, ...) and ``tag`` name it in errors; ``nbytes``: memory its pending
    results hold."""
    return Job(_SUMMARY, (wall_time, step, build), nbytes, f"{what} {tag!r} at step {step}")


def ready_summary(message: summary_pb2.Summary, step: int, wall_time: float) -> Job:
    """An Event of a Summary the caller made, serialised now (a bad message fails here)."""
    data = event_pb2.Event(wall_time=wall_time, step=step, summary=message).SerializeToString()
    return Job(_SERIALIZED, (data,), len(data), f"summary at step {step}")


def session_end(status: str) -> Job:
    """The hparams ``session_end_info`` Event, stamped when the file closes."""
    return Job(_SESSION_END, (status,))


def nonfinite_call_back(
    tags: list[str],
    histograms: Pending[list[HistogramResult]],
    step: int,
    callback: Callable[[AnomalyReport], object],
) -> Job:
    """``callback(report)`` when any of ``add_histograms``' tensors held NaN/±Inf."""
    return Job(_NONFINITE_CALL_BACK, (tags, histograms, step, callback), 0,
               f"on_anomaly for the histograms at step {step}")  # fmt: skip


def call_back(action: Callable[[], None], description: str) -> Job:
    """``action()`` on the writer thread after the jobs queued before it (a report to
    ``on_anomaly``); writes nothing."""
    return Job(_CALL_BACK, (action,), 0, description)
