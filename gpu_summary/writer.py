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
from gpu_summary._writer import anomaly, embedding, graph, histograms, images, messages, scalars
from gpu_summary._writer.file_writer import FileWriter
from gpu_summary._writer.jobs import SCALAR
from gpu_summary._writer.state import WriterState, default_logdir
from gpu_summary.monitor import GpuMonitor

_PLAIN_NUMBERS = (float, int)


class SummaryWriter:
    """Writes TensorBoard event files from host or device tensors.

    Args (torch's, in its order; then keywords):
        log_dir: directory for the event file (created if missing); default
            ``runs/<date>_<host><comment>``. ``logdir=`` (tensorboardX's name) is the same.
        comment: appended to the default folder's name (ignored when one is given).
        purge_step: a run restarted from a checkpoint at this step: TensorBoard discards what
            the earlier run logged at later steps (a ``SessionLog`` START event).
        max_queue: most summaries waiting for the writer thread (a caller then blocks).
        flush_secs: longest time, in seconds, a record waits before it is in the file, so
            TensorBoard shows it without ``flush()`` (1 s here; torch waits 120).
        filename_suffix: appended to the event file's name.
        write_to_disk: False writes nothing (tensorboardX's switch).
        max_queue_bytes: most bytes of pending results (image thumbnails mostly) waiting.
        on_anomaly: ``callable(report)``, on the writer thread, for each
            :class:`~gpu_summary.AnomalyReport` that found anything (no sync per step).
        distributed: ``"torch"``, ``"mpi"``, a process group or communicator: every rank
            makes the same calls with its shard; rank 0 writes the exact merge of histograms,
            scalars and anomaly counts, its own other kinds (``gpu_summary.distributed``).

    Steps: ``global_step`` (or ``step=``) None logs at one more than the last step of the tag.
    Thread-safe. Errors on the writer thread (a full disk, a summary that could not be built)
    are raised from the next ``add_*``, ``flush()`` or ``close()`` call, once.
    """

    def __init__(
        self,
        log_dir: str | os.PathLike | None = None,
        comment: str = "",
        purge_step: int | None = None,
        max_queue: int = 1024,
        flush_secs: float = 1.0,
        filename_suffix: str = "",
        *,
        logdir: str | os.PathLike | None = None,
        write_to_disk: bool = True,
        max_queue_bytes: int = 256 << 20,
        on_anomaly: Callable[[AnomalyReport], object] | None = None,
        distributed: object = None,
    ) -> None:
        folder = arguments.check_log_dir(log_dir, logdir, comment, default_logdir)
        purge_step = None if purge_step is None else arguments.check_step(purge_step)
        arguments.check_writer_options(
            flush_secs, max_queue, max_queue_bytes, filename_suffix, on_anomaly, write_to_disk
        )
        self._state = WriterState(folder, flush_secs, max_queue, filename_suffix, max_queue_bytes,
                                  on_anomaly, distributed, write_to_disk, purge_step)  # fmt: skip
        self.file_writer = FileWriter(self._state)

    @property
    def log_dir(self) -> str:
        """The directory this writer writes into (``logdir`` is the same)."""
        return self._state.logdir

    logdir = log_dir

    def get_logdir(self) -> str:
        """The directory this writer writes into (as torch's SummaryWriter names it)."""
        return self._state.logdir

    def _get_file_writer(self) -> FileWriter:  # torch's name: Lightning calls it
        """``file_writer``: torch's ``FileWriter`` methods on this writer's event file."""
        return self.file_writer

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

    def add_scalar(
        self,
        tag: str,
        scalar_value: object,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
        *,
        reduce: str = "mean",
        step: int | None = None,
    ) -> None:
        """Log one number.

        Args:
            tag: series name, e.g. ``"loss/train"``.
            scalar_value: a Python number, or a one-element array or tensor. NaN and ±Inf are
                logged as they are; magnitudes beyond float32 become ±Inf.
            global_step: global step (int64); None for one more than this tag's last step.
                ``step=`` is the same (every ``add_*`` takes either).
            walltime: seconds since the epoch; default now.
            new_style: write a tensor summary of the scalars plugin (as torch does) instead of
                ``simple_value``; ``double_precision`` keeps it float64 there.
            reduce: with ``distributed``, how ranks' values combine: ``"mean"``, ``"sum"``,
                ``"min"``, ``"max"`` or ``"rank0"`` (no collective).

        Raises:
            TypeError: a non-numeric value or a tag not a str. ValueError: more than one
                element, an unknown ``reduce``, the writer is closed.
        """
        # The hot path (a str tag, a Python number, an int step) checks just that much.
        value = scalar_value
        if step is not None:
            global_step = arguments.either_step(global_step, step)
        step = global_step
        state = self._state
        if (
            not new_style
            and type(value) in _PLAIN_NUMBERS
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
            state.events.add(Job(SCALAR, (tag, number, step, time.time())))
            return
        scalars.log_scalar(state, tag, value, step, walltime, reduce, new_style, double_precision)

    def add_histogram(
        self,
        tag: str,
        values: object,
        global_step: int | None = None,
        bins: str | int | Sequence[float] = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log the distribution of a tensor's values.

        Args:
            tag: series name.
            values: array or tensor of any shape and numeric dtype (bool, int, float).
            global_step: global step; None for one more than this tag's last step.
            bins: ``"tensorflow"`` (default; or ``"tensorboard"``): TensorBoard's ladder of
                1551 buckets, ±1e-12 .. ±1e20 10% apart (merges exactly); numpy's ``"auto"``,
                ``"fd"``, ... (host data: counts as ``numpy.histogram``); an int n: n even
                buckets over [min, max]; increasing edges e_0 < ... < e_k: [e_i, e_i+1), one
                bucket below e_0 and one from e_k up.
            walltime: seconds since the epoch; default now.
            max_bins: at most this many buckets written: neighbours merged, exactly (torch's).

        NaN and ±Inf are counted apart; buckets, ``num`` and the sums cover finite values.

        Raises:
            TypeError: non-numeric ``values`` or ``bins`` of the wrong type.
            ValueError: ``bins`` <= 0, unsorted or non-finite edges; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        histograms.log_histogram(self._state, tag, values, global_step, bins, walltime, max_bins)

    def add_histograms(
        self,
        named_tensors: object,
        global_step: int | None = None,
        prefix: str = "",
        walltime: float | None = None,
        *,
        check_nonfinite: bool = False,
        step: int | None = None,
    ) -> None:
        """Log the ladder histogram of many tensors at once (e.g. every parameter or gradient).

        Args:
            named_tensors: ``{name: tensor}`` or ``(name, tensor)`` pairs, e.g.
                ``model.named_parameters()``; a None tensor (no gradient) is skipped.
            global_step: global step; None for one more than each tag's last step.
            prefix: prepended to every name to make its tag, e.g. ``"grad/"``.
            walltime: seconds since the epoch; default now.
            check_nonfinite: also log ``<prefix>nonfinite`` (NaN/±Inf over all the tensors,
                counted by the histograms) and report those holding any to ``on_anomaly``.

        Device tensors of one device and dtype are reduced in **one** kernel launch over a
        device-side table of (address, length, stride), as PyTorch's ``_foreach`` kernels, with
        one asynchronous copy back; host arrays one by one. The histograms equal per-tensor
        ``add_histogram(prefix + name, tensor, step)`` calls, written as one event per step
        (distributed: merged by one pair of collectives per call).

        Raises:
            TypeError: not a mapping or pairs, a name not a str, non-numeric data.
            ValueError: no tensor at all; an empty name; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        histograms.log_histograms(self._state, named_tensors, global_step, prefix, walltime,
                                  check_nonfinite=check_nonfinite)  # fmt: skip

    def add_image(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log one image.

        Args:
            tag: series name.
            img_tensor: uint8 (0..255), float (0..1, clipped; NaN → 0) or bool array, with 1
                (gray), 3 (RGB) or 4 (RGBA) channels.
            global_step: global step; None for one more than this tag's last step.
            dataformats: ``"CHW"`` (default, as torch's), ``"HWC"`` or ``"HW"`` (gray).
            max_size: a longer side shrunk to this by area averaging on the backend.
            walltime: seconds since the epoch; default now.
        """
        global_step = arguments.either_step(global_step, step)
        images.log_images(self._state, tag, img_tensor, global_step, dataformats, max_size,
                          walltime, batch=False)  # fmt: skip

    def add_images(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log a batch of images under one tag and step (TensorBoard shows each sample).

        Args:
            tag: series name.
            img_tensor: a batch as in :meth:`add_image`, with a leading sample axis.
            global_step: global step; None for one more than this tag's last step.
            dataformats: ``"NCHW"`` (default, as torch's), ``"NHWC"`` or ``"NHW"`` (gray).
            max_size: as in :meth:`add_image`; with it, the batch is never copied whole.
            walltime: seconds since the epoch; default now.
        """
        global_step = arguments.either_step(global_step, step)
        images.log_images(self._state, tag, img_tensor, global_step, dataformats, max_size,
                          walltime, batch=True)  # fmt: skip

    def add_text(
        self,
        tag: str,
        text_string: str | Sequence[str],
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log text, rendered by TensorBoard as Markdown.

        Args:
            tag: series name.
            text_string: a str, or a list of str (shown as a one-column table).
            global_step: global step; None for one more than this tag's last step.
            walltime: seconds since the epoch; default now.
        """
        global_step = arguments.either_step(global_step, step)
        messages.log_text(self._state, tag, text_string, global_step, walltime)

    def add_summary(
        self,
        summary: object,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Write a ready-made ``Summary`` message as one event (the seed's ``summary.pb``).

        Args:
            summary: a ``Summary`` of any protobuf package (read by its wire format); one
                holding ``_hparams_/session_start_info`` opens an hparams session.
            global_step: global step; None for one more than its first value tag's last.
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a Summary. ValueError: no values, or a value with an empty tag.
        """
        global_step = arguments.either_step(global_step, step)
        messages.log_summary(self._state, summary, global_step, walltime)

    def add_anomaly(
        self,
        tag: str,
        values: object,
        global_step: int | None = None,
        lower: float | None = None,
        upper: float | None = None,
        max_positions: int = 100,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> AnomalyHandle:
        """Check a tensor for NaN, ±Inf and values out of bounds, and log what was found.

        One reduction (on the tensor's device, never syncing the caller) counts NaN, ±Inf and
        finite values below ``lower`` / above ``upper``, keeps the first ``max_positions``
        offending positions (C order), the exact quantiles 0, 5, 10, 25, 50, 75, 90, 95, 100 %
        of the finite values (``numpy.quantile``'s) and a heat map; logged under
        ``<tag>/anomaly/...`` and ``<tag>/quantile/...`` (``gpu_summary.summaries.anomaly``).

        Args:
            tag: the tensor's name, e.g. ``"grad/layer1.weight"``.
            values: array or tensor of any shape and numeric dtype.
            global_step: global step; None for one more than this tag's last step.
            lower, upper: optional finite bounds, ``lower <= upper``, compared in float64.
            max_positions: most offending positions reported (0 .. 100000).
            walltime: seconds since the epoch; default now.

        Returns:
            An :class:`~gpu_summary.AnomalyHandle`: ``.result()`` waits for the
            :class:`~gpu_summary.AnomalyReport` (``on_anomaly`` gets it without waiting).

        Raises:
            TypeError: non-numeric ``values`` or bounds.
            ValueError: NaN or infinite bounds, ``lower > upper``, ``max_positions`` out of
                range, an empty tensor; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        return anomaly.log_anomaly(self._state, tag, values, global_step, lower, upper,
                                   max_positions,
                                   walltime)  # fmt: skip

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
    ) -> None:
        """Log points for TensorBoard's Projector (PCA, t-SNE, UMAP views of N vectors).

        Args:
            mat: N×D array or tensor (N×d1×d2... is flattened per row), host or device.
            metadata: N labels (str or numbers), or N rows of several columns; a list, an
                array or a tensor. Tabs, newlines and backslashes in labels are escaped.
            label_img: one image per point for the sprite (N×C×H×W, N×H×W×C or N×H×W; as
                in :meth:`add_image`), shrunk on its backend to fit 8192 px a side.
            global_step: global step; None for one more than this tag's last step.
            tag: the embedding's name; the dashboard lists ``<tag>:<step>``.
            metadata_header: column names of rows of several columns (default ``column_i``).
            label_img_format: ``"NCHW"``, ``"NHWC"`` or ``"NHW"``; default: NCHW when the
                second dimension is 1, 3 or 4, else NHWC.
            reduce: ``"pca"`` stores only the projection on the top ``components`` principal
                axes, computed on the tensor's backend (N×components floats on disk).
            components: principal axes kept by ``reduce="pca"``.

        Files go to ``<logdir>/embeddings/<step>/<tag>/``, listed in
        ``<logdir>/projector_config.pbtxt`` once complete (after ``flush()``).

        Raises:
            TypeError: a non-numeric ``mat``/``label_img``, a label of another type.
            ValueError: an empty ``mat``; metadata or images whose count is not N; rows of
                unequal length; a bad format or ``reduce``; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        embedding.log_embedding(self._state, mat, metadata, label_img, tag, global_step,
                                metadata_header,
                                label_img_format=label_img_format, reduce=reduce,
                                components=components)  # fmt: skip

    def add_hparams(
        self, hparams: dict, metrics: dict | None = None, walltime: float | None = None
    ) -> None:
        """Log this run's hyperparameters (and metrics) for TensorBoard's HParams dashboard.

        Args:
            hparams: ``{key: value}``; a key is a str (a str, bool or number value), an
                :class:`~gpu_summary.HParam` (its domain checks the value) or a
                :class:`~gpu_summary.Metric` (as in the seed's API).
            metrics: ``{str or Metric: value or None}``: a value is logged now as a scalar
                under the metric's name, None only declares it (log it with ``add_scalar``).
            walltime: seconds since the epoch; default now.

        Writes the experiment and ``session_start_info`` into this writer's run, once, and
        ``session_end_info`` when it closes (failure if its ``with`` block raised). A later
        call must name the same hparams and values; it logs metric values.

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
                ``input_to_model`` it fails on. Nothing is written then.
        """
        graph.log_graph(self._state, model, input_to_model, walltime)

    def monitor_gpus(
        self, interval: float = 10.0, devices: list[int] | None = None, *, lenient: bool = False
    ) -> GpuMonitor:
        """Log NVML metrics of the GPUs every ``interval`` seconds until the writer closes
        (see :class:`~gpu_summary.GpuMonitor`); returns the monitor."""
        return GpuMonitor(self, interval, devices, lenient=lenient)

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
        raise TypeError(arguments.NOT_PICKLED)

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self._state.fail_session()
        self.close()
