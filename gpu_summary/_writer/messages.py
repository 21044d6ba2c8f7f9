"""The kinds with no reduction: ``add_text``, ``add_summary`` (a ready-made Summary written as
one event) and ``add_hparams``."""

from __future__ import annotations

import os
import time

from gpu_summary import hparams as hp
from gpu_summary._core import arguments
from gpu_summary._events.event_file import write_event_file
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
    tags = {value.tag for value in summary.value}
    if not state.session.started and hparams_summaries.SESSION_START_INFO_TAG in tags:
        state.session.end_at_close("success")
    if hparams_summaries.SESSION_END_INFO_TAG in tags:
        state.session.ended_by_caller()


def log_text(
    state: WriterState, tag: object, text_string: object, step: object, walltime: object
) -> None:
    """SummaryWriter.add_text, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
    strings, _ = arguments.check_text(text_string)
    nbytes = sum(len(string) for string in strings)  # held until written (max_queue_bytes)
    # torch's and tensorboardX's tag and shape (a str is a vector of one): the same card
    shown = tag + "/text_summary"
    state.enqueue("text", tag, step, wall, lambda: text_summary(shown, strings, False), nbytes)


def log_hparams(
    state: WriterState,
    hparam_dict: object,
    metric_dict: object,
    hparam_domain_discrete: object,
    run_name: object,
    step: object,
    walltime: object,
) -> hp.Session | None:
    """SummaryWriter.add_hparams. With ``run_name="."`` the session is the writer's own run's
    (written once; later calls must agree; ended at close) and the caller logs the metric
    values returned; otherwise a run of its own below the writer's, written whole before the
    call returns (None)."""
    state.events.check_open()
    run = arguments.check_run_name(run_name)
    session = hp.torch_session(hparam_dict, metric_dict, hparam_domain_discrete)
    step, walltime = state.defaults(step, walltime)
    step = 0 if step is None else arguments.check_step(step)
    wall = time.time() if walltime is None else arguments.check_walltime(walltime)
    if run == os.curdir:
        if state.session.open(session):
            experiment = hparams_summaries.experiment_summary
            start = hparams_summaries.session_start_summary
            state.enqueue("hparams", hparams_summaries.EXPERIMENT_TAG, step, wall,
                          lambda: experiment(session, wall))  # fmt: skip
            state.enqueue("hparams", hparams_summaries.SESSION_START_INFO_TAG, step, wall,
                          lambda: start(session, wall))  # fmt: skip
            state.session.end_at_close("success")
        return session
    declared = [metric.name for metric, value in session.metrics if value is None]
    if declared:
        raise ValueError(
            f"metrics {declared!r} have no value: a run of its own is written whole, so give "
            "each metric its value, or log the hparams into this writer's run with "
            "run_name='.' (then None declares a metric you log with add_scalar)"
        )
    if run is not None:  # a name that cannot be a folder is refused before anything is made
        arguments.check_folder(state.logdir, run, f"run_name {run_name!r:.60}", state.writes_files)
    if state.writes_files:
        # Written here, whole, before the call returns (as torch's writer closes the run's
        # own writer before it returns): the run is on disk for whoever reads or moves it next.
        events = jobs.hparams_run_events(session, step, wall)
        write_event_file(state.hparams_folder(run), events)
    return None
