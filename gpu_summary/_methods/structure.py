"""A model's structure and its embeddings: the Graphs and Projector dashboards."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_summary._core import arguments
from gpu_summary._writer import embedding, graph
from gpu_summary._writer.state import WriterState


class StructureMethods:
    """Graph and embedding methods of :class:`gpu_summary.SummaryWriter`."""

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
        global_step = arguments.either_step(global_step, step)
        embedding.log_embedding(self._state, mat, metadata, label_img, tag, global_step,
                                metadata_header,
                                label_img_format=label_img_format, reduce=reduce,
                                components=components, tensor_format=tensor_format)  # fmt: skip

    def add_graph(
        self,
        model: object,
        input_to_model: object = None,
        verbose: bool = False,
        use_strict_trace: bool = True,
        *,
        walltime: float | None = None,
    ) -> None:
        """Log a model's structure for TensorBoard's Graphs dashboard and the seed's viewer.

        Args:
            model: Keras-style layer dicts (the seed's structure graph), a ``torch.nn.Module``
                (its torch.fx graph, or its module tree) or an ONNX ``ModelProto``.
            input_to_model: a torch module's example input (a tensor or a tuple of the
                forward arguments); the graph then carries every output shape.
            verbose, use_strict_trace: torch's, accepted (the graph comes from torch.fx).
            walltime: seconds since the epoch; default now.

        Writes a GraphDef event and ``<logdir>/graph/structure_graph.json`` (replaced
        atomically by later calls).

        Raises:
            TypeError: a model of another kind. ValueError: a malformed model, or an
                ``input_to_model`` it fails on (then also a RuntimeError, as torch's raises).
                Nothing is written then.
        """
        graph.log_graph(self._state, model, input_to_model, walltime)

    def add_onnx_graph(
        self,
        onnx_model_file: object = None,
        *,
        walltime: float | None = None,
        prototxt: object = None,
    ) -> None:
        """Log an ONNX model's graph (the Graphs dashboard), as :meth:`add_graph` logs a
        ``ModelProto``.

        Args:
            onnx_model_file: the path of a ``.onnx`` file (tensorboardX's name; ``prototxt=``
                is torch's). Needs the ``onnx`` package.
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a path. FileNotFoundError: no such file. ValueError: not an ONNX
                model. ImportError: onnx is not installed.
        """
        if prototxt is not None and onnx_model_file is not None:
            raise TypeError("give the model's path once: onnx_model_file and prototxt are the "
                            "same argument (tensorboardX's and torch's names)")  # fmt: skip
        path = onnx_model_file if prototxt is None else prototxt
        graph.log_onnx_graph(self._state, path, walltime)
