"""The hparams session of one run: the first ``add_hparams`` (or a Summary holding
``session_start_info``) opens it, later calls must agree with it, and the file's last record
ends it (success, or failure when the writer's ``with`` block raised). A writer reopened after
``close()`` (a new file) starts with no session."""

from __future__ import annotations

import threading

from gpu_summary import hparams as hp
from gpu_summary._events.writer import EventFileWriter, NullEventWriter
from gpu_summary._writer import jobs


class RunSession:
    """The hparams session of a writer's run. Thread-safe."""

    def __init__(self, events: EventFileWriter | NullEventWriter) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._hparams: hp.Session | None = None
        self._started = False  # a session_start_info was written
        self._generation = events.generation  # of the file the session is in

    def _forget_ended(self) -> None:
        """A session of a file since closed has ended: none is open in the new file."""
        if self._events.generation != self._generation:
            self._hparams, self._started = None, False
            self._generation = self._events.generation

    @property
    def started(self) -> bool:
        """Whether a ``session_start_info`` is in the current file."""
        with self._lock:
            self._forget_ended()
            return self._started

    def open(self, session: hp.Session) -> bool:
        """Whether ``session`` is the run's first; else check it agrees with the first.

        Raises:
            ValueError: other hparams values, or a metric the first call did not declare.
        """
        with self._lock:
            self._forget_ended()
            if self._hparams is None:
                self._hparams = session
                self._generation = self._events.generation
                return True
            known = self._hparams
        if session.values() != known.values():
            raise ValueError(
                f"this run already holds hparams {known.values()!r}; a run is one session, so "
                f"log {session.values()!r} with a new SummaryWriter in its own logdir"
            )
        declared = {metric.name for metric, _ in known.metrics}
        new = [metric.name for metric, _ in session.metrics if metric.name not in declared]
        if new:
            raise ValueError(
                f"metrics {new!r} were not declared by this run's first add_hparams call; "
                "declare every metric the first time (a value of None declares it)"
            )
        return False

    def ended_by_caller(self) -> None:
        """The caller wrote the session's end itself (torch's ``hparams()`` protos through
        ``add_summary``, as Lightning logs them): the file gets no second one of ours."""
        self._events.at_close("hparams", None)

    def end_at_close(self, status: str) -> None:
        """Have the file's last record end the session with ``status``."""
        self._events.check_open()
        with self._lock:
            self._forget_ended()
            self._started = True
        self._events.at_close("hparams", jobs.session_end(status))
