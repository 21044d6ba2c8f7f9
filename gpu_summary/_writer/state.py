"""What one SummaryWriter holds, and the path every ``add_*`` call shares.

:class:`WriterState` owns the event file (none on ranks other than 0), the last step of each
tag, the merge across ranks, the hparams session, the Projector's files and the GPU monitors.
``begin`` checks the arguments every call has, ``resolve_step`` fills in a missing step, and
``enqueue`` queues a Summary built on the writer thread.
"""

from __future__ import annotations

import atexit
import datetime
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from gpu_summary import distributed as _distributed
from gpu_summary._core import arguments
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._distributed.exchange import Exchange
from gpu_summary._embedding.files import ProjectorFiles
from gpu_summary._events.jobs import Job
from gpu_summary._events.writer import (
    EventFileWriter,
    NullEventWriter,
    WriterError,
    at_multiprocessing_exit,
    close_at_exit,
)
from gpu_summary._writer import jobs, step_windows
from gpu_summary._writer.aggregation import Aggregation
from gpu_summary._writer.probes import Probes
from gpu_summary._writer.session import RunSession
from gpu_summary._writer.step_windows import Windows
from gpu_summary.proto import summary_pb2


@runtime_checkable
class Stoppable(Protocol):
    """What a writer holds of a background sampler (``gs.GpuMonitor``): it is stopped when
    the writer closes."""

    def stop(self) -> None: ...


# Distributed writers not closed yet: closed at exit (their ranks' last steps merged, or an
# error within the writer's timeout), before the event files close. Held strongly: a dropped
# distributed writer is closed at exit, never from a garbage collection on some thread.
_distributed_open: dict[WriterState, None] = {}  # in creation order: the ranks close alike
_exit_hook_registered = False


def _close_at_exit(state: WriterState) -> None:
    global _exit_hook_registered
    _distributed_open[state] = None
    if not _exit_hook_registered:  # after the communicator's library (MPI finalises at exit)
        _exit_hook_registered = True
        atexit.register(_close_distributed_at_exit)
    at_multiprocessing_exit(_close_distributed_at_exit, 1)  # before the event files (0)


def _close_distributed_at_exit() -> None:
    close_at_exit(list(_distributed_open), "a distributed writer")


def default_logdir() -> str:
    """``runs/<Mon><DD>_<HH>-<MM>-<SS>_<host>``, as torch's SummaryWriter names a run."""
    stamp = datetime.datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{stamp}_{socket.gethostname()}")


class WriterState:
    """One writer's files, steps and collaborators (arguments already checked).

    Thread safety: every method may be called from several threads.
    """

    def __init__(
        self,
        logdir: str,
        flush_secs: float,
        max_queue: int,
        filename_suffix: str,
        max_queue_bytes: int,
        on_anomaly: Callable[[AnomalyReport], object] | None,
        distributed: object,
        write_to_disk: bool = True,
        purge_step: int | None = None,
        timeout: float = _distributed.DEFAULT_TIMEOUT,
        count_steps: bool | None = None,
    ) -> None:
        self.logdir = logdir
        self.on_anomaly = on_anomaly
        self.aggregation: Aggregation | None = None
        if distributed is not None:
            collective = _distributed.connect(distributed, timeout)
            self.aggregation = Aggregation(Exchange(collective))
            _close_at_exit(self)
        self.rank = 0 if self.aggregation is None else self.aggregation.rank
        # Rank 0 writes (others only take part in the merges); write_to_disk=False: nobody.
        self.writes_files = self.rank == 0 and bool(write_to_disk)
        # Logging after close() reopens (a new file), as torch's writer does; not a
        # distributed writer: its collectives end at close.
        reopens = self.aggregation is None
        self._file_options = {"flush_secs": flush_secs, "max_queue": max_queue,
                              "max_queue_bytes": max_queue_bytes,
                              "filename_suffix": filename_suffix, "reopens": reopens}  # fmt: skip
        self.subruns: dict[str, EventFileWriter] = {}  # add_scalars' runs, by folder
        # add_scalars' values since the last export_scalars_to_json: {key: [(wall, step,
        # pending value)]}
        self.exported_scalars: dict[str, list[tuple[float, int, object]]] = {}
        self.events: EventFileWriter | NullEventWriter
        if self.writes_files:
            self.events = EventFileWriter(
                logdir,
                flush_secs=flush_secs,
                max_queue=max_queue,
                max_queue_bytes=max_queue_bytes,
                filename_suffix=filename_suffix,
                reopens=reopens,
            )
            if purge_step is not None:  # TensorBoard drops what an earlier run logged past it
                self.events.add(jobs.session_start(purge_step))
        else:
            self.events = NullEventWriter(reopens)
        self.steps: dict[str, int] = {}
        self.steps_lock = threading.Lock()
        # A call without a step: step 0, as torch's writer (count_steps=True: one more than
        # its tag's last). A distributed writer counts by default: its steps delimit its
        # collectives, so calls that all sat at step 0 would never be merged before close().
        self.count_steps = self.aggregation is not None if count_steps is None else count_steps
        self.probes = Probes()  # writer.probe: the probes made, by tag
        self.windows = Windows()  # window=K: the open windows, the size of each windowed tag
        self.session = RunSession(self.events)
        self.hparams_runs: set[str] = set()  # add_hparams' run folders so far
        # add_custom_scalars' layout so far ({category: {chart: (kind, tags)}}), and how
        # many times it was written (its step: the dashboard shows the latest)
        self.custom_layout: dict[str, dict[str, tuple[str, list[str]]]] = {}
        self.custom_layout_writes = 0
        # (global_step, walltime) defaults of a use_metadata block, or None outside one
        self.metadata: tuple[int | None, float | None] | None = None
        self.projector = ProjectorFiles(logdir)
        self.monitors: list[Stoppable] = []
        self._deferred: list[BaseException] = []  # see add_merged

    def check_open(self) -> None:
        """Raise ValueError if the writer is closed, or an earlier merge's error."""
        self.events.check_open()
        self._raise_deferred()
        if self.aggregation is not None:
            self.aggregation.exchange.raise_error()

    def begin(self, tag: object, step: object, walltime: object) -> tuple[str, int | None, float]:
        """The checks every ``add_*`` makes first: (tag, step or None, wall time)."""
        self.check_open()
        tag = arguments.check_tag(tag)
        step, walltime = self.defaults(step, walltime)
        checked_step = None if step is None else arguments.check_step(step)
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        return tag, checked_step, wall

    def defaults(self, step: object, walltime: object) -> tuple[object, object]:
        """``step`` and ``walltime``, each the ``use_metadata`` block's default when None."""
        metadata = self.metadata
        if metadata is None:
            return step, walltime
        return (metadata[0] if step is None else step,
                metadata[1] if walltime is None else walltime)  # fmt: skip

    def resolve_step(self, tag: str, step: int | None) -> int:
        """``step``, or for None 0 (torch's), or with ``count_steps`` one more than ``tag``'s
        last (0 the first time); remembered."""
        if step is None and not self.count_steps:
            step = 0
        if step is None:
            with self.steps_lock:
                step = self.steps.get(tag, -1) + 1
                self.steps[tag] = step
        else:
            self.steps[tag] = step  # a single dict store is atomic
        return step

    def enqueue(
        self,
        kind: str,
        tag: str,
        step: int | None,
        wall: float,
        build: Callable[[], summary_pb2.Summary | bytes],
        nbytes: int = 0,
    ) -> None:
        """Queue the Summary ``build()`` makes on the writer thread, at ``step`` (resolved)."""
        step = self.resolve_step(tag, step)
        self.events.add(jobs.summary(kind, tag, step, wall, build, nbytes))

    def add_merged(self, job: Job, events: EventFileWriter | None = None) -> None:
        """Queue ``job``, which waits for a merge across ranks, on ``events`` (default: this
        writer's file): with ``distributed``, once its step's batch is sealed, so that the
        writer thread never waits for a merge that only a later call could start."""
        target = self.events if events is None else events
        if self.aggregation is None:
            target.add(job)
            return

        def release() -> None:  # on the caller's thread, when the step's batch is sealed
            try:
                target.add(job)
            except (OSError, WriterError) as exc:  # the file's earlier failure, raised once:
                self._deferred.append(exc)  # for the caller's next call; this job still goes
                target.add(job)

        self.aggregation.exchange.hold(release)

    def _raise_deferred(self) -> None:
        """Raise (once) an earlier failure of the file that a held job's release met."""
        if self._deferred:
            error = self._deferred.pop(0)
            self._deferred.clear()
            raise error

    def enqueue_merged(
        self,
        kind: str,
        tag: str,
        step: int,
        wall: float,
        build: Callable[[], summary_pb2.Summary | bytes],
        nbytes: int = 0,
    ) -> None:
        """:meth:`enqueue` for a Summary whose results are merged across ranks (step
        resolved)."""
        self.add_merged(jobs.summary(kind, tag, step, wall, build, nbytes))

    def hparams_folder(self, run: str | None) -> str:
        """The folder of an ``add_hparams`` run below this writer's: ``run``, or (None) a new
        name from the clock, as torch names it, never one this writer used before."""
        with self.steps_lock:
            if run is None:
                run = base = repr(time.time())
                count = 0
                while run in self.hparams_runs:
                    count += 1
                    run = f"{base}_{count}"
            self.hparams_runs.add(run)
        return os.path.join(self.logdir, run)

    def add_monitor(self, monitor: Stoppable) -> None:
        """Stop ``monitor`` when the writer closes."""
        self.events.check_open()
        self.monitors.append(monitor)

    def add_sample(self, tag: str, value: float, step: int, wall: float) -> None:
        """A scalar from a background sampler: no collective, only rank 0 writes it."""
        self.events.add(jobs.scalar(tag, value, step, wall))

    def subrun(self, folder: str) -> EventFileWriter:
        """The event file of ``add_scalars``' run in ``folder`` (made on first use, with this
        writer's options; flushed and closed with it)."""
        with self.steps_lock:
            events = self.subruns.get(folder)
            if events is None:
                events = self.subruns[folder] = EventFileWriter(folder, **self._file_options)
        return events

    def flush(self, fsync: bool) -> None:
        """Every collective queued so far run (this rank), then the files flushed."""
        if self.aggregation is None:
            step_windows.flush(self)  # the windows still open: their steps so far, one record each
        else:  # the steps sealed so far (windows stay open: the other ranks' may not end here)
            self.aggregation.exchange.wait()
            self._raise_deferred()
            self.aggregation.exchange.raise_error()
        self.events.flush(fsync)
        for events in list(self.subruns.values()):
            events.flush(fsync)

    def close(self) -> None:
        """Stop the monitors, end the collectives, close the file. Idempotent."""
        for monitor in self.monitors:
            monitor.stop()
        self.monitors.clear()
        aggregation = self.aggregation
        try:
            if not self.events.closed:
                step_windows.flush(self)
        finally:
            try:
                if aggregation is not None and not self.events.closed:
                    aggregation.exchange.close()  # every rank's last steps merged, or the error
            finally:
                _distributed_open.pop(self, None)
                self.events.close()
                for events in list(self.subruns.values()):
                    events.close()
        self._raise_deferred()
        if aggregation is not None:
            aggregation.exchange.raise_error()

    def fail_session(self) -> None:
        """A ``with`` block raised: an open hparams session ends with status failure."""
        if self.session.started and not self.events.closed:
            self.session.end_at_close("failure")
