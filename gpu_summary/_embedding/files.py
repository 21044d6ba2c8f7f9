"""Embeddings on disk: the Projector's files of one run directory, written whole or not at all.

:class:`ProjectorFiles` owns ``projector_config.pbtxt`` of one run directory. Each embedding's
files go to ``<run>/<step>/<tag>/`` first (torch's folders), each by
write-to-temporary-then-rename, and only then is the config rewritten (also atomically) to list
it: a reader (TensorBoard, polling) sees the old config or the new one, and every file the
config names is complete. They are written on the calling thread (``add_embedding``'s, the seed
``Projector``'s) and are on disk when the call returns; a run removed while they are written
stays removed.
Embeddings listed by other writers (other processes, a seed Projector) in the same directory
are kept, under a lock; one with the same name is replaced.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

import numpy as np

from gpu_summary.proto import projector_config_pb2

try:
    import fcntl
except ImportError:  # not on Windows: threads only
    fcntl = None
from gpu_summary._embedding import projector_format as projector_files
from gpu_summary._events import safe_files
from gpu_summary.summaries import image as image_summaries


class ProjectorFiles:
    """The Projector's config and assets in one run directory.

    Safe across threads and processes: the config is read, changed and rewritten under a
    lock — a thread lock, and ``flock`` on ``.projector_config.lock`` in the run directory (on
    systems with ``fcntl``) — so writers in several processes (or a seed ``Projector`` beside a
    ``SummaryWriter``) each add their embeddings without dropping the others'.
    """

    LOCK_FILE = ".projector_config.lock"

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _locked(self, run: int) -> Iterator[None]:
        with self._lock:
            if fcntl is None:
                yield
                return
            fd = safe_files.open_lock(run, self.LOCK_FILE, self.run_dir)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # releases the lock

    def _load(self, run: int) -> projector_config_pb2.ProjectorConfig:
        """The config on disk now (another process may have changed it); empty if none or
        unreadable."""
        try:
            text = safe_files.read_at(run, projector_files.CONFIG_FILE).decode("utf-8")
            return projector_files.read_config(text)
        except (OSError, ValueError, UnicodeDecodeError):
            return projector_config_pb2.ProjectorConfig()

    def write(
        self,
        tag: str,
        step: int,
        matrix: np.ndarray,
        labels: list[tuple[str, ...]] | None,
        header: tuple[str, ...] | None,
        thumbnails: np.ndarray | None,
        tensor_format: str = "tsv",
    ) -> projector_config_pb2.EmbeddingInfo | None:
        """Write one embedding's files, then list it in the config, before returning.

        The run folder is made when missing (as torch's writer makes it); once writing has
        begun it is never made again: a run removed (or moved away) meanwhile takes this
        embedding with it, and the call writes nothing more and leaves no temporary file.

        Args:
            tag, step: name it ``<tag>:<step>`` in the dashboard.
            matrix: N×D float32.
            labels: N rows of str cells (same count each), or None.
            header: column names for several columns.
            thumbnails: N uint8 NHWC sample thumbnails for the sprite, or None.
            tensor_format: ``"tsv"``, torch's ``tensors.tsv`` (the config then has no
                ``tensor_shape``, as torch's: the plugin counts the rows); ``"bytes"``, raw
                float32 ``tensors.bytes`` with its ``tensor_shape``.

        Returns:
            The config's entry, or None when the run was removed while it was written.

        Raises:
            OSError: a file could not be written (a link or a file where a folder of the run
                should be, a full disk); the config then does not list the embedding.
        """
        folder = projector_files.asset_folder(tag, step)
        info = projector_config_pb2.EmbeddingInfo(
            tensor_name=projector_files.tensor_name(tag, step)
        )
        if tensor_format == "bytes":
            info.tensor_shape.extend(matrix.shape)
        data, name = projector_files.tensor_file(matrix, tensor_format)
        info.tensor_path = f"{folder}/{name}"
        files = [(info.tensor_path, data)]
        if labels is not None:
            info.metadata_path = f"{folder}/metadata.tsv"
            files.append((info.metadata_path, projector_files.metadata_tsv(labels, header)))
        if thumbnails is not None:
            info.sprite.image_path = f"{folder}/sprite.png"
            sprite = image_summaries.encode_png(projector_files.sprite(thumbnails))
            files.append((info.sprite.image_path, sprite))
            info.sprite.single_image_dim.extend([thumbnails.shape[2], thumbnails.shape[1]])
        run = safe_files.open_folder(self.run_dir)
        try:
            for relative, data in files:
                safe_files.write_at(run, relative, data, self.run_dir)
            with self._locked(run):
                config = self._load(run)
                kept = [e for e in config.embeddings if e.tensor_name != info.tensor_name]
                del config.embeddings[:]
                config.embeddings.extend(kept)
                config.embeddings.append(info)
                text = projector_files.config_text(config).encode()
                safe_files.write_at(run, projector_files.CONFIG_FILE, text, self.run_dir)
        except safe_files.FolderRemoved:
            return None  # the run went away: so does this embedding, nothing made again
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise OSError(
                exc.errno,
                f"embedding {info.tensor_name!r} could not be written{where}: "
                f"{exc.strerror or exc}; the config does not list it",
            ) from exc
        finally:
            os.close(run)
        return info
