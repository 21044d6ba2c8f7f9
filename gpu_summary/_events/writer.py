"""Event files: naming, the background writer thread, flush/close, fork safety.

One :class:`EventFileWriter` owns one file. Callers hand it *jobs* — callables that return an
``Event`` message (or its bytes; None for a job that only acts) — and return at once; the
writer thread runs each job (waiting for device results, encoding PNGs, serialising), frames
the bytes as a record and appends whole records to the file. Nothing on the caller's thread
touches the file.

Guarantees:
- The queue is bounded (items and bytes): a caller that outruns the disk blocks in ``add``
  instead of growing memory without limit.
- ``flush()`` returns once every job enqueued before it is written to the file (the OS has it;
  a reader sees it). Records also reach the file by themselves at most ``flush_secs`` after
  their job ran.
- The file only ever grows by whole records. When a write fails (disk full, I/O error) the file
  is cut back to the end of its last whole record and the error is raised from the next
  ``add``/``flush``/``close`` on the caller's thread, never lost and never raised in a way that
  kills the writer thread.
- A job that raises (an unencodable image, a failing device copy) drops only its own record;
  the exception surfaces the same way, as :class:`WriterError` with the original as
  ``__cause__`` (an ``OSError`` with its errno when the job's own files could not be written).
- A file deleted while open (its run folder removed to start afresh) is noticed before the next
  write: logging goes on in a new file in the same folder, made again if need be, with a
  ``RuntimeWarning`` (TensorFlow's writer does the same); the records that were in it are gone.
- After ``os.fork()`` the child neither writes into the parent's file nor inherits its queued
  or buffered records: its first ``add`` opens a file of its own (its pid is in the name).
"""

from __future__ import annotations

import atexit
import collections
import errno
import itertools
import os
import socket
import sys
import threading
import time
import warnings
import weakref
from collections.abc import Callable

from gpu_summary._events.records import encode_record
from gpu_summary.proto import event_pb2

FILE_VERSION = "brain.Event:2"
# A batch of records is written once it reaches this size, without waiting for flush_secs.
_WRITE_BATCH_BYTES = 1 << 20
# Writer-thread states. Dozing (records buffered), it polls the queue every _DOZE_SECS and
# producers wake it only once _WAKE_AT jobs wait, so that bursts of small jobs are handled in
# bulk instead of costing a thread switch each.
_AWAKE, _DOZING, _ASLEEP = 0, 1, 2
_DOZE_SECS = 0.02
_WAKE_AT = 1024
_MANY_AT_ONCE = 4096  # most consecutive calls of one job built together
_file_counter = itertools.count()


CLOSED_MESSAGE = "this SummaryWriter is closed; create a new SummaryWriter to log more"


class WriterError(RuntimeError):
    """A summary could not be built on the writer thread; ``__cause__`` holds the reason."""


def event_file_name(suffix: str = "") -> str:
    """``events.out.tfevents.<10-digit unix time>.<host>.<pid>.<counter><suffix>``."""
    return (
        f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
        f"{os.getpid()}.{next(_file_counter)}{suffix}"
    )


def _create_event_file(logdir: str, suffix: str) -> tuple[str, int, int]:
    """Create a new event file in ``logdir`` (made if missing) holding its file-version record.

    Returns:
        Its path, a descriptor open for appending, and its size.

    Raises:
        OSError: the folder or the file could not be made, or the first record not written
            (no file is left behind).
    """
    os.makedirs(logdir, exist_ok=True)
    while True:
        path = os.path.join(logdir, event_file_name(suffix))
        try:
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
            )
            break
        except FileExistsError:
            continue
    first = event_pb2.Event(wall_time=time.time(), file_version=FILE_VERSION)
    first.source_metadata.writer = "gpu_summary"
    record = encode_record(first.SerializeToString())
    try:
        os.write(fd, record)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise OSError(
            exc.errno,
            f"gpu_summary could not start an event file in {logdir}: {exc.strerror}; "
            "no file was left",
        ) from exc
    return path, fd, len(record)


class _Channel:
    """What the caller's side and the writer thread share for one file.

    The handle (:class:`EventFileWriter`) may be garbage-collected while the thread still has
    records to write, so the thread holds this object, not the handle.
    """

    def __init__(self, path: str, fd: int, size: int, flush_secs: float, suffix: str) -> None:
        # The queue is a deque, whose append/popleft are atomic: the common path of both sides
        # takes no lock. The condition is only for sleeping: the writer on an empty queue,
        # producers on a full one, each announced by a flag the other side checks.
        self.cond = threading.Condition(threading.Lock())
        self.queue: collections.deque = collections.deque()
        self.queued_bytes = 0
        self.writer_state = _AWAKE
        self.producers_waiting = 0
        self.error: BaseException | None = None
        self.closed = False  # set by the writer thread once the file is closed
        self.path = path
        self.fd = fd
        self.size = size  # bytes of whole records in the file
        self.flush_secs = flush_secs
        self.suffix = suffix  # of the file name, for a file made anew (see _replace_deleted_file)
        self.thread = threading.Thread(
            target=self._run, name=f"gpu_summary writer {os.path.basename(path)}", daemon=True
        )
        self._batch = bytearray()
        self._ends: list[int] = []  # end offset of each record in the batch
        self._deadline: float | None = None
        # Jobs run once, last, when the file closes (however it closes), by key.
        self.closing_jobs: dict[str, Callable] = {}

    # -- caller side -------------------------------------------------------------------------

    def put(self, job: Callable, args: tuple, nbytes: int, max_items: int, max_bytes: int) -> None:
        queue = self.queue
        if nbytes or len(queue) >= max_items:
            if len(queue) >= max_items or self.queued_bytes + nbytes > max_bytes:
                self._wait_for_room(nbytes, max_items, max_bytes)
            with self.cond:
                self.queued_bytes += nbytes
        queue.append(("job", job, args, nbytes))
        state = self.writer_state
        # A dozing writer (records buffered, polling) is left to collect small jobs in bulk;
        # jobs that hold memory, a long queue, or an idle writer get it up now.
        if state == _ASLEEP or (
            state == _DOZING and (nbytes or len(queue) >= _WAKE_AT or 2 * len(queue) >= max_items)
        ):
            self._wake()

    def _wait_for_room(self, nbytes: int, max_items: int, max_bytes: int) -> None:
        with self.cond:
            self.producers_waiting += 1
            self.cond.notify_all()  # a dozing writer would otherwise take its time
            try:
                while (
                    self.queue
                    and not self.closed
                    and (len(self.queue) >= max_items or self.queued_bytes + nbytes > max_bytes)
                ):
                    self.cond.wait()
            finally:
                self.producers_waiting -= 1
            if self.closed:  # closed by another thread while this one waited
                raise ValueError(CLOSED_MESSAGE)

    def _wake(self) -> None:
        with self.cond:
            self.cond.notify_all()

    def send_marker(self, kind: str, wait: bool = True) -> None:
        done = threading.Event()
        self.queue.append((kind, done, (), 0))
        if self.writer_state != _AWAKE:
            self._wake()
        while wait and not done.wait(0.5):
            if not self.thread.is_alive():
                if kind == "close" or self.closed:  # a flush racing a close: nothing to do
                    return
                raise RuntimeError("the gpu_summary writer thread is gone; the writer is unusable")

    def take_error(self) -> BaseException | None:
        if self.error is None:
            return None
        with self.cond:
            error, self.error = self.error, None
        return error

    # -- writer thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            kind, payload, args, _ = self._next_item()
            try:
                if kind == "job":
                    self._run_jobs(payload, args)
                elif self._handle(kind, payload):
                    return
            except BaseException as exc:  # noqa: BLE001 - the thread must outlive any failure
                self._set_error(exc)
                if kind in ("flush", "sync", "close"):
                    payload.set()
                if kind == "close":
                    self._finish()
                    return

    def _run_jobs(self, job: Callable, args: tuple) -> None:
        """Run ``job(*args)`` and the jobs queued behind it, without going back through
        ``_next_item``: bursts of small jobs are the common case. Consecutive calls of a job
        that offers a ``many`` function (scalars do) are built by one call of it."""
        queue = self.queue
        while True:
            many = getattr(job, "many", None)
            if many is None:
                self._run_job(job, args)
            else:
                calls = [args]
                while len(calls) < _MANY_AT_ONCE and queue and queue[0][1] is job:
                    _, _, more, nbytes = queue.popleft()
                    if nbytes:
                        self._release(nbytes)
                    calls.append(more)
                self._run_many(job, many, calls)
            if len(self._batch) >= _WRITE_BATCH_BYTES:
                self._write_batch()
            if not queue or queue[0][0] != "job" or self.producers_waiting:
                return
            _, job, args, nbytes = queue.popleft()
            if nbytes:
                self._release(nbytes)

    def _run_many(self, job: Callable, many: Callable, calls: list[tuple]) -> None:
        try:
            events = many(calls)
        except BaseException:  # noqa: BLE001 - redo one by one to report the failing call
            for args in calls:
                self._run_job(job, args)
            return
        for event in events:
            self._append(event)

    def _release(self, nbytes: int) -> None:
        with self.cond:
            self.queued_bytes -= nbytes
            self.cond.notify_all()

    def _handle(self, kind: str, payload: object) -> bool:
        """Process a marker or a tick; True once the file is closed."""
        if kind in ("flush", "sync"):
            self._write_batch()
            if kind == "sync":
                try:
                    os.fsync(self.fd)
                except OSError as exc:
                    self._set_os_error(exc, f"gpu_summary could not sync {self.path}")
            payload.set()
        elif kind == "close":
            for job in list(self.closing_jobs.values()):
                self._run_job(job, ())
            self._write_batch()
            self._close_file()
            payload.set()
            self._finish()
            return True
        else:  # "tick": the flush deadline passed
            self._write_batch()
        return False

    def _finish(self) -> None:
        """After the close: release producers waiting for room (another thread closed the
        writer under them; they raise ValueError) and flushes queued behind the close."""
        _open_channels.discard(self)
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        while self.queue:  # added by threads that raced the close: never written
            kind, payload, _, _ = self.queue.popleft()
            if kind != "job":
                payload.set()

    def _next_item(self) -> tuple:
        queue = self.queue
        while True:
            if queue:
                item = queue.popleft()
                if item[3] or self.producers_waiting:
                    self._release(item[3])
                return item
            with self.cond:
                # Announce the sleep first, then look again: a producer that appended before
                # the state changed is seen here; one that appends after it sees the state.
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
                    if timeout is not None and timeout <= 0:
                        return ("tick", None, (), 0)
                    self.cond.wait(timeout)
                finally:
                    self.writer_state = _AWAKE

    def _run_job(self, job: Callable, args: tuple) -> None:
        try:
            data = job(*args)
            if data is None:  # a job that only acts (a user callback) writes nothing
                return
            if type(data) is not bytes:
                data = data.SerializeToString()
        except BaseException as exc:  # noqa: BLE001 - must never kill the writer thread
            describe = getattr(job, "description", None) or getattr(job, "__name__", repr(job))
            if args and isinstance(args[0], str):  # function jobs take the tag first
                describe = f"{describe} for tag {args[0]!r}"
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

    def _append(self, event: bytes | event_pb2.Event) -> None:
        """Frame a built Event (message or serialized bytes) into the unwritten batch."""
        data = event if type(event) is bytes else event.SerializeToString()
        self._batch += encode_record(data)
        self._ends.append(len(self._batch))
        if self._deadline is None:
            self._deadline = time.monotonic() + self.flush_secs

    def _write_batch(self) -> None:
        self._deadline = None
        if not self._batch:
            return
        # An immutable copy: slices handed to os.write (or kept alive by a traceback) must not
        # pin the batch buffer, which is cleared and refilled.
        data = bytes(self._batch)
        self._batch.clear()
        written = 0
        deleted = None
        try:
            if self._file_was_deleted():
                deleted = self.path
                self._replace_deleted_file()
            while written < len(data):
                written += os.write(self.fd, memoryview(data)[written:])
        except OSError as exc:
            self._recover_from_write_error(exc, written, deleted)
        else:
            self.size += written
        finally:
            self._ends.clear()
        if deleted is not None and written:
            warnings.warn(
                f"gpu_summary: the event file {deleted} was deleted while open; the records "
                f"that were in it are gone, and logging goes on in {self.path}",
                RuntimeWarning,
                stacklevel=1,
            )

    def _file_was_deleted(self) -> bool:
        """No name links to the open file any more, and its path names nothing (both, so that
        a file system that reports no links for live files never starts a file per write)."""
        if os.fstat(self.fd).st_nlink != 0:
            return False
        try:
            os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):  # gone, or its folder is
            return True
        except OSError:
            return False
        return False

    def _replace_deleted_file(self) -> None:
        """The file was deleted (its run folder removed to start afresh, say): go on in a new
        file in the same folder, made again if need be, as TensorFlow's writer does."""
        path, fd, size = _create_event_file(os.path.dirname(self.path), self.suffix)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.path, self.fd, self.size = path, fd, size

    def _recover_from_write_error(self, exc: OSError, written: int, deleted: str | None) -> None:
        """Cut the file back to its last whole record and keep the error for the caller."""
        if deleted is not None and deleted == self.path:  # no new file could be made
            self._set_os_error(
                exc,
                f"gpu_summary: the event file {deleted} was deleted while open and no new one "
                "could be made",
                f"; {len(self._ends)} record(s) were dropped",
            )
            return
        kept = 0
        for end in self._ends:
            if end > written:
                break
            kept = end
        dropped = sum(1 for end in self._ends if end > kept)
        try:
            os.ftruncate(self.fd, self.size + kept)
        except OSError:
            pass
        self.size += kept
        self._set_os_error(
            exc,
            f"gpu_summary could not write to {self.path}",
            f"; {dropped} record(s) were dropped and the file ends at its last whole record",
        )

    def _close_file(self) -> None:
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        try:
            os.close(self.fd)
        except OSError as exc:
            self._set_error(exc)

    def _set_os_error(self, exc: OSError, what: str, after: str = "") -> None:
        """Keep ``OSError(exc.errno, "<what>: <exc.strerror><after>")`` caused by ``exc``."""
        error = OSError(exc.errno, f"{what}: {exc.strerror or exc}{after}")
        error.__cause__ = exc
        self._set_error(error)

    def _set_error(self, error: BaseException) -> None:
        with self.cond:
            if self.error is None:  # the first failure is the one worth reporting
                self.error = error


class EventFileWriter:
    """Appends Event records to a new file in ``logdir`` from a background thread.

    Args:
        logdir: directory for the file; created if missing.
        flush_secs: longest time, in seconds, a built record waits in memory before it is
            written to the file.
        max_queue: most jobs waiting for the writer thread before ``add`` blocks.
        max_queue_bytes: most bytes (as the callers declare them) waiting before ``add`` blocks.
        filename_suffix: appended to the file name.

    Thread safety: every public method may be called from any thread.
    """

    def __init__(
        self,
        logdir: str,
        *,
        flush_secs: float = 1.0,
        max_queue: int = 1024,
        max_queue_bytes: int = 256 << 20,
        filename_suffix: str = "",
    ) -> None:
        self._logdir = os.fspath(logdir)
        self._flush_secs = float(flush_secs)
        self._max_queue = int(max_queue)
        self._max_queue_bytes = int(max_queue_bytes)
        self._suffix = filename_suffix
        self._closed = False
        self._open_lock = threading.Lock()
        self._channel: _Channel | None = None
        try:
            os.makedirs(self._logdir, exist_ok=True)
        except FileExistsError:
            raise NotADirectoryError(
                errno.ENOTDIR,
                f"logdir {self._logdir!r} exists and is not a directory; give a folder for the "
                "event files",
            ) from None
        self._open()
        _live_writers.add(self)

    def _open(self) -> None:
        """Create this process's file, write the file-version record, start the thread."""
        path, fd, size = _create_event_file(self._logdir, self._suffix)
        channel = _Channel(path, fd, size, self._flush_secs, self._suffix)
        _open_channels.add(channel)
        channel.thread.start()
        # A writer dropped without close() still gets its records written (at exit,
        # _close_all_at_exit waits for them).
        weakref.finalize(self, channel.send_marker, "close", False).atexit = False
        self._channel = channel

    def _live_channel(self) -> _Channel:
        channel = self._channel
        if channel is None:  # first use in a forked child
            with self._open_lock:
                if self._channel is None:
                    self._open()
                channel = self._channel
        assert channel is not None
        return channel

    @property
    def path(self) -> str:
        """Path of the event file this process writes."""
        return self._live_channel().path

    @property
    def closed(self) -> bool:
        return self._closed

    def add(self, job: Callable, args: tuple = (), nbytes: int = 0) -> None:
        """Queue ``job(*args)`` for the writer thread; blocks while the queue is full.

        Args:
            job: called on the writer thread; returns the Event to write, or its serialized
                bytes. An attribute ``description`` (str), if present, names it in errors. An
                attribute ``many``, if present, is a function that takes a list of ``args``
                tuples and returns their Events in order: consecutive queued calls of ``job``
                are then built by one call of it.
            args: arguments for ``job``.
            nbytes: memory the job holds until it runs (counted against ``max_queue_bytes``).

        Raises:
            ValueError: the writer is closed.
            OSError, WriterError: an earlier write or job failed (raised once).
        """
        channel = self._channel
        if self._closed or channel is None or channel.error is not None:
            self.check_open()
            channel = self._live_channel()
            self._raise_deferred_error(channel)
        channel.put(job, args, nbytes, self._max_queue, self._max_queue_bytes)
        if self._closed:  # closed by another thread meanwhile: the job may never run
            raise ValueError(CLOSED_MESSAGE)

    def at_close(self, key: str, job: Callable | None) -> None:
        """Have ``job()`` build the file's last record when it closes — by ``close()``, at exit,
        or when the writer is dropped; a later call with the same key replaces it, None removes
        it. (A forked child's file starts with none.)"""
        self.check_open()
        jobs = self._live_channel().closing_jobs
        if job is None:
            jobs.pop(key, None)
        else:
            jobs[key] = job

    def flush(self, fsync: bool = False) -> None:
        """Block until every job queued before this call is written to the file: the OS has
        it, so it survives this process dying (a kill, a crash). With ``fsync=True`` it is
        also on the storage device (``os.fsync``), so it survives the machine losing power.

        Raises:
            OSError, WriterError: an earlier write or job failed, or the sync did (raised once).
        """
        channel = self._channel
        if channel is None:
            return
        if not self._closed:
            channel.send_marker("sync" if fsync else "flush")
        self._raise_deferred_error(channel)

    def close(self) -> None:
        """Write everything queued, sync and close the file. Idempotent.

        Raises:
            OSError, WriterError: an earlier write or job failed (raised once).
        """
        with self._open_lock:
            if self._closed:
                return
            self._closed = True
        _live_writers.discard(self)
        channel = self._channel
        if channel is None:
            return
        if channel.thread.is_alive():
            channel.send_marker("close")
            channel.thread.join()
        self._raise_deferred_error(channel)

    def check_open(self) -> None:
        """Raise ValueError if the writer is closed."""
        if self._closed:
            raise ValueError(CLOSED_MESSAGE)

    @staticmethod
    def _raise_deferred_error(channel: _Channel) -> None:
        error = channel.take_error()
        if error is not None:
            raise error

    def _forget_after_fork(self) -> None:
        self._open_lock = threading.Lock()
        self._channel = None


_live_writers: weakref.WeakSet[EventFileWriter] = weakref.WeakSet()
_open_channels: set[_Channel] = set()


def _close_all_at_exit() -> None:
    for writer in list(_live_writers):
        try:
            writer.close()
        except BaseException as exc:  # noqa: BLE001 - no caller is left to raise it to
            sys.stderr.write(f"gpu_summary: closing an event file at exit failed: {exc}\n")
    for channel in list(_open_channels):  # writers that were dropped without close()
        if channel.thread.is_alive():
            channel.send_marker("close", wait=False)
            channel.thread.join(timeout=60)


def _after_fork_in_child() -> None:
    for channel in list(_open_channels):
        try:
            os.close(channel.fd)  # our copy only; the parent's descriptor is unaffected
        except OSError:
            pass
    _open_channels.clear()
    for writer in list(_live_writers):
        writer._forget_after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
