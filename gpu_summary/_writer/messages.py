"""The kinds with no reduction: ``add_text``, ``add_summary`` (a ready-made Summary written as
one event) and ``add_hparams``."""

from __future__ import annotations

import time

from gpu_summary import hparams as hp
from gpu_summary._core import arguments
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import hparams as hparams_summaries
from gpu_summary.summaries.text import text_summary


def log_summary(
    state: WriterState, summary: object, step: int | None = None, walltime: float | None = None
) -> None:
    """SummaryWriter.add_summary, on a writer's state."""
    if not isinstance(summary, summary_pb2.Summary):
        summary = summary_pb2.Summary.FromString(
            arguments.message_bytes(summary, "Summary", "summary")
        )
    if not summary.value:
        raise ValueError("summary holds no values; add at least one Summary.Value")
    for value in summary.value:
        arguments.check_tag(value.tag, "summary value tag")
    tag, step, wall = state.begin(summary.value[0].tag, step, walltime)
    step = state.resolve_step(tag, step)
    for value in summary.value[1:]:
        state.steps[value.tag] = step
    if not state.writes_files:
        return  # rank 0's summaries only
    state.events.add(jobs.ready_summary(summary, step, wall))
    starts = hparams_summaries.SESSION_START_INFO_TAG
    if not state.session.started and any(value.tag == starts for value in summary.value):
        state.session.end_at_close("success")


def log_text(
    state: WriterState, tag: object, text_string: object, step: object, walltime: object
) -> None:
    """SummaryWriter.add_text, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
    strings, scalar = arguments.check_text(text_string)
    state.enqueue("text", tag, step, wall, lambda: text_summary(tag, strings, scalar))


def log_hparams(
    state: WriterState, hparams: object, metrics: object, walltime: object
) -> hp.Session:
    """SummaryWriter.add_hparams up to the metrics' values, which the caller logs as scalars:
    the experiment and session start written once per run, the session's end at close."""
    state.events.check_open()
    session = hp.session(hparams, metrics)
    wall = time.time() if walltime is None else arguments.check_walltime(walltime)
    if state.session.open(session):
        experiment = hparams_summaries.experiment_summary
        start = hparams_summaries.session_start_summary
        state.enqueue("hparams", hparams_summaries.EXPERIMENT_TAG, 0, wall,
                      lambda: experiment(session, wall))  # fmt: skip
        state.enqueue("hparams", hparams_summaries.SESSION_START_INFO_TAG, 0, wall,
                      lambda: start(session, wall))  # fmt: skip
        state.session.end_at_close("success")
    return session
