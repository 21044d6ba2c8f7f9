"""The queue between the callers and the writer thread of one event file, and that thread.

Callers put :class:`~gpu_summary._events.jobs.Job` s and return at once; the writer thread
builds each job's Event (waiting for device results, encoding PNGs, serialising), frames it
into the file's batch, and writes batches at most ``flush_secs`` after their first record (or
at once when a batch reaches 1 MiB, or on a flush marker).

- The queue is bounded (items and bytes): a caller that outruns the disk blocks in ``put``.
- A job that raises drops only its own record; the first failure is kept and raised from the
  caller's next call (:class:`WriterError` with the original as ``__cause__``, or an
  ``OSError`` with its errno), never in a way that kills the writer thread.
- A caller interrupted anywhere (Ctrl-C's KeyboardInterrupt, caught by the training loop)
  leaves nothing wedged: the two sides wait on ``gpu_summary._sync``'s primitives, never
  ``threading.Condition`` or ``Event``, and no lock is held across Python code. An interrupted
  call either queued its job or did not (``put`` appends last); a later flush or close waits
  for what was queued.
"""

from __future__ import annotations

import _thread
import collections
import os
import threading
import time

from gpu_summary._events.event_file import EventFile
from gpu_summary._events.jobs import Job, Marker, RecordParts
from gpu_summary._sync import Doorbell, Flag, StoppableThread, Waiters
from gpu_summary.proto import event_pb2

CLOSED_MESSAGE = (
    "this SummaryWriter was closed by another thread during the call, which may not have been "
    "logged; log again (a closed writer reopens), or close it after its last call"
)
FINAL_MESSAGE = (
    "this SummaryWriter is closed, and a distributed writer does not reopen (its ranks' "
    "collectives ended with close()); create a new SummaryWriter to log more"
)
# A batch of records is written once it reaches this size, without waiting for flush_secs.
_WRITE_BATCH_BYTES = 1 << 20
# Writer-thread states. Dozing (records buffered), it polls the queue every _DOZE_SECS and
# producers wake it only once _WAKE_AT jobs wait, or their declared bytes reach
# 1/_WAKE_AT_BYTES_PART of the queue's limit, so that bursts of jobs — small ones, and the
# histograms of a whole model each step — are handled in bulk instead of costing a thread
# switch (a hand-off of the GIL) each. Asleep (nothing buffered), the first job wakes it.
_AWAKE, _DOZING, _ASLEEP = 0, 1, 2
_DOZE_SECS = 0.02
_WAKE_AT = 1024
_WAKE_AT_BYTES_PART = 8
_MANY_AT_ONCE = 4096  # most consecutive jobs of one kind built together
_TICK = Marker("tick")


class WriterError(RuntimeError):
    """A summary could not be built on the writer thread; ``__cause__`` holds the reason."""


class Channel:
    """What the caller's side and the writer thread share for one file.

    The handle (``EventFileWriter``) may be garbage-collected while the thread still has
    records to write, so the thread holds this object, not the handle.
    """

    def __init__(self, file: EventFile, flush_secs: float) -> None:
        # The queue is a deque, whose append/popleft are atomic: the common path of both sides
        # takes no lock. Sleeping is announced by a flag the other side checks: the writer on
        # an empty queue (woken by its doorbell), producers on a full one (woken together).
        self.queue: collections.deque[Job | Marker] = collections.deque()
        self.queued_bytes = 0  # under _count_lock (both sides change it)
        self._count_lock = _thread.allocate_lock()
        self._doorbell = Doorbell()
        self.producers = Waiters()  # callers waiting for room
        self.room_poll_secs = 0.1  # they also look this often, should a wake go astray
        self.writer_state = _AWAKE
        self.error: BaseException | None = None
        self.closed = False  # set by the writer thread once the file is closed
        self.file = file
        self.flush_secs = flush_secs
        # stop(), as torch's and tensorboardX's writer threads have: test suites such as
        # Lightning's call it on every daemon thread a test leaves behind.
        name = f"gpu_summary writer {os.path.basename(file.path)}"
        self.thread = StoppableThread(self._run, name, on_stop=self.close_from_outside)
        # The thread's ident while it runs (callers compare it with theirs: cheaper than
        # threading.current_thread() on every call); None before and after.
        self.thread_ident: int | None = None
        self.finished = Flag()  # set by the thread as it returns
        self._pid = os.getpid()
        self._deadline: float | None = None
        # Jobs run once, last, when the file closes (however it closes), by key.
        self.closing_jobs: dict[str, Job] = {}
        self.on_finish = None  # called by the writer thread once the file is closed
        self.dropped: list[Job] = []  # jobs of threads that raced the close, never run

    # -- caller side -------------------------------------------------------------------------

    def put(self, job: Job, max_items: int, max_bytes: int) -> None:
        queue = self.queue
        nbytes = job.nbytes
        if nbytes or len(queue) >= max_items:
            if len(queue) >= max_items or self.queued_bytes + nbytes > max_bytes:
                self._wait_for_room(nbytes, max_items, max_bytes)
            with self._count_lock:
                # Nothing between the count and the append can take an interrupt (no call
                # before the append's own): the job is queued and counted, or neither.
                self.queued_bytes += nbytes
                queue.append(job)
        else:
            queue.append(job)
        state = self.writer_state
        # A dozing writer (records buffered, polling every _DOZE_SECS) is left to collect jobs
        # in bulk; a long queue, many bytes held by it, or an idle writer get it up now.
        if state == _ASLEEP or (
            state == _DOZING
            and (
                len(queue) >= _WAKE_AT
                or 2 * len(queue) >= max_items
                or (nbytes and _WAKE_AT_BYTES_PART * self.queued_bytes >= max_bytes)
            )
        ):
            self._wake()

    def _wait_for_room(self, nbytes: int, max_items: int, max_bytes: int) -> None:
        def full() -> bool:
            queue = self.queue
            if not queue or self.closed:
                return False
            # Rung whatever the writer's state says: a KeyboardInterrupt between _wake's mark
            # and its ring leaves the thread asleep and marked awake, and only a ring wakes it
            # (extra rings collapse into one; this runs once per wake or poll of a waiter).
            self._wake()
            return len(queue) >= max_items or self.queued_bytes + nbytes > max_bytes

        self.producers.wait(full, self.room_poll_secs)
        if self.closed:  # closed by another thread while this one waited
            raise ValueError(CLOSED_MESSAGE)

    def _wake(self) -> None:
        # Marked awake before the ring, so that the callers behind this one do not ring again
        # (a ring while one is pending costs a raised and caught RuntimeError, and a ringing
        # caller per call until the writer thread gets the GIL is most of them in a burst).
        # Safe: the writer thread rewrites its state before each sleep and looks at the queue
        # after that, and this ring, made after the mark, wakes the sleep it may have missed.
        self.writer_state = _AWAKE
        self._doorbell.ring()

    def send_marker(self, kind: str, wait: bool = True) -> None:
        done = Flag()
        self.queue.append(Marker(kind, done))
        if self.writer_state != _AWAKE:
            self._wake()
        while wait and not done.wait(0.5):
            self._doorbell.ring()  # a ring lost to an interrupt in _wake: see _wait_for_room
            if not self.running():
                if kind == "close" or self.closed:  # a flush racing a close: nothing to do
                    return
                raise RuntimeError("the gpu_summary writer thread is gone; the writer is unusable")

    def start(self) -> None:
        self.thread.start()
        self.thread_ident = self.thread.ident

    def close_from_outside(self) -> None:
        """Write everything queued and close the file (the thread then ends), waiting for it
        unless called on the writer thread itself (then the close follows the current job).
        The writer that owned the file logs on into a new one, as after ``close()``."""
        if self.thread is threading.current_thread():
            self.send_marker("close", wait=False)
        elif self.running():
            self.send_marker("close")

    def running(self) -> bool:
        """Whether the writer thread still runs: not in a forked child (it does not exist
        there), and told by the thread itself — ``Thread.is_alive()`` is not to be trusted
        once a ``join()`` was interrupted (CPython's, before 3.13, then marks a thread that
        still runs as stopped)."""
        return self._pid == os.getpid() and not self.finished.is_set()

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait for the writer thread to return (instead of ``Thread.join``, see ``running``)."""
        return self._pid != os.getpid() or self.finished.wait(timeout)

    # -- the writer thread, from inside a job (a user's callback calling the writer) -----------

    def run_now(self, job: Job) -> None:
        """Run ``job`` at once on this, the writer thread: its record follows the current
        job's (queueing it could wait for room only this thread makes)."""
        self._run_job(job)

    def write_now(self, fsync: bool) -> None:
        """Write the records built so far (a flush from inside a job: it cannot wait for the
        jobs queued behind the one running)."""
        self._write_batch()
        if fsync:
            try:
                self.file.sync()
            except OSError as exc:
                self._set_error(exc)

    def take_error(self) -> BaseException | None:
        if self.error is None:
            return None
        with self._count_lock:
            error, self.error = self.error, None
        return error

    # -- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self.thread_ident = None  # a thread started later may get the same ident
            self.finished.set()

    def _loop(self) -> None:
        while True:
            item = self._next_item()
            try:
                if type(item) is Job:
                    self._run_jobs(item)
                elif self._handle(item):
                    return
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any failure
                self._set_error(exc)
                if type(item) is Marker and item.done is not None:
                    item.done.set()
                if type(item) is Marker and item.kind == "close":
                    self._finish()
                    return

    def _run_jobs(self, job: Job) -> None:
        """Run ``job`` and the jobs queued behind it, without going back through
        ``_next_item``: bursts of small jobs are the common case. Consecutive jobs of a kind
        that offers ``build_many`` (scalars do) are built by one call of it."""
        queue = self.queue
        while True:
            kind = job.kind
            if kind.build_many is None:
                self._run_job(job)
            else:
                batch = [job]
                while len(batch) < _MANY_AT_ONCE and queue:
                    head = queue[0]
                    if type(head) is not Job or head.kind is not kind:
                        break
                    queue.popleft()
                    if head.nbytes:
                        self._release(head.nbytes)
                    batch.append(head)
                if self.producers:  # the burst made room: tell those waiting for it
                    self.producers.wake_all()
                self._run_many(batch)
            if self.file.batch_bytes >= _WRITE_BATCH_BYTES:
                self._write_batch()
            if not queue or type(queue[0]) is not Job or self.producers:
                return
            job = queue.popleft()
            if job.nbytes:
                self._release(job.nbytes)

    def _run_many(self, batch: list[Job]) -> None:
        try:
            events = batch[0].kind.build_many([job.args for job in batch])
        except BaseException:  # noqa: BLE001 - redo one by one to report the failing job
            for job in batch:
                self._run_job(job)
            return
        self.file.extend(events)
        if self._deadline is None and events:
            self._deadline = time.monotonic() + self.flush_secs

    def _release(self, nbytes: int) -> None:
        if nbytes:
            with self._count_lock:
                self.queued_bytes -= nbytes
        self.producers.wake_all()

    def _handle(self, marker: Marker) -> bool:
        """Carry out a marker; True once the file is closed."""
        kind = marker.kind
        if kind in ("flush", "sync"):
            self._write_batch()
            if kind == "sync":
                try:
                    self.file.sync()
                except OSError as exc:
                    self._set_error(exc)
            marker.done.set()
        elif kind == "close":
            for job in list(self.closing_jobs.values()):
                self._run_job(job)
            self._write_batch()
            try:
                self.file.close()
            except OSError as exc:
                self._set_error(exc)
            marker.done.set()
            self._finish()
            return True
        else:  # "tick": the flush deadline passed
            self._write_batch()
        return False

    def _finish(self) -> None:
        """After the close: release producers waiting for room (another thread closed the
        writer under them; they raise ValueError) and flushes queued behind the close."""
        if self.on_finish is not None:
            self.on_finish(self)
        self.closed = True
        self.producers.wake_all()
        while self.queue:  # added by threads that raced the close: never written here
            item = self.queue.popleft()
            if type(item) is Marker and item.done is not None:
                item.done.set()
            elif type(item) is Job:
                self.dropped.append(item)

    def was_dropped(self, job: Job) -> bool:
        """Whether ``job`` was queued behind the close, so never run (call once the thread
        has finished): the caller logs it again, into the reopened file."""
        return any(item is job for item in (*self.dropped, *self.queue))

    def _next_item(self) -> Job | Marker:
        queue = self.queue
        while True:
            if queue:
                item = queue.popleft()
                nbytes = item.nbytes if type(item) is Job else 0
                if nbytes or self.producers:
                    self._release(nbytes)
                return item
            # Announce the sleep first, then look again: a producer that appended before the
            # state changed is seen here; one that appends after it sees the state and rings.
            if self._deadline is None:  # nothing buffered: sleep until woken
                self.writer_state = _ASLEEP
                timeout = None
            else:  # records buffered: doze, polling, until the flush deadline
                self.writer_state = _DOZING
                remaining = self._deadline - time.monotonic()
                timeout = min(remaining, _DOZE_SECS)
            try:
                if queue:
                    continue
                if self.producers:  # never sleep on an empty queue they wait on
                    self.producers.wake_all()
                if timeout is not None and timeout <= 0:
                    return _TICK
                self._doorbell.sleep(timeout)
            finally:
                self.writer_state = _AWAKE

    def _run_job(self, job: Job) -> None:
        try:
            data = job.build()
            if data is None:  # a job that only acts (a user callback) writes nothing
                return
            if type(data) is RecordParts:  # a large record: written now, from its parts
                self._deadline = None
                try:
                    self.file.write_parts(data)
                except OSError as exc:
                    self._set_error(exc)
                return
            if type(data) is not bytes:
                data = data.SerializeToString()
        except BaseException as exc:  # noqa: BLE001 - must never kill the writer thread
            describe = job.describe()
            if isinstance(exc, OSError) and exc.errno is not None:
                # An I/O error (a full disk under the projector's files) stays an OSError
                # with its errno, as when the event file itself cannot be written.
                error = OSError(
                    exc.errno, f"gpu_summary could not write {describe}: {exc.strerror or exc}"
                )
            else:
                error = WriterError(f"gpu_summary could not write {describe}: {exc!r}")
            error.__cause__ = exc
            self._set_error(error)
            return
        self._append(data)

    def _append(self, data: bytes | event_pb2.Event) -> None:
        self.file.append(data if type(data) is bytes else data.SerializeToString())
        if self._deadline is None:
            self._deadline = time.monotonic() + self.flush_secs

    def _write_batch(self) -> None:
        self._deadline = None
        try:
            self.file.write_batch()
        except OSError as exc:
            self._set_error(exc)

    def _set_error(self, error: BaseException) -> None:
        with self._count_lock:
            if self.error is None:  # the first failure is the one worth reporting
                self.error = error
