"""Files of a run's own (the Projector's assets and config, the graph, the seed's projector
files) written inside the run folder and nowhere else.

A symbolic link inside the run — where a folder (an embedding's ``<step>/<tag>/``, ``graph/``,
``projector/``) or a file is expected — is never followed: folders are walked by descriptor,
each opened with ``O_NOFOLLOW`` (a link there is refused with ``OSError``), files are written
through a temporary name no one can guess, created ``O_EXCL | O_NOFOLLOW``, then renamed over
the target (a link at the target is replaced, not written through). The run folder itself may
be a link (a logdir on another disk): that one is the user's choice. Folders are made 0755 and
files 0644 whatever the umask.
"""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Iterable

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NO_LINK = getattr(os, "O_NOFOLLOW", 0)


def make_folders(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)``, every folder it makes 0755 whatever the umask
    (``os.makedirs`` leaves a umask of 000 making them writable by everyone)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(os.path.abspath(path))
    if parent != path:
        make_folders(parent)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        if not os.path.isdir(path):
            raise
        return
    os.chmod(path, 0o755)


class FolderRemoved(FileNotFoundError):
    """A folder was removed (``rm -rf`` of the run) while a file was being written into it:
    nothing was made again there and no temporary file is left."""


def open_folder(root: str) -> int:
    """A descriptor of the folder ``root``, made (0755) when missing; the caller closes it.
    Files written through it (:func:`write_at`) never make ``root`` again: if it is removed
    meanwhile, they raise :class:`FolderRemoved`."""
    make_folders(root)
    return os.open(root, _FOLDER)


def _removed(fd: int) -> bool:
    """Whether the folder open as ``fd`` has lost its last link (asked only after ENOENT: some
    file systems report no links for live files)."""
    try:
        return os.fstat(fd).st_nlink == 0
    except OSError:
        return True


def folder(root: str, parts: list[str]) -> int:
    """A descriptor of the folder ``root/parts[0]/parts[1]/...``, each part made (0755) when
    missing; the caller closes it.

    Raises:
        OSError: a part is a symbolic link or not a folder (ELOOP/ENOTDIR, naming it), or the
            folder cannot be made.
    """
    fd = open_folder(root)
    try:
        return folder_at(fd, parts, root)
    finally:
        os.close(fd)


def folder_at(base: int, parts: list[str], root: str) -> int:
    """:func:`folder` below the open folder ``base`` (named ``root`` in errors), which is
    never made again; a new descriptor the caller closes.

    Raises:
        FolderRemoved: ``base`` or a part was removed meanwhile.
        OSError: as :func:`folder`.
    """
    fd = os.dup(base)
    path = root
    try:
        for part in parts:
            path = os.path.join(path, part)
            try:
                os.mkdir(part, 0o755, dir_fd=fd)
                made = True
            except FileExistsError:
                made = False
            except FileNotFoundError:
                if _removed(fd):
                    raise FolderRemoved(errno.ENOENT, "removed while written", path) from None
                raise
            try:
                child = os.open(part, _FOLDER | _NO_LINK, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise OSError(
                        exc.errno,
                        f"{path} is a symbolic link or a file, not a folder of the run; "
                        "gpu_summary writes its files inside the run only: remove it",
                    ) from None
                if exc.errno == errno.ENOENT and _removed(fd):  # removed since its mkdir
                    raise FolderRemoved(errno.ENOENT, "removed while written", path) from None
                raise
            os.close(fd)
            fd = child
            if made:
                os.fchmod(fd, 0o755)  # whatever the umask
    except BaseException:
        os.close(fd)
        raise
    return fd


def write(root: str, relative: str, data: bytes) -> None:
    """Write ``root/relative`` (forward slashes) whole: a reader sees the old file or the new
    one, never a part; no link below ``root`` is followed (see the module docstring).

    Raises:
        OSError: a folder on the way is a link or a file, or the write failed (no temporary
            file is left behind).
    """
    fd = open_folder(root)
    try:
        write_at(fd, relative, data, root)
    finally:
        os.close(fd)


def write_at(base: int, relative: str, data: bytes | Iterable[bytes], root: str = "") -> None:
    """:func:`write` below the open folder ``base`` (named ``root`` in errors), which is never
    made again. ``data``: the bytes, or an iterable of chunks of them (a large file streamed).

    Raises:
        FolderRemoved: ``base`` or a folder below it was removed meanwhile (no temporary file
            is left, nothing is made again).
        OSError: as :func:`write`.
    """
    *parts, name = relative.split("/")
    fd = folder_at(base, parts, root)
    temporary = f".{name[:64]}.{secrets.token_hex(8)}.tmp"
    try:
        out = os.open(
            temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_LINK, 0o644,
            dir_fd=fd,
        )  # fmt: skip
        try:
            os.fchmod(out, 0o644)  # whatever the umask
            for chunk in [data] if isinstance(data, bytes | bytearray | memoryview) else data:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
        finally:
            os.close(out)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)
    except BaseException as exc:
        try:
            os.unlink(temporary, dir_fd=fd)
        except OSError:
            pass
        if isinstance(exc, FileNotFoundError) and _removed(fd):
            path = os.path.join(root, relative)
            raise FolderRemoved(errno.ENOENT, "removed while written", path) from None
        raise
    finally:
        os.close(fd)


def create_new(root: str, relative: str) -> bool:
    """Create the empty file ``root/relative`` (0644) unless it exists; whether it was made
    (a link there counts as existing and is left alone)."""
    *parts, name = relative.split("/")
    fd = folder(root, parts)
    try:
        out = os.open(
            name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | _NO_LINK, 0o644, dir_fd=fd
        )
    except FileExistsError:
        return False
    finally:
        os.close(fd)
    os.fchmod(out, 0o644)
    os.close(out)
    return True


def open_lock(base: int, name: str, root: str = "") -> int:
    """A read-write descriptor of the lock file ``name`` in the open folder ``base`` (named
    ``root`` in errors), made when missing, never through a link (a link there: ``OSError``
    ELOOP).

    Raises:
        FolderRemoved: ``base`` was removed meanwhile (nothing is made again).
    """
    try:
        return os.open(name, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | _NO_LINK, 0o644, dir_fd=base)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(
                exc.errno, f"{os.path.join(root, name)} is a symbolic link; remove it"
            ) from None
        if exc.errno == errno.ENOENT and _removed(base):
            raise FolderRemoved(errno.ENOENT, "removed while written", root) from None
        raise


def read_at(base: int, name: str) -> bytes:
    """The file ``name`` in the open folder ``base``, never through a link."""
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | _NO_LINK, dir_fd=base)
    with os.fdopen(fd, "rb") as file:
        return file.read()
