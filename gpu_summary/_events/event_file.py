"""One event file: its name, its descriptor, the batch of framed records not yet written, and
recovery from what can go wrong on disk.

The file only ever grows by whole records: when a write fails (disk full, I/O error) it is cut
back to the end of its last whole record. A file deleted while open (its run folder removed to
start afresh) is noticed before the next write: writing goes on in a new file in the same
folder, made again if need be, with a ``RuntimeWarning`` (TensorFlow's writer does the same).
Used by one thread at a time (the writer thread).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
import warnings

from gpu_summary._events.records import encode_record, frame_parts
from gpu_summary._events.safe_files import make_folders
from gpu_summary.proto import event_pb2

FILE_VERSION = "brain.Event:2"
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024) if hasattr(os, "sysconf") else 16
_file_counter = itertools.count()


def event_file_name(suffix: str = "") -> str:
    """``events.out.tfevents.<10-digit unix time>.<host>.<pid>.<counter><suffix>``, the
    counter of 6 digits: TensorBoard reads a run's files in the order of their names, so files
    a process made in one second (a writer reopened after close) are read in the order made."""
    return (
        f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
        f"{os.getpid()}.{next(_file_counter):06d}{suffix}"
    )


def os_error(exc: OSError, what: str, after: str = "") -> OSError:
    """``OSError(exc.errno, "<what>: <exc.strerror><after>")`` caused by ``exc``."""
    error = OSError(exc.errno, f"{what}: {exc.strerror or exc}{after}")
    error.__cause__ = exc
    return error


def _create(logdir: str, suffix: str) -> tuple[str, int, int]:
    """Create a new event file in ``logdir`` (made if missing) holding its file-version record.

    Returns:
        Its path, a descriptor open for appending, and its size.

    Raises:
        OSError: the folder or the file could not be made, or the first record not written
            (no file is left behind).
    """
    make_folders(logdir)  # 0755, whatever the umask
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


class EventFile:
    """A new event file in ``logdir``, records appended in batches.

    Raises:
        OSError: the file could not be created (no file is left behind).
    """

    def __init__(self, logdir: str, suffix: str = "") -> None:
        self.suffix = suffix  # of the file name, for a file made anew after a deletion
        self.path, self.fd, self.size = _create(logdir, suffix)  # size: bytes of whole records
        self._batch = bytearray()
        self._ends: list[int] = []  # end offset of each record in the batch

    @property
    def batch_bytes(self) -> int:
        """Bytes framed and not yet written."""
        return len(self._batch)

    def append(self, data: bytes) -> None:
        """Frame a serialized Event into the unwritten batch."""
        self._batch += encode_record(data)
        self._ends.append(len(self._batch))

    def extend(self, events: list[bytes]) -> None:
        """:meth:`append` each of many serialized Events (a burst of scalars) in one loop."""
        batch, ends = self._batch, self._ends
        for data in events:
            batch += encode_record(data)
            ends.append(len(batch))

    def write_batch(self) -> None:
        """Write the batch; the file ends at a whole record whatever happens.

        Raises:
            OSError: the write failed; the records not wholly written are dropped (the
                message says how many) and the file is cut back to its last whole record.
        """
        if not self._batch:
            return
        # An immutable copy: slices handed to os.write (or kept alive by a traceback) must not
        # pin the batch buffer, which is cleared and refilled.
        data = bytes(self._batch)
        self._batch.clear()
        written = 0
        deleted = None
        error = None
        try:
            if self._was_deleted():
                deleted = self.path
                self._replace()
            while written < len(data):
                written += os.write(self.fd, memoryview(data)[written:])
        except OSError as exc:
            error = self._recover(exc, written, deleted)
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
        if error is not None:
            raise error

    def write_parts(self, parts: list[bytes]) -> None:
        """Write the batch, then one record made of ``parts`` straight from them (``os.writev``,
        never joined: a large image record is not copied); whole or not at all.

        Raises:
            OSError: as :meth:`write_batch`; the file is cut back to its last whole record.
        """
        self.write_batch()
        pieces = [memoryview(piece) for piece in frame_parts(parts)]
        total = sum(len(piece) for piece in pieces)
        written = 0
        deleted = None
        try:
            if self._was_deleted():
                deleted = self.path
                self._replace()
            while pieces:
                done = os.writev(self.fd, pieces[:_IOV_MAX])
                written += done
                while pieces and done >= len(pieces[0]):
                    done -= len(pieces.pop(0))
                if done:
                    pieces[0] = pieces[0][done:]
        except OSError as exc:
            self._ends = [total]  # the one record: kept only if wholly written
            try:
                error = self._recover(exc, written, deleted)
            finally:
                self._ends = []
            raise error from exc
        self.size += written

    def sync(self) -> None:
        """``os.fsync`` the file. Raises OSError naming it."""
        try:
            os.fsync(self.fd)
        except OSError as exc:
            raise os_error(exc, f"gpu_summary could not sync {self.path}")  # noqa: B904 - its cause is set

    def close(self) -> None:
        """Sync (best effort) and close the descriptor. Raises OSError if the close fails."""
        try:
            os.fsync(self.fd)
        except OSError:
            pass
        os.close(self.fd)

    def abandon(self) -> None:
        """Close this process's descriptor without writing (a forked child's copy)."""
        try:
            os.close(self.fd)
        except OSError:
            pass

    def _was_deleted(self) -> bool:
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

    def _replace(self) -> None:
        """Go on in a new file in the same folder (made again if need be)."""
        path, fd, size = _create(os.path.dirname(self.path), self.suffix)
        try:
            os.close(self.fd)
        except OSError:
            pass
        self.path, self.fd, self.size = path, fd, size

    def _recover(self, exc: OSError, written: int, deleted: str | None) -> OSError:
        """Cut the file back to its last whole record; the error to report."""
        if deleted is not None and deleted == self.path:  # no new file could be made
            return os_error(
                exc,
                f"gpu_summary: the event file {deleted} was deleted while open and no new one "
                "could be made",
                f"; {len(self._ends)} record(s) were dropped",
            )
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
        return os_error(
            exc,
            f"gpu_summary could not write to {self.path}",
            f"; {dropped} record(s) were dropped and the file ends at its last whole record",
        )


def write_event_file(logdir: str, events: list[bytes]) -> str:
    """A whole new event file in ``logdir`` (made if missing) holding ``events``; its path.

    Raises:
        OSError: the folder or the file could not be made or written (no partial record).
    """
    file = EventFile(logdir)
    try:
        file.extend(events)
        file.write_batch()
    finally:
        file.close()
    return file.path
