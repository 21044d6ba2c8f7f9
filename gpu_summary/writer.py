"""SummaryWriter: validate on the caller's thread, reduce with the array's backend, queue the rest.

Each ``add_*`` call checks its arguments (raising before anything is queued, so a bad call
leaves the file and the writer as they were), starts the reduction on the backend that owns the
data, and queues a job; the writer thread waits for the reduction's result, builds the Summary
and writes it. On the NumPy backend the reduction itself runs on the caller's thread; on a
device it is only launched there.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence

from gpu_summary._core import arguments
from gpu_summary._core.anomaly import AnomalyHandle, AnomalyReport
from gpu_summary._events.jobs import Job
from gpu_summary._writer import (
    anomaly,
    embedding,
    graph,
    histograms,
    images,
    jobs,
    messages,
    scalars,
)
from gpu_summary._writer.state import WriterState, default_logdir
from gpu_summary.monitor import GpuMonitor

_PLAIN_NUMBERS = (float, int)


class SummaryWriter:
    """Writes TensorBoard event files from host or device tensors.

    Args:
        logdir: directory for the event file (created if missing); default
            ``runs/<date>_<host>``. Point ``tensorboard --logdir`` at it or at a parent.
        flush_secs: longest time, in seconds, a logged record waits before it is written to
            the file, so TensorBoard shows it without ``flush()``.
        max_queue: most summaries waiting for the writer thread; a caller that outruns it
            blocks instead of growing memory.
        filename_suffix: appended to the event file's name.
        max_queue_bytes: most bytes of pending results (image thumbnails mostly) waiting.
        on_anomaly: ``callable(report)`` called on the writer thread with the
            :class:`~gpu_summary.AnomalyReport` of each ``add_anomaly`` call that found
            anything (NaN, ±Inf, values out of bounds), so a loop can react without a sync
            per step. An exception it raises is raised from the next call on this writer.
        distributed: ``"torch"``, ``"mpi"``, a ``torch.distributed`` process group or an
            ``mpi4py`` communicator: every rank creates a writer and calls the same methods in
            the same order with its shard; rank 0 alone writes files, the exact merge of all
            shards for histograms, scalars (``add_scalar(reduce=...)``) and anomaly counts,
            its own data for images, text, hparams, graphs and embeddings (see
            ``gpu_summary.distributed``). Other ranks create no files.

    Steps: ``step=None`` logs at one more than the last step this writer logged under the same
    tag (0 the first time).

    Thread safety: all methods may be called from several threads. Errors raised on the writer
    thread (I/O errors such as a full disk, a summary that could not be built) are raised
    from the next ``add_*``, ``flush()`` or ``close()`` call, once.
    """

    def __init__(
        self,
        logdir: str | os.PathLike | None = None,
        flush_secs: float = 1.0,
        max_queue: int = 1024,
        filename_suffix: str = "",
        *,
        max_queue_bytes: int = 256 << 20,
        on_anomaly: Callable[[AnomalyReport], object] | None = None,
        distributed: object = None,
    ) -> None:
        logdir = default_logdir() if logdir is None else arguments.check_logdir(logdir)
        arguments.check_writer_options(
            flush_secs, max_queue, max_queue_bytes, filename_suffix, on_anomaly
        )
        self._state = WriterState(logdir, flush_secs, max_queue, filename_suffix,
                                  max_queue_bytes, on_anomaly, distributed)  # fmt: skip

    # -- properties ---------------------------------------------------------------------------

    @property
    def logdir(self) -> str:
        """The directory this writer writes into."""
        return self._state.logdir

    def get_logdir(self) -> str:
        """The directory this writer writes into (as torch's SummaryWriter names it)."""
        return self._state.logdir

    @property
    def file_path(self) -> str | None:
        """Path of the event file this process writes (None on ranks other than 0)."""
        return self._state.events.path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (every ``add_*`` then raises ValueError)."""
        return self._state.events.closed

    @property
    def rank(self) -> int:
        """This process's rank in the writer's group (0 without ``distributed``)."""
        return self._state.rank

    # -- summaries ----------------------------------------------------------------------------

    def add_scalar(
        self,
        tag: str,
        value: object,
        step: int | None = None,
        walltime: float | None = None,
        reduce: str = "mean",
    ) -> None:
        """Log one number.

        Args:
            tag: series name, e.g. ``"loss/train"``.
            value: a Python number, or a one-element array or tensor. NaN and ±Inf are logged
                as they are; magnitudes beyond float32 become ±Inf.
            step: global step (int64); None for one more than this tag's last step.
            walltime: seconds since the epoch; default now.
            reduce: with ``distributed``, how the ranks' values combine: ``"mean"``,
                ``"sum"``, ``"min"``, ``"max"``, or ``"rank0"`` (rank 0's value, no
                collective). Ignored otherwise.

        Raises:
            TypeError: ``value`` is not numeric; ``tag`` is not a str.
            ValueError: ``value`` has more than one element; an unknown ``reduce``; the
                writer is closed.
        """
        # The hot path (a str tag, a Python number, an int step) checks just that much.
        state = self._state
        if (
            type(value) in _PLAIN_NUMBERS
            and state.aggregation is None
            and type(tag) is str
            and tag
            and tag.isascii()  # a flag of the str: others are checked for UTF-8 below
            and walltime is None
            and (
                step is None
                or (type(step) is int and arguments.INT64_MIN <= step <= arguments.INT64_MAX)
            )
        ):
            try:
                number = float(value)
            except OverflowError:  # an int beyond float64
                number = math.copysign(math.inf, value)
            step = state.resolve_step(tag, step)
            state.events.add(Job(jobs.SCALAR, (tag, number, step, time.time())))
            return
        scalars.log_scalar(state, tag, value, step, walltime, reduce)

    def add_histogram(
        self,
        tag: str,
        values: object,
        step: int | None = None,
        bins: str | int | Sequence[float] = "tensorboard",
        walltime: float | None = None,
    ) -> None:
        """Log the distribution of a tensor's values.

        Args:
            tag: series name.
            values: array or tensor of any shape and numeric dtype (bool, int, float).
            step: global step; None for one more than this tag's last step.
            bins: ``"tensorboard"`` (default): TensorBoard's fixed ladder of 1551 buckets
                (±1e-12 .. ±1e20, 10% apart), which merges exactly across steps and ranks.
                An int n: n even buckets over [min, max] of the finite values. A sequence of
                strictly increasing edges e_0 < ... < e_k: buckets [e_i, e_i+1), plus one
                below e_0 and one from e_k up, so every finite value is counted.
            walltime: seconds since the epoch; default now.

        NaN and ±Inf are never put in buckets or moments; ``num``, ``sum`` and
        ``sum_squares`` cover the finite values.

        Raises:
            TypeError: non-numeric ``values`` or ``bins`` of the wrong type.
            ValueError: ``bins`` <= 0, unsorted or non-finite edges; the writer is closed.
        """
        histograms.log_histogram(self._state, tag, values, step, bins, walltime)

    def add_histograms(
        self,
        named_tensors: object,
        step: int | None = None,
        prefix: str = "",
        walltime: float | None = None,
        *,
        check_nonfinite: bool = False,
    ) -> None:
        """Log the ladder histogram of many tensors at once (e.g. every parameter or gradient).

        Args:
            named_tensors: a mapping ``{name: tensor}`` or an iterable of ``(name, tensor)``
                pairs, e.g. ``model.named_parameters()`` or
                ``((n, p.grad) for n, p in model.named_parameters())``; a None tensor (a
                parameter without a gradient) is skipped.
            step: global step; None for one more than each tag's last step.
            prefix: prepended to every name to make its tag, e.g. ``"grad/"``.
            walltime: seconds since the epoch; default now.
            check_nonfinite: also log ``<prefix>nonfinite``, the number of NaN/±Inf over all
                the tensors (free: the histograms count them), and when it is not 0 call the
                writer's ``on_anomaly`` with a report naming the tensors that hold them, the
                first one as ``tag`` (no sync: on the writer thread).

        Device tensors of one device and dtype are reduced together in **one** kernel launch
        over a device-side table of (address, length, stride) — the multi-tensor pattern of
        PyTorch's ``_foreach`` kernels — with one asynchronous copy of every result; mixed
        dtypes and devices make one launch per group. Host arrays are reduced one by one. The
        histograms equal those of per-tensor ``add_histogram(prefix + name, tensor, step)``
        calls (default buckets), written as one event per step. A distributed writer merges
        all of them with one pair of collectives per call.

        Raises:
            TypeError: ``named_tensors`` is not a mapping or pairs; a name that is not a str;
                non-numeric data.
            ValueError: no tensor at all; an empty name; the writer is closed.
        """
        histograms.log_histograms(self._state, named_tensors, step, prefix, walltime,
                                  check_nonfinite=check_nonfinite)  # fmt: skip

    def add_image(
        self,
        tag: str,
        img: object,
        step: int | None = None,
        dataformats: str = "HWC",
        max_size: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log one image.

        Args:
            tag: series name.
            img: uint8 (0..255), float (0..1, clipped; NaN → 0) or bool array, with 1 (gray),
                3 (RGB) or 4 (RGBA) channels.
            step: global step; None for one more than this tag's last step.
            dataformats: ``"HWC"``, ``"CHW"`` or ``"HW"`` (gray).
            max_size: if given, images whose longer side exceeds it are shrunk to it by area
                averaging (aspect kept) before they leave the backend.
            walltime: seconds since the epoch; default now.
        """
        images.log_images(self._state, tag, img, step, dataformats, max_size, walltime, "img")

    def add_images(
        self,
        tag: str,
        imgs: object,
        step: int | None = None,
        dataformats: str = "NHWC",
        max_size: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log a batch of images under one tag and step (TensorBoard shows each sample).

        Args:
            tag: series name.
            imgs: a batch as in :meth:`add_image`, with a leading sample axis.
            step: global step; None for one more than this tag's last step.
            dataformats: ``"NHWC"``, ``"NCHW"`` or ``"NHW"`` (gray).
            max_size: as in :meth:`add_image`; with it, the batch is never copied whole.
            walltime: seconds since the epoch; default now.
        """
        images.log_images(self._state, tag, imgs, step, dataformats, max_size, walltime, "imgs")

    def add_text(
        self,
        tag: str,
        text_string: str | Sequence[str],
        step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log text, rendered by TensorBoard as Markdown.

        Args:
            tag: series name.
            text_string: a str, or a list of str (shown as a one-column table).
            step: global step; None for one more than this tag's last step.
            walltime: seconds since the epoch; default now.
        """
        messages.log_text(self._state, tag, text_string, step, walltime)

    def add_summary(
        self, summary: object, step: int | None = None, walltime: float | None = None
    ) -> None:
        """Write a ready-made ``Summary`` protobuf message as one event (the seed's
        ``summary.pb``; tensorboardX's ``FileWriter.add_summary``).

        Args:
            summary: a ``Summary`` message: gpu_summary's, TensorBoard's or tensorboardX's
                (any message named ``Summary`` is read through its wire format).
            step: global step; None for one more than the last step of its first value's tag.
            walltime: seconds since the epoch; default now.

        A Summary holding ``_hparams_/session_start_info`` starts an hparams session: its
        ``session_end_info`` is written when the writer closes, as after ``add_hparams``.

        Raises:
            TypeError: not a Summary message.
            ValueError: a Summary with no values, or a value with an empty tag.
        """
        messages.log_summary(self._state, summary, step, walltime)

    def add_anomaly(
        self,
        tag: str,
        values: object,
        step: int | None = None,
        lower: float | None = None,
        upper: float | None = None,
        max_positions: int = 100,
        walltime: float | None = None,
    ) -> AnomalyHandle:
        """Check a tensor for NaN, ±Inf and values out of bounds, and log what was found.

        One reduction (on the device for device tensors, never syncing the caller) counts
        NaN, +Inf, -Inf, finite values ``< lower`` and finite values ``> upper`` (a non-finite
        value counts only as NaN/±Inf), keeps the first ``max_positions`` offending positions
        in C order, finds the exact quantiles 0, 5, 10, 25, 50, 75, 90, 95 and 100 % of the
        finite values (``numpy.quantile``'s linear method) and a heat map of the tensor laid
        out on a near-square grid. Logged under ``<tag>/anomaly/...`` and
        ``<tag>/quantile/...`` (see ``gpu_summary.summaries.anomaly``).

        Args:
            tag: the tensor's name, e.g. ``"grad/layer1.weight"``.
            values: array or tensor of any shape and numeric dtype.
            step: global step; None for one more than this tag's last step.
            lower, upper: optional bounds (finite numbers, ``lower <= upper``), compared
                in float64.
            max_positions: most offending positions reported (0 .. 100000).
            walltime: seconds since the epoch; default now.

        Returns:
            An :class:`~gpu_summary.AnomalyHandle`; ``.result()`` waits for and returns the
            :class:`~gpu_summary.AnomalyReport`. The writer's ``on_anomaly`` callback gets
            the same report without anyone waiting.

        Raises:
            TypeError: non-numeric ``values`` or bounds.
            ValueError: NaN or infinite bounds, ``lower > upper``, ``max_positions`` out of
                range, an empty tensor; the writer is closed.
        """
        return anomaly.log_anomaly(self._state, tag, values, step, lower, upper, max_positions,
                                   walltime)  # fmt: skip

    def add_embedding(
        self,
        mat: object,
        metadata: object = None,
        label_img: object = None,
        tag: str = "default",
        step: int | None = None,
        metadata_header: Sequence[str] | None = None,
        *,
        label_img_format: str | None = None,
        reduce: str | None = None,
        components: int = 10,
    ) -> None:
        """Log points for TensorBoard's Projector (PCA, t-SNE, UMAP views of N vectors).

        Args:
            mat: N×D array or tensor (N×d1×d2... is flattened per row), host or device.
            metadata: N labels (str or numbers), or N rows of several columns; a list, an
                array or a tensor. Tabs, newlines and backslashes in labels are escaped.
            label_img: one image per point for the sprite, N×C×H×W, N×H×W×C or N×H×W (uint8
                0..255, float 0..1 or bool; 1, 3 or 4 channels); thumbnails are made on the
                tensor's backend so the sprite fits 8192 px a side.
            tag: the embedding's name; the dashboard lists ``<tag>:<step>``.
            step: global step; None for one more than this tag's last step.
            metadata_header: column names when rows have several columns (default
                ``column_0, column_1, ...``); ignored for one column, which has no header.
            label_img_format: ``"NCHW"``, ``"NHWC"`` or ``"NHW"``; default: NCHW when the
                second dimension is 1, 3 or 4, else NHWC.
            reduce: ``"pca"`` to store only the points' projection on their top
                ``components`` principal axes, computed on the tensor's backend (the device
                for device tensors), so a large D costs N×components floats on disk.
            components: principal axes kept by ``reduce="pca"``.

        Files go to ``<logdir>/embeddings/<step>/<tag>/`` and are listed in
        ``<logdir>/projector_config.pbtxt`` once complete (written on the writer thread;
        after ``flush()`` they are there). Every (tag, step) stays listed.

        Raises:
            TypeError: a non-numeric ``mat``/``label_img``, a label of another type.
            ValueError: an empty ``mat``; metadata or images whose count is not N; rows of
                unequal length; a bad format or ``reduce``; the writer is closed.
        """
        embedding.log_embedding(self._state, mat, metadata, label_img, tag, step, metadata_header,
                                label_img_format=label_img_format, reduce=reduce,
                                components=components)  # fmt: skip

    def add_hparams(
        self, hparams: dict, metrics: dict | None = None, walltime: float | None = None
    ) -> None:
        """Log this run's hyperparameters (and metrics) for TensorBoard's HParams dashboard.

        Args:
            hparams: ``{key: value}``; a key is a str (any str, bool or number value), an
                :class:`~gpu_summary.HParam` (its domain checks the value) or a
                :class:`~gpu_summary.Metric` (a metric, as in the seed's API). A bool stays a
                bool, a str a str; numbers are float64.
            metrics: ``{str or Metric: value or None}``: metrics the dashboard shows; a value
                is logged now as a scalar under the metric's name (step: one more than the
                last), None only declares it. Log later values with ``add_scalar(name, ...)``.
            walltime: seconds since the epoch; default now.

        Writes ``_hparams_/experiment`` (hparams with types and domains, metrics) and
        ``_hparams_/session_start_info`` into this writer's own run, once; when the writer
        closes (``close()``, the end of a ``with`` block, exit), ``_hparams_/session_end_info``
        with status success, or failure if the ``with`` block raised. A later call must name
        the same hparams with the same values (and declared metrics); it logs metric values.

        Raises:
            TypeError: a key that is not str/HParam/Metric, a value of the wrong type.
            ValueError: a value outside its domain, a name used twice, or hparams that differ
                from this run's (one run is one session: use a new writer in its own logdir).
        """
        session = messages.log_hparams(self._state, hparams, metrics, walltime)
        for metric, value in session.metrics:
            if value is not None:
                self.add_scalar(metric.name, value, walltime=walltime)

    def add_graph(
        self, model: object, input_to_model: object = None, walltime: float | None = None
    ) -> None:
        """Log a model's structure for TensorBoard's Graphs dashboard and the seed's viewer.

        Args:
            model: a list of Keras-style layer dicts (``{"name", "class_name", "config",
                "inbound_nodes"}``, as in the seed's structure graph), a ``torch.nn.Module``
                (its torch.fx graph, or its module tree when it cannot be traced), or an ONNX
                ``ModelProto``.
            input_to_model: for a torch module, an example input (a tensor or a tuple of the
                forward arguments); the graph then carries every operation's output shapes.
            walltime: seconds since the epoch; default now.

        Writes a GraphDef into an event of this writer's file (the dashboard shows the latest)
        and ``<logdir>/graph/structure_graph.json`` (a Keras functional-model description,
        replaced atomically by later calls).

        Raises:
            TypeError: a model of another kind; a malformed layer.
            ValueError: two layers with one name, an input naming no layer, an
                ``input_to_model`` the model fails on. Nothing is written then.
        """
        graph.log_graph(self._state, model, input_to_model, walltime)

    def monitor_gpus(
        self, interval: float = 10.0, devices: list[int] | None = None, *, lenient: bool = False
    ) -> GpuMonitor:
        """Log NVML metrics of the GPUs every ``interval`` seconds until the writer closes
        (see :class:`~gpu_summary.GpuMonitor`); returns the monitor."""
        return GpuMonitor(self, interval, devices, lenient=lenient)

    # -- lifecycle ----------------------------------------------------------------------------

    def flush(self, fsync: bool = False) -> None:
        """Block until everything logged so far is in the event file (distributed: and every
        collective queued so far has run, on this rank). The OS then has it: it survives the
        process being killed. ``fsync=True`` also waits for the storage device (``os.fsync``),
        so that it survives a power loss; ``close()`` always does."""
        self._state.flush(fsync)

    def close(self) -> None:
        """Flush and close the file; later ``add_*`` calls raise ValueError. Idempotent."""
        self._state.close()

    def __reduce__(self) -> tuple:
        raise TypeError(
            "a SummaryWriter cannot be sent to another process (pickled); create one in each "
            "process — each writes its own file — or use SummaryWriter(..., distributed=...)"
        )

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self._state.fail_session()
        self.close()
