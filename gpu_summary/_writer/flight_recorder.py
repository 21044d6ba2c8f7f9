"""``gs.watch(..., flight_recorder=K)``: the last K steps of every watched tensor's statistics,
kept where the tensors live, and a table of them when a tensor first holds NaN or ±Inf.

The training thread (:meth:`FlightRecorder.record`, from the watch's hooks) hands each step's
tensors to their backend's ``flight_add``, one ring per backend and device
(``gpu_summary._core.flight`` holds its layout): on the host the NumPy backend's reductions,
on a device one launch per dtype into the ring and a copy of one word back, never waited for
there. A check for the writer thread is queued whenever none is waiting (at most one in the
queue, so a device that lags never fills it); the check reads each ring's latest word: its
first step holding NaN or ±Inf. The ring itself stops at the end of that step, so its K steps
up to it stay put however late the host looks.

Once the writer thread has seen such a step, the training thread's first call after the step
ended (or :meth:`FlightRecorder.stop`: the writer's close, or ``unwatch``) queues one copy of
each ring and the table job; the writer thread builds the table (text under
``flight_recorder``, at the offending step) and reports to ``on_anomaly``. A recorder logs one
table, for its first NaN/±Inf, and then records nothing more. Its own failures are warnings,
never exceptions into the training loop.
"""

from __future__ import annotations

import numbers
import threading
import time
import warnings

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import flight
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.results import Pending
from gpu_summary._events.jobs import Job, JobKind
from gpu_summary._writer import jobs
from gpu_summary._writer.flight_table import flight_summary, flight_table
from gpu_summary._writer.state import WriterState

TAG = "flight_recorder"


def check_slots(value: object) -> int:
    """``flight_recorder``: None (off) or the steps to keep, an int in [1, MAX_SLOTS]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"flight_recorder must be None (off) or an int number of steps to keep, "
                        f"got {type(value).__name__}: {value!r}")  # fmt: skip
    if not 1 <= value <= flight.MAX_SLOTS:
        raise ValueError(f"flight_recorder must be between 1 and {flight.MAX_SLOTS} steps, got "
                         f"{value}; e.g. flight_recorder=8 keeps the last 8 steps")  # fmt: skip
    return int(value)


class _Once(Pending):
    """A pending result read by whichever thread asks first (the writer thread's check, or
    :meth:`FlightRecorder.stop`), once."""

    def __init__(self, pending: Pending) -> None:
        self._pending, self._lock, self._value = pending, threading.Lock(), None

    def result(self) -> object:
        with self._lock:
            if self._pending is not None:
                self._value, self._pending = self._pending.result(), None
            return self._value


def _run(action: object) -> None:
    action()


_CHECK = JobKind("flight recorder", _run)


class FlightRecorder:
    """The rings of one watch, and what the writer thread learned of them.

    Args:
        state: the writer's state.
        slots: the steps each ring keeps (K).
        tags: every watched tensor's tag; a tensor's column is its index here.
        ending: which of ``record``'s phases ends a step (``"gradients"`` when the watch logs
            them: a step's parameters come before its gradients).

    Thread safety: ``record`` and ``stop`` may be called from any threads; the checks run on
    the writer thread.
    """

    def __init__(self, state: WriterState, slots: int, tags: list[str], ending: str) -> None:
        self.state, self.slots, self.tags, self.ending = state, slots, tags, ending
        self._rings: dict[tuple[str, int | None], tuple[object, object]] = {}
        self._last: dict[tuple[str, int | None], Pending] = {}  # each ring's latest word
        self._last_lock = threading.Lock()  # never held while queueing: the writer takes it
        self._check_queued = False  # a check waits in the writer's queue
        self._lock = threading.Lock()
        self.detected: int | None = None  # the first step holding NaN/±Inf (writer thread)
        self.finished = False  # the table is queued, or the recorder gave up
        state.add_monitor(self)  # stop() at the writer's close: a NaN of the last step logged

    def record(self, phase: str, step: int, entries: list[tuple[int, int, object]]) -> None:
        """Record one step's tensors of one phase (``"parameters"`` or ``"gradients"``):
        ``(column, order, tensor)`` each, ``order`` its place in the order the step produced
        the tensors. No sync: on a device, launches and one asynchronous copy of a word."""
        if self.finished:
            return
        try:
            with self._lock:
                if self.finished:
                    return
                detected = self.detected
                if detected is not None and step > detected:
                    self._finish()
                    return
                self._add(step, entries, check=detected is None)
                if detected is not None and step == detected and phase == self.ending:
                    self._finish()
        except Exception as exc:  # noqa: BLE001 - the recorder must not stop the training
            self._give_up(exc)

    def _add(self, step: int, entries: list[tuple[int, int, object]], check: bool) -> None:
        groups: dict[tuple[str, int | None], tuple[object, list, list, list]] = {}
        for column, order, tensor in entries:
            backend, array = backend_for(tensor, self.tags[column])
            key = (backend.__name__, getattr(array, "device_id", None))
            group = groups.get(key)
            if group is None:
                group = groups[key] = (backend, [], [], [])
            group[1].append(array)
            group[2].append(column)
            group[3].append(order)
        for key, (backend, arrays, columns, orders) in groups.items():
            known = self._rings.get(key)
            if known is None:
                known = self._rings[key] = (backend, backend.flight_open(self.slots,
                                                                         len(self.tags),
                                                                         arrays[0]))  # fmt: skip
            pending = _Once(backend.flight_add(known[1], arrays, columns, orders, step))
            with self._last_lock:
                self._last[key] = pending
        if check and not self._check_queued:
            self._check_queued = True
            self.state.events.add(Job(_CHECK, (self._check,), 0, "flight recorder check"))

    def _first_bad(self) -> int | None:
        """The first step holding NaN/±Inf in any ring, from each ring's latest word (waits
        for it)."""
        with self._last_lock:
            latest = list(self._last.values())
        bad = [b for p in latest if (b := flight.first_bad(p.result())) is not None]
        return min(bad) if bad else None

    def _check(self) -> None:
        """On the writer thread: note the rings' first step holding NaN/±Inf."""
        self._check_queued = False  # first: a step recorded from now on queues the next check
        if self.detected is not None or self.finished:
            return
        try:
            bad = self._first_bad()
        except Exception as exc:  # noqa: BLE001 - a failure here must not fail the writer
            self._give_up(exc)
            return
        if bad is not None:
            self.detected = bad  # one store: read by the training thread without a lock

    def stop(self) -> None:
        """The writer closes (or the watch is removed): log the table if a recorded step held
        NaN/±Inf, whether or not the writer thread has seen it yet (waits for the last step's
        copies of one word per ring), then record nothing more."""
        if self.finished:
            return
        try:
            with self._lock:
                if self.finished:
                    return
                if self.detected is None:
                    self.detected = self._first_bad()
                if self.detected is None:
                    self.finished = True
                else:
                    self._finish()
        except Exception as exc:  # noqa: BLE001 - closing the writer must go on
            self._give_up(exc)

    def detach(self) -> None:
        """:meth:`stop`, and let go of the writer (``unwatch``)."""
        self.stop()
        try:
            self.state.monitors.remove(self)
        except ValueError:  # the writer closed, and let go of it first
            pass

    def _finish(self) -> None:
        """Queue one copy of every ring and the table (the lock held)."""
        self.finished = True
        step = self.detected
        copies = [backend.flight_result(ring) for backend, ring in self._rings.values()]
        built: list = []

        def parts() -> tuple[str, AnomalyReport] | None:
            if not built:
                built.append(self._table(step, copies))
            return built[0]

        def build() -> object:
            try:
                found = parts()
            except Exception as exc:  # noqa: BLE001 - warned, never raised into the training
                self._give_up(exc)
                return None
            return None if found is None else flight_summary(TAG, found[0])

        state = self.state
        state.events.add(jobs.summary("flight recorder table", TAG, step, time.time(), build))
        callback = state.on_anomaly
        if callback is not None:

            def report() -> None:
                if built and built[0] is not None:  # the table job ran before, and found one
                    callback(built[0][1])

            state.events.add(jobs.call_back(report, f"on_anomaly for the {TAG} at step {step}"))

    def _table(self, step: int, copies: list[Pending]) -> tuple[str, AnomalyReport] | None:
        """On the writer thread: the table's Markdown and the report, from the rings' copies."""
        rings = [flight.FlightRecords(copy.result(), self.slots, len(self.tags))
                 for copy in copies]  # fmt: skip
        steps = range(max(0, step - self.slots + 1), step + 1)

        def at(s: int, column: int) -> flight.FlightStats | None:
            return next((found for ring in rings if (found := ring.at(s, column))), None)

        rows, ordered = [], []
        for column, tag in enumerate(self.tags):
            per_step = [(s, at(s, column)) for s in steps]
            if any(found is not None for _, found in per_step):
                last = per_step[-1][1]
                ordered.append((0 if last else 1, last.order if last else column, len(rows)))
                rows.append((tag, per_step))
        rows = [rows[k] for *_, k in sorted(ordered)]
        offenders = [(tag, per_step[-1][1]) for tag, per_step in rows
                     if per_step[-1][1] is not None and per_step[-1][1].nonfinite]  # fmt: skip
        if not offenders:
            return None
        first, stats = offenders[0]
        report = AnomalyReport(tag=TAG, step=step, nan=stats.nan, posinf=stats.posinf,
                               neginf=stats.neginf, below=0, above=0, count=stats.count,
                               positions=(), quantiles={}, whiskers=None,
                               heatmap=np.zeros((0, 0)),
                               tensors=tuple(tag for tag, _ in offenders))  # fmt: skip
        return flight_table(first, step, offenders, rows), report

    def _give_up(self, exc: BaseException) -> None:
        if not self.finished:
            self.finished = True
            warnings.warn(f"gs.watch's flight recorder stopped: {exc!r}", RuntimeWarning,
                          stacklevel=2)  # fmt: skip
