"""``add_embedding``: the matrix (or its principal components) reduced where it lives, the
labels and sprite prepared on the caller's thread, and the Projector's files written there
too, before the call returns (as torch's writer does)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._embedding import arguments as embedding_args
from gpu_summary._embedding import projector_format as projector_files
from gpu_summary._writer.state import WriterState


class EmbeddingMethods:
    """The embedding method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_embedding(
        self,
        mat: object,
        metadata: object = None,
        label_img: object = None,
        global_step: int | None = None,
        tag: str = "default",
        metadata_header: Sequence[str] | None = None,
        *,
        step: int | None = None,
        label_img_format: str | None = None,
        reduce: str | None = None,
        components: int = 10,
        tensor_format: str = "tsv",
    ) -> None:
        """Log points for TensorBoard's Projector (PCA, t-SNE, UMAP views of N vectors).

        Args:
            mat: N×D array or tensor (N×d1×d2... is flattened per row), host or device.
            metadata: N labels (str or numbers), or N rows of several columns; a list, an
                array or a tensor. Tabs, newlines and backslashes in labels are escaped.
            label_img: one image per point for the sprite (N×C×H×W, N×H×W×C or N×H×W; as
                in :meth:`add_image`), shrunk on its backend to fit 8192 px a side.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            tag: the embedding's name; the dashboard lists ``<tag>:<step>``.
            metadata_header: column names of rows of several columns (default ``column_i``).
            label_img_format: ``"NCHW"``, ``"NHWC"`` or ``"NHW"``; default: NCHW when the
                second dimension is 1, 3 or 4, else NHWC.
            reduce: ``"pca"`` stores only the projection on the top ``components`` principal
                axes, computed on the tensor's backend (N×components floats on disk).
            components: principal axes kept by ``reduce="pca"``.
            tensor_format: ``"tsv"`` (default), torch's ``tensors.tsv``: each value as the text
                of its exact float32 (torch's own text for a float32 ``mat``); ``"bytes"``, our
                compact ``tensors.bytes``, raw little-endian float32 with its ``tensor_shape`` in
                the config (a fifth of the text's size, read faster by the Projector) — still
                TSV when those bytes would decode as UTF-8 (all zeros), which the Projector
                would read as text.

        Files go where torch's writer puts them, ``<logdir>/<step, 5 digits>/<tag>/``
        (``tensors.tsv``, ``metadata.tsv``, ``sprite.png``; a tag character other than
        letters, digits, ``-``, ``_``, ``.`` percent-encoded, where torch writes most as
        given), then are listed in ``<logdir>/projector_config.pbtxt`` with torch's entries,
        all before the call returns, as torch's: a script may read or move them right away
        (no ``flush()``). A second call at the same step and tag overwrites the files, as
        torch's, and replaces the entry (torch lists it twice). A run folder removed while
        they are written stays removed (nothing is made again, no temporary file is left).

        .. note::
            Synchronises with the device for a device tensor, as torch's ``.cpu()`` would: the
            thumbnails and ``reduce="pca"`` run on the device, then the call waits for the
            copies of their compact results (and of the matrix or the projection, and tensor
            labels) — CUDA events on the producer's stream, not the whole device — and writes
            the files on the calling thread. Only the N×D (or N×components) float32 points, the
            labels and the thumbnails cross to the host; no other call of the writer waits.

        Raises:
            TypeError: a non-numeric ``mat``/``label_img``, a label of another type.
            ValueError: an empty ``mat``, or one over 2 GiB as float32 (the Projector's file);
                metadata or images whose count is not N, more than 2**24 labels; rows of
                unequal length; a bad format or ``reduce``; ``reduce="pca"`` of a ``mat``
                holding NaN or ±Inf; a ``tensor_format`` other than ``"tsv"``/``"bytes"``;
                the writer is closed. Nothing is listed then.
            OSError: a file could not be written (a full disk, a link or a file where a folder
                of the run should be); the config does not list the embedding then.
        """
        state = self._state
        tag, step, _ = state.begin(tag, arguments.either_step(global_step, step), None)
        tensor_format = projector_files.check_tensor_format(tensor_format)
        if reduce is not None and reduce != "pca":
            raise ValueError(f"reduce must be None or 'pca', got {reduce!r}")
        if reduce is not None:
            components = arguments.check_positive_int(
                components, "components", "keep at least one axis, e.g. components=3"
            )
        backend, matrix = backend_for(mat, "mat")
        shape = tuple(getattr(matrix, "shape", ()))
        if len(shape) == 0 or shape[0] == 0 or 0 in shape:
            raise ValueError(f"mat must be N×D with N, D >= 1, got shape {shape}")
        n = shape[0]
        embedding_args.check_points(shape, "mat")
        labels = embedding_args.labels(metadata, n)
        header = None
        if labels is not None:
            columns = labels[1]
            if metadata_header is not None:
                header = tuple(embedding_args.header(metadata_header, columns))
            elif columns > 1:
                header = tuple(f"column_{i}" for i in range(columns))
        if not state.writes_files:
            return  # rank 0's embedding only
        thumbnails = None
        if label_img is not None:
            thumbnails = embedding_args.sprite_thumbnails(label_img, label_img_format, n)
        pending = backend.embedding(matrix, components if reduce else None)
        step = state.resolve_step(tag, step)
        # Sync point (the call's documented one): the files are on disk when it returns, as
        # torch's are. Everything was launched above; each wait is for that result's own copy to
        # the host (a CUDA event on the producer's stream, not the whole device), in launch order.
        rows = None if labels is None else embedding_args.label_rows(labels[0].result())
        images = None if thumbnails is None else thumbnails.result()
        points = pending.result()
        if reduce and not np.isfinite(points).all():
            raise ValueError(
                "mat holds NaN or ±Inf, which principal components cannot place; log it without "
                "reduce='pca', or check it first with add_anomaly"
            )
        state.projector.write(tag, step, points, rows, header, images, tensor_format)
