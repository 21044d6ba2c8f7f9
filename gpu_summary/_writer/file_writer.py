"""``SummaryWriter.file_writer`` (and ``_get_file_writer()``): torch's and tensorboardX's
``FileWriter`` methods on the writer's own event file, through its writer thread.

Clients that build their own messages use it: Lightning's ``TensorBoardLogger`` writes its
hparams Summaries with ``_get_file_writer().add_summary(...)``. Messages of any protobuf
package are taken by their wire format (TensorBoard's, tensorboardX's, torch's), which is the
same as ours. A ready-made Summary is written by :func:`write_summary`, for this ``add_summary``
and ``SummaryWriter.add_summary`` (``gpu_summary.kinds.message``) alike.
"""

from __future__ import annotations

import time

from gpu_summary._core import arguments
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import event_pb2, summary_pb2
from gpu_summary.summaries import hparams as hparams_summaries


def write_summary(
    state: WriterState, summary: object, step: int | None = None, walltime: float | None = None
) -> None:
    """A ready-made ``Summary`` as one event, at ``step`` (None: its first tag's, resolved) —
    ``add_summary`` of the writer and of its file writer. Every value's tag takes that step; a
    Summary holding the hparams plugin's ``session_start_info`` opens the run's session (ended
    at close), one holding ``session_end_info`` ends it (no second end of ours).

    Raises:
        TypeError: not a Summary. ValueError: no values, or a value with an empty tag.
    """
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


class FileWriter:
    """Torch's ``FileWriter`` interface on a SummaryWriter's event file. Thread-safe."""

    def __init__(self, state: WriterState) -> None:
        self._state = state

    def get_logdir(self) -> str:
        """The directory of the event file."""
        return self._state.logdir

    def add_event(
        self, event: object, step: int | None = None, walltime: float | None = None
    ) -> None:
        """Write an ``Event`` message as it is, with ``step`` and ``walltime`` (default now)
        set on it as torch does.

        Raises:
            TypeError: not an Event message. ValueError: the writer is closed.
        """
        self._state.check_open()
        parsed = event_pb2.Event.FromString(arguments.message_bytes(event, "Event", "event"))
        step, walltime = self._state.defaults(step, walltime)
        parsed.wall_time = time.time() if walltime is None else arguments.check_walltime(walltime)
        if step is not None:
            parsed.step = arguments.check_step(step)
        if not self._state.writes_files:
            return
        what = parsed.WhichOneof("what") or "event"
        self._state.events.add(
            jobs.ready_event(parsed.SerializeToString(), f"{what} at step {parsed.step}")
        )

    def add_summary(
        self, summary: object, global_step: int | None = None, walltime: float | None = None
    ) -> None:
        """Write a ``Summary`` message as one event (``SummaryWriter.add_summary``)."""
        write_summary(self._state, summary, global_step, walltime)

    def add_graph(self, graph_profile: object, walltime: float | None = None) -> None:
        """Write a ``GraphDef`` message — or torch's ``(GraphDef, RunMetadata)`` pair, the
        run metadata then tagged ``step1`` as torch writes it — for the Graphs dashboard."""
        if isinstance(graph_profile, (tuple, list)) and len(graph_profile) == 2:
            graph_def, run_metadata = graph_profile
        else:
            graph_def, run_metadata = graph_profile, None
        event = event_pb2.Event(
            graph_def=arguments.message_bytes(graph_def, "GraphDef", "graph_profile")
        )
        self.add_event(event, None, walltime)
        if run_metadata is not None:
            tagged = event_pb2.TaggedRunMetadata(
                tag="step1",
                run_metadata=arguments.message_bytes(run_metadata, "RunMetadata", "graph"),
            )
            self.add_event(event_pb2.Event(tagged_run_metadata=tagged), None, walltime)

    def flush(self) -> None:
        """Block until everything logged so far is in the file (``SummaryWriter.flush``)."""
        self._state.flush(False)

    def close(self) -> None:
        """Close the writer's event file (``SummaryWriter.close``)."""
        self._state.close()

    def reopen(self) -> None:
        """Torch's ``reopen``: after ``close``, a new event file in the same folder; nothing
        while the file is open."""
        self._state.check_open()
