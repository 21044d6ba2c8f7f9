"""The handle the writer holds on its event file: add, flush, close, exit and fork safety.

One :class:`EventFileWriter` owns one file (``event_file.EventFile``) and its writer thread
(``channel.Channel``). Callers hand it *jobs* (``jobs.Job``: how to build one ``Event``, or
none for a job that only acts) and return at once; the writer thread runs each job (waiting
for device results, encoding PNGs, serialising), frames the bytes as a record and appends whole
records to the file. Nothing on the caller's thread touches the file.

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
- Logging after ``close()`` reopens: a new file in the same folder, as torch's and
  tensorboardX's writers do (unless made with ``reopens=False``). A call racing ``close()``
  from another thread raises ValueError; every call that returns was written.
- After ``os.fork()`` the child neither writes into the parent's file nor inherits its queued
  or buffered records: its first ``add`` opens a file of its own (its pid is in the name).
- Every record a call queued is in the file when the process ends, however it ends short of a
  kill: ``close()``; the writer dropped without ``close()`` (the drop waits for its records);
  interpreter exit (``atexit``); and the end of a ``multiprocessing`` child (fork, forkserver,
  a DataLoader worker), which leaves through ``os._exit`` once multiprocessing's own exit
  function has run its finalizers: each process that opens a file registers one there.
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import weakref
from _thread import get_ident
from collections.abc import Callable

from gpu_summary._events.channel import CLOSED_MESSAGE, FINAL_MESSAGE, Channel, WriterError
from gpu_summary._events.event_file import EventFile
from gpu_summary._events.jobs import Job
from gpu_summary._events.safe_files import make_folders

__all__ = [
    "CLOSED_MESSAGE",
    "FINAL_MESSAGE",
    "EventFileWriter",
    "NullEventWriter",
    "WriterError",
    "at_multiprocessing_exit",
    "close_at_exit",
]


class EventFileWriter:
    """Appends Event records to a new file in ``logdir`` from a background thread.

    Args:
        logdir: directory for the file; created if missing.
        flush_secs: longest time, in seconds, a built record waits in memory before it is
            written to the file.
        max_queue: most jobs waiting for the writer thread before ``add`` blocks.
        max_queue_bytes: most bytes (as the callers declare them) waiting before ``add`` blocks.
        filename_suffix: appended to the file name.
        reopens: whether a use after ``close()`` opens a new file (else ValueError).

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
        reopens: bool = True,
    ) -> None:
        self._logdir = os.fspath(logdir)
        self._reopens = reopens
        self.generation = 0  # files this process opened: a new one starts with nothing open
        self._flush_secs = float(flush_secs)
        self._max_queue = int(max_queue)
        self._max_queue_bytes = int(max_queue_bytes)
        self._suffix = filename_suffix
        self._closed = False
        self._open_lock = threading.Lock()
        self._channel: Channel | None = None
        try:
            make_folders(self._logdir)  # 0755, whatever the umask
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
        channel = Channel(EventFile(self._logdir, self._suffix), self._flush_secs)
        channel.on_finish = _open_channels.discard
        _open_channels.add(channel)
        channel.start()
        # A writer dropped without close() still gets its records written: the drop waits
        # for them (a process may end in os._exit right after, as forked children do).
        weakref.finalize(self, _close_dropped, channel).atexit = False
        self._channel = channel
        self.generation += 1
        # Priority 0: after the finalizers of higher priority (the user's, multiprocessing's
        # own queues, distributed writers' last steps), before running children are joined.
        at_multiprocessing_exit(_close_all_at_exit, 0)

    def _live_channel(self) -> Channel:
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
        return self._live_channel().file.path

    @property
    def closed(self) -> bool:
        return self._closed

    def add(self, job: Job) -> None:
        """Queue ``job`` for the writer thread; blocks while the queue is full (``max_queue``
        jobs, or ``max_queue_bytes`` of their ``nbytes``).

        Raises:
            ValueError: the writer is closed.
            OSError, WriterError: an earlier write or job failed (raised once).
        """
        channel = self._channel
        if channel is not None and channel.thread_ident == get_ident():
            channel.run_now(job)  # from a job of this file's (an on_anomaly callback): no wait
            return
        if self._closed or channel is None or channel.error is not None or channel.closed:
            if channel is not None and channel.closed:  # its thread was stopped (stop())
                self._stopped(channel)
            self.check_open()
            channel = self._live_channel()
            self._raise_deferred_error(channel)
        try:
            channel.put(job, self._max_queue, self._max_queue_bytes)
        except ValueError:  # closed by another thread while this one waited for room:
            self.add(job)  # not queued there, so into the reopened file
            return
        if self._closed or self._channel is not channel or channel.closed:  # closed meanwhile
            channel.wait_finished()  # the close ends (it writes what was queued before it)
            if channel.was_dropped(job):  # queued behind the close: into the reopened file
                self.add(job)

    def _stopped(self, channel: Channel) -> None:
        """The file's thread was stopped from outside: this writer is closed, as by close()."""
        with self._open_lock:
            if self._channel is channel:
                self._closed = True
        _live_writers.discard(self)

    def at_close(self, key: str, job: Job | None) -> None:
        """Have ``job`` build the file's last record when it closes — by ``close()``, at exit,
        or when the writer is dropped; a later call with the same key replaces it, None removes
        it. (A forked child's file starts with none.)"""
        channel = self._channel
        if channel is not None and channel.closed and not self._closed:
            self._stopped(channel)
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
        if channel.thread_ident == get_ident():
            channel.write_now(fsync)  # from a job of this file's: what is built so far
            return
        if not self._closed and channel.running():
            channel.send_marker("sync" if fsync else "flush")
        self._raise_deferred_error(channel)

    def close(self) -> None:
        """Write everything queued, sync and close the file. Idempotent.

        Raises:
            OSError, WriterError: an earlier write or job failed (raised once).
        """
        with self._open_lock:
            self._closed = True
            channel = self._channel
        _live_writers.discard(self)
        if channel is None:
            return
        if channel.thread_ident == get_ident():  # from a job of this file's: the
            channel.send_marker("close", wait=False)  # close follows once that job returns
            return
        if channel.running():
            channel.send_marker("close")
            channel.wait_finished()
        self._raise_deferred_error(channel)

    def check_open(self) -> None:
        """Reopen a closed writer — a new file in the same folder — or, made with
        ``reopens=False``, raise ValueError."""
        channel = self._channel
        if self._closed and channel is not None and channel.thread_ident == get_ident():
            return  # a job of this file's, run while it closes, still logs into it
        if self._closed:
            if not self._reopens:
                raise ValueError(FINAL_MESSAGE)
            with self._open_lock:
                if self._closed:
                    self._open()
                    self._closed = False
            _live_writers.add(self)

    @staticmethod
    def _raise_deferred_error(channel: Channel) -> None:
        error = channel.take_error()
        if error is not None:
            raise error

    def _forget_after_fork(self) -> None:
        self._open_lock = threading.Lock()
        self._channel = None


_live_writers: weakref.WeakSet[EventFileWriter] = weakref.WeakSet()
_open_channels: set[Channel] = set()


class NullEventWriter:
    """The event file of a rank other than 0: there is none; jobs are dropped."""

    path = None
    generation = 1

    def __init__(self, reopens: bool = True) -> None:
        self.closed = False
        self._reopens = reopens

    def check_open(self) -> None:
        if self.closed:
            if not self._reopens:
                raise ValueError(FINAL_MESSAGE)
            self.closed = False

    def add(self, job: Job) -> None:
        self.check_open()

    def at_close(self, key: str, job: Job | None) -> None:
        pass

    def flush(self, fsync: bool = False) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def close_at_exit(closables: list, what: str) -> None:
    """Close each of ``closables`` in turn; a failure is printed (at exit no caller is left to
    raise it to) and the others are closed all the same."""
    for closable in closables:
        try:
            closable.close()
        except BaseException as exc:  # noqa: BLE001 - no caller is left to raise it to
            sys.stderr.write(f"gpu_summary: closing {what} at exit failed: {exc}\n")


def _close_dropped(channel: Channel) -> None:
    """A writer dropped without ``close()``: its file is closed once its records are written,
    and the thread that dropped it waits for that (unless it is the writer's own)."""
    try:
        channel.close_from_outside()
    except BaseException as exc:  # noqa: BLE001 - a finalizer has no caller to raise it to
        sys.stderr.write(f"gpu_summary: closing a dropped event file failed: {exc!r}\n")


def _close_all_at_exit() -> None:
    close_at_exit(list(_live_writers), "an event file")
    for channel in list(_open_channels):  # writers that were dropped without close()
        if channel.running():
            channel.send_marker("close", wait=False)
            channel.wait_finished(timeout=60)


_hooked: dict[object, int] = {}  # exit function -> the process that registered it


def at_multiprocessing_exit(function: Callable[[], None], priority: int) -> None:
    """Have ``function`` run when this process ends also when it is a ``multiprocessing``
    child: fork and forkserver children end in ``os._exit``, with no ``atexit``, right after
    multiprocessing's exit function has run the finalizers registered with it in that process
    (spawn children run it before ``atexit``). The parent's registrations are cleared at the
    start of a child, so each process registers its own, once. Higher priorities run first.
    Without multiprocessing loaded, this process is not one of its children: ``atexit`` does.
    """
    util = sys.modules.get("multiprocessing.util")
    if util is None or _hooked.get(function) == os.getpid():
        return
    _hooked[function] = os.getpid()
    util.Finalize(None, function, exitpriority=priority)


def _after_fork_in_child() -> None:
    for channel in list(_open_channels):
        channel.file.abandon()  # our copy only; the parent's descriptor is unaffected
    _open_channels.clear()
    for writer in list(_live_writers):
        writer._forget_after_fork()


atexit.register(_close_all_at_exit)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
