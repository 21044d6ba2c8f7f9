"""SummaryWriter: validate on the caller's thread, reduce with the array's backend, queue the rest.

Each ``add_*`` call checks its arguments (raising before anything is queued, so a bad call
leaves the file and the writer as they were), starts the reduction on the backend that owns the
data, and queues a job; the writer thread waits for the reduction's result, builds the Summary
and writes it. On the NumPy backend the reduction itself runs on the caller's thread; on a
device it is only launched there.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np

from gpu_summary import distributed as _distributed
from gpu_summary import hparams as hp
from gpu_summary._backend import backend_for
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import arguments
from gpu_summary._core.results import Derived
from gpu_summary._embedding import arguments as embedding_args
from gpu_summary._events.writer import EventFileWriter, NullEventWriter
from gpu_summary._graph import model_nodes
from gpu_summary._writer import jobs
from gpu_summary._writer.aggregation import Aggregation
from gpu_summary._writer.session import RunSession
from gpu_summary._writer.tensor_groups import launch_ladder_histograms
from gpu_summary._embedding.files import ProjectorFiles, write_atomically
from gpu_summary.monitor import GpuMonitor
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import graph as graph_summaries
from gpu_summary.summaries import hparams as hparams_summaries
from gpu_summary.summaries.anomaly import anomaly_summary
from gpu_summary.summaries.histogram import histogram_summary
from gpu_summary.summaries.image import image_summary
from gpu_summary.summaries.text import text_summary

_PLAIN_NUMBERS = (float, int)


def _default_logdir() -> str:
    stamp = datetime.datetime.now().strftime("%b%d_%H-%M-%S")
    return os.path.join("runs", f"{stamp}_{socket.gethostname()}")


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
        on_anomaly: Callable[[_anomaly.AnomalyReport], object] | None = None,
        distributed: object = None,
    ) -> None:
        logdir = _default_logdir() if logdir is None else arguments.check_logdir(logdir)
        arguments.check_writer_options(flush_secs, max_queue, max_queue_bytes, filename_suffix)
        if on_anomaly is not None and not callable(on_anomaly):
            raise TypeError(f"on_anomaly must be a callable taking a report, got {on_anomaly!r}")
        self._on_anomaly = on_anomaly
        self._logdir = os.fspath(logdir)
        self._aggregation: Aggregation | None = None
        if distributed is not None:
            collective = _distributed.connect(distributed)
            self._aggregation = Aggregation(_distributed.Aggregator(collective))
        self._writes_files = self.rank == 0
        if self._writes_files:
            self._events = EventFileWriter(
                self._logdir,
                flush_secs=flush_secs,
                max_queue=max_queue,
                max_queue_bytes=max_queue_bytes,
                filename_suffix=filename_suffix,
            )
        else:
            self._events = NullEventWriter()
        self._steps: dict[str, int] = {}
        self._steps_lock = threading.Lock()
        self._session = RunSession(self._events)
        self._projector = ProjectorFiles(self._logdir)
        self._monitors: list[GpuMonitor] = []

    # -- properties ---------------------------------------------------------------------------

    @property
    def logdir(self) -> str:
        """The directory this writer writes into."""
        return self._logdir

    def get_logdir(self) -> str:
        """The directory this writer writes into (as torch's SummaryWriter names it)."""
        return self._logdir

    @property
    def file_path(self) -> str | None:
        """Path of the event file this process writes (None on ranks other than 0)."""
        return self._events.path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (every ``add_*`` then raises ValueError)."""
        return self._events.closed

    @property
    def rank(self) -> int:
        """This process's rank in the writer's group (0 without ``distributed``)."""
        return 0 if self._aggregation is None else self._aggregation.rank

    # -- the common path ----------------------------------------------------------------------

    def _begin(self, tag: object, step: object, walltime: object) -> tuple[str, object, float]:
        self._events.check_open()
        if self._aggregation is not None:
            self._aggregation.aggregator.raise_error()
        tag = arguments.check_tag(tag)
        checked_step = None if step is None else arguments.check_step(step)
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        return tag, checked_step, wall

    def _resolve_step(self, tag: str, step: int | None) -> int:
        if step is None:
            with self._steps_lock:
                step = self._steps.get(tag, -1) + 1
                self._steps[tag] = step
        else:
            self._steps[tag] = step  # a single dict store is atomic
        return step

    def _enqueue(
        self,
        kind: str,
        tag: str,
        step: int | None,
        wall: float,
        build: Callable[[], summary_pb2.Summary],
        nbytes: int = 0,
    ) -> None:
        step = self._resolve_step(tag, step)
        self._events.add(jobs.summary(kind, tag, step, wall, build, nbytes))

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
        if (
            type(value) in _PLAIN_NUMBERS
            and self._aggregation is None
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
            step = self._resolve_step(tag, step)
            self._events.add(jobs.scalar(tag, number, step, time.time()))
            return
        tag, step, wall = self._begin(tag, step, walltime)
        if reduce not in _distributed.REDUCTIONS:
            raise ValueError(
                f"reduce must be one of {list(_distributed.REDUCTIONS)}, got {reduce!r}"
            )
        backend, array = backend_for(value, "value")
        if getattr(array, "size", 1) != 1:
            raise ValueError(
                f"value must be a single number, got an array of shape {tuple(array.shape)}; "
                "reduce it first (e.g. .mean()) or log it with add_histogram"
            )
        step = self._resolve_step(tag, step)
        pending = backend.scalar(array)
        if self._aggregation is not None:
            pending = self._aggregation.scalar(pending, tag, step, reduce)
        self._events.add(jobs.pending_scalar(tag, pending, step, wall))

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
        tag, step, wall = self._begin(tag, step, walltime)
        mode, spec = arguments.bin_spec(bins)
        backend, array = backend_for(values, "values")
        if self._aggregation is not None:
            step = self._resolve_step(tag, step)
            if mode == "even":
                shard = backend.snapshot(array)  # counted once the global range is known

                def count(lo: float, hi: float, shard: object = shard) -> object:
                    return backend.even_counts(shard, lo, hi, spec)

                stats = backend.tensor_stats(shard)
                pending = self._aggregation.histogram_even(stats, count, tag, step, spec)
            else:
                local = backend.histogram_fixed(array, spec)
                pending = self._aggregation.histogram(local, tag, step, spec)
        elif mode == "even":
            pending = backend.histogram_even(array, spec)
        else:
            pending = backend.histogram_fixed(array, spec)
        collapse = mode == "ladder"
        self._enqueue(
            "histogram", tag, step, wall, lambda: histogram_summary(tag, pending.result(), collapse)
        )

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
        self._events.check_open()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        pairs = arguments.named_pairs(named_tensors)
        tags = [arguments.check_tag(prefix + name, "names") for name, _ in pairs]
        if self._aggregation is not None:
            self._aggregation.aggregator.raise_error()
        checked_step = None if step is None else arguments.check_step(step)
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        placed = launch_ladder_histograms(pairs)
        steps = [self._resolve_step(tag, checked_step) for tag in tags]
        for event_step in dict.fromkeys(steps):
            chosen = [k for k, s_ in enumerate(steps) if s_ == event_step]

            def gather(chosen: list[int] = chosen) -> list:
                return [placed[k][0].result()[placed[k][1]] for k in chosen]

            histograms = Derived(gather)
            if self._aggregation is not None:  # all of them merged by one pair of collectives
                histograms = self._aggregation.histograms(
                    histograms, [tags[k] for k in chosen], event_step
                )

            def build(chosen: list[int] = chosen, histograms=histograms) -> summary_pb2.Summary:
                summary = summary_pb2.Summary()
                results = histograms.result()
                for k, histogram in zip(chosen, results, strict=True):
                    summary.value.extend(histogram_summary(tags[k], histogram, True).value)
                if check_nonfinite:
                    total = sum(h.stats.nan + h.stats.posinf + h.stats.neginf for h in results)
                    summary.value.add(tag=f"{prefix}nonfinite", simple_value=total)
                return summary

            self._events.add(jobs.summary("histograms", tags[chosen[0]], event_step, wall, build))
            if check_nonfinite and self._on_anomaly is not None:
                chosen_tags = [tags[k] for k in chosen]
                self._events.add(
                    jobs.nonfinite_call_back(chosen_tags, histograms, event_step, self._on_anomaly)
                )

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
        self._log_images(tag, img, step, dataformats, max_size, walltime, "img")

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
        self._log_images(tag, imgs, step, dataformats, max_size, walltime, "imgs")

    def _log_images(
        self,
        tag: object,
        images: object,
        step: object,
        dataformats: object,
        max_size: object,
        walltime: object,
        argument: str,
    ) -> None:
        tag, step, wall = self._begin(tag, step, walltime)
        formats = arguments.IMAGE_FORMATS if argument == "img" else arguments.IMAGES_FORMATS
        layout = arguments.check_dataformats(dataformats, formats, "dataformats")
        if max_size is not None:
            max_size = arguments.check_positive_int(
                max_size, "max_size", "give the longest side in pixels, e.g. max_size=256"
            )
        backend, array = backend_for(images, argument)
        nhwc = arguments.check_images(array, layout, argument, "dataformats")
        n, height, width, channels = nhwc.shape
        if not self._writes_files:
            return  # rank 0's images only
        pending = backend.thumbnails(nhwc, max_size)
        out_h, out_w = backend.thumbnail_size(height, width, max_size)
        self._enqueue(
            "image",
            tag,
            step,
            wall,
            lambda: image_summary(tag, pending.result()),
            nbytes=n * out_h * out_w * channels,
        )

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
        tag, step, wall = self._begin(tag, step, walltime)
        strings, scalar = arguments.check_text(text_string)
        self._enqueue("text", tag, step, wall, lambda: text_summary(tag, strings, scalar))

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
        if not isinstance(summary, summary_pb2.Summary):
            descriptor = getattr(summary, "DESCRIPTOR", None)
            if getattr(descriptor, "name", None) != "Summary" or not hasattr(
                summary, "SerializeToString"
            ):
                raise TypeError(
                    f"summary must be a Summary protobuf message, got {type(summary).__name__}"
                )
            summary = summary_pb2.Summary.FromString(summary.SerializeToString())
        if not summary.value:
            raise ValueError("summary holds no values; add at least one Summary.Value")
        for value in summary.value:
            arguments.check_tag(value.tag, "summary value tag")
        tag, step, wall = self._begin(summary.value[0].tag, step, walltime)
        step = self._resolve_step(tag, step)
        for value in summary.value[1:]:
            self._steps[value.tag] = step
        if not self._writes_files:
            return  # rank 0's summaries only
        self._events.add(jobs.ready_summary(summary, step, wall))
        starts = hparams_summaries.SESSION_START_INFO_TAG
        if not self._session.started and any(value.tag == starts for value in summary.value):
            self._session.end_at_close("success")

    def add_anomaly(
        self,
        tag: str,
        values: object,
        step: int | None = None,
        lower: float | None = None,
        upper: float | None = None,
        max_positions: int = 100,
        walltime: float | None = None,
    ) -> _anomaly.AnomalyHandle:
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
        tag, step, wall = self._begin(tag, step, walltime)
        lower = arguments.check_bound(lower, "lower")
        upper = arguments.check_bound(upper, "upper")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower ({lower}) must not exceed upper ({upper}); swap them")
        max_positions = arguments.check_count(
            max_positions, "max_positions", _anomaly.MAX_POSITIONS
        )
        backend, array = backend_for(values, "values")
        if int(getattr(array, "size", 1)) == 0:
            raise ValueError("values is empty; there is nothing to check")
        pending = backend.anomaly(array, lower, upper, max_positions, _anomaly.HEATMAP_CELLS)
        step = self._resolve_step(tag, step)
        if self._aggregation is not None:
            pending = self._aggregation.anomaly(pending, tag, step, lower, upper, max_positions)
        handle = _anomaly.AnomalyHandle(pending, tag, step, lower, upper)

        def build() -> summary_pb2.Summary:
            return anomaly_summary(*handle.summary_parts(), lower, upper)

        self._enqueue("anomaly", tag, step, wall, build)
        if self._on_anomaly is not None:
            self._events.add(jobs.anomaly_call_back(handle, self._on_anomaly))
        return handle

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
        tag, step, _ = self._begin(tag, step, None)
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
        labels = embedding_args.labels(metadata, n)
        header = None
        if labels is not None:
            columns = labels[1]
            if metadata_header is not None:
                header = tuple(embedding_args.header(metadata_header, columns))
            elif columns > 1:
                header = tuple(f"column_{i}" for i in range(columns))
        if not self._writes_files:
            return  # rank 0's embedding only
        thumbnails = None
        if label_img is not None:
            thumbnails = embedding_args.sprite_thumbnails(label_img, label_img_format, n)
        pending = backend.embedding(matrix, components if reduce else None)
        step = self._resolve_step(tag, step)
        files = self._projector

        def write() -> None:
            matrix_ = pending.result()
            if not np.isfinite(matrix_).all() and reduce:
                raise ValueError("mat holds NaN or ±Inf, which principal components cannot place")
            rows = None if labels is None else embedding_args.label_rows(labels[0].result())
            images = None if thumbnails is None else thumbnails.result()
            files.write(tag, step, matrix_, rows, header, images)

        self._events.add(jobs.files(write, f"embedding {tag!r} at step {step}"))

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
        self._events.check_open()
        session = hp.session(hparams, metrics)
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        if self._session.open(session):
            experiment = hparams_summaries.experiment_summary
            start = hparams_summaries.session_start_summary
            self._enqueue("hparams", hparams_summaries.EXPERIMENT_TAG, 0, wall,
                          lambda: experiment(session, wall))  # fmt: skip
            self._enqueue("hparams", hparams_summaries.SESSION_START_INFO_TAG, 0, wall,
                          lambda: start(session, wall))  # fmt: skip
            self._session.end_at_close("success")
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
        self._events.check_open()
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        nodes, name = model_nodes(model, input_to_model)
        try:
            graph_def = graph_summaries.graph_def(nodes).SerializeToString()
        except UnicodeEncodeError as exc:
            arguments.check_unicode(exc.object, "a layer's name, type or input")
            raise  # not reached: check_unicode raises for what UTF-8 cannot encode
        if not self._writes_files:
            return  # rank 0's graph only
        text = json.dumps(graph_summaries.structure_graph(nodes, name), indent=1)
        path = os.path.join(self._logdir, "graph", "structure_graph.json")
        # Readers see the old file or the new one, never a part; a failed write leaves neither
        # a part nor a temporary file, and raises here (OSError) with nothing queued.
        write_atomically(path, text.encode("utf-8"))
        self._events.add(jobs.graph(graph_def, wall))

    def monitor_gpus(
        self, interval: float = 10.0, devices: list[int] | None = None, *, lenient: bool = False
    ) -> GpuMonitor:
        """Log NVML metrics of the GPUs every ``interval`` seconds until the writer closes
        (see :class:`~gpu_summary.GpuMonitor`); returns the monitor."""
        return GpuMonitor(self, interval, devices, lenient=lenient)

    def _add_monitor(self, monitor: GpuMonitor) -> None:
        self._events.check_open()
        self._monitors.append(monitor)

    def _add_sample(self, tag: str, value: float, step: int, wall: float) -> None:
        """A scalar from a background sampler: no collective, only rank 0 writes it."""
        self._events.add(jobs.scalar(tag, value, step, wall))

    # -- lifecycle ----------------------------------------------------------------------------

    def flush(self, fsync: bool = False) -> None:
        """Block until everything logged so far is in the event file (distributed: and every
        collective queued so far has run, on this rank). The OS then has it: it survives the
        process being killed. ``fsync=True`` also waits for the storage device (``os.fsync``),
        so that it survives a power loss; ``close()`` always does."""
        if self._aggregation is not None:
            self._aggregation.aggregator.wait()
            self._aggregation.aggregator.raise_error()
        self._events.flush(fsync)

    def close(self) -> None:
        """Flush and close the file; later ``add_*`` calls raise ValueError. Idempotent."""
        for monitor in self._monitors:
            monitor.stop()
        self._monitors.clear()
        aggregation = self._aggregation
        if aggregation is not None and not self._events.closed:
            aggregation.aggregator.close()
        self._events.close()
        if aggregation is not None:
            aggregation.aggregator.raise_error()

    def __reduce__(self) -> tuple:
        raise TypeError(
            "a SummaryWriter cannot be sent to another process (pickled); create one in each "
            "process — each writes its own file — or use SummaryWriter(..., distributed=...)"
        )

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None and self._session.started and not self._events.closed:
            self._session.end_at_close("failure")
        self.close()
