"""SummaryWriter: validate on the caller's thread, reduce with the array's backend, queue the rest.

The ``add_*`` methods live in ``gpu_summary.kinds``, a module per summary kind
(``kinds/histogram.py``: ``add_histogram``, ``add_histograms``, ``add_histogram_raw``, their
checks and jobs), and this class inherits them; here are the constructor, the file and the
lifecycle.

Each ``add_*`` call checks its arguments (raising before anything is queued, so a bad call
leaves the file and the writer as they were), starts the reduction on the backend that owns the
data, and queues a job; the writer thread waits for the reduction's result, builds the Summary
and writes it. On the NumPy backend the reduction itself runs on the caller's thread; on a
device it is only launched there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from gpu_summary._backend.probe_operator import Probe
from gpu_summary._core import arguments
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.formats import check_formats
from gpu_summary._writer import probes
from gpu_summary._writer.file_writer import FileWriter
from gpu_summary._writer.state import WriterState, default_logdir
from gpu_summary.distributed import check_timeout
from gpu_summary.kinds import scalar
from gpu_summary.kinds.anomaly import AnomalyMethods
from gpu_summary.kinds.audio import AudioMethods
from gpu_summary.kinds.custom_scalars import CustomScalarsMethods
from gpu_summary.kinds.embedding import EmbeddingMethods
from gpu_summary.kinds.graph import GraphMethods
from gpu_summary.kinds.histogram import HistogramMethods
from gpu_summary.kinds.hparams import HparamsMethods
from gpu_summary.kinds.image import ImageMethods
from gpu_summary.kinds.media import MediaMethods
from gpu_summary.kinds.mesh import MeshMethods
from gpu_summary.kinds.message import MessageMethods
from gpu_summary.kinds.pr_curve import PrCurveMethods
from gpu_summary.kinds.scalar import ScalarMethods
from gpu_summary.kinds.tensor import TensorMethods
from gpu_summary.kinds.text import TextMethods
from gpu_summary.monitor import GpuMonitor


class SummaryWriter(
    ScalarMethods,
    HistogramMethods,
    ImageMethods,
    MediaMethods,
    AudioMethods,
    PrCurveMethods,
    CustomScalarsMethods,
    TextMethods,
    MessageMethods,
    HparamsMethods,
    TensorMethods,
    MeshMethods,
    AnomalyMethods,
    GraphMethods,
    EmbeddingMethods,
):
    """Writes TensorBoard event files from host or device tensors.

    The arguments are torch's, in its order, then keywords of its own.

    Args:
        log_dir: directory for the event file (created if missing); default
            ``runs/<date>_<host><comment>``. ``logdir=`` (tensorboardX's name) is the same.
        comment: appended to the default folder's name (ignored when one is given).
        purge_step: a run restarted from a checkpoint at this step: TensorBoard discards what
            the earlier run logged at later steps (a ``SessionLog`` START event).
        max_queue: most summaries waiting for the writer thread (a caller then blocks).
        flush_secs: longest time, in seconds, a record waits before it is in the file, so
            TensorBoard shows it without ``flush()`` (1 s here; torch waits 120).
        filename_suffix: appended to the event file's name.
        write_to_disk: False writes nothing (tensorboardX's switch, in its position).
        max_queue_bytes: most bytes of pending results (image thumbnails mostly) waiting.
        on_anomaly: ``callable(report)``, on the writer thread, for each
            :class:`~gpu_summary.AnomalyReport` that found anything (no sync per step); it
            may call this writer (an ``add_*`` is logged at once, ``flush()`` does not wait).
        distributed: ``"torch"``, ``"mpi"``, a process group or communicator: every rank
            makes the same calls with its shard; rank 0 writes the exact merge of histograms,
            scalars and anomaly counts, its own other kinds (``gpu_summary.distributed``). The
            writer makes a communicator of its own over those ranks (a collective: create it on
            every rank, in the same order).
        timeout: with ``distributed``, the most seconds one of the writer's collectives waits
            for the other ranks (default 60); past it, :class:`~gpu_summary.AggregationError`.
        count_steps: what a call without ``global_step`` logs at: False, step 0 (torch's);
            True, one more than the last step of its tag. None (the default): False, and True
            for a ``distributed`` writer, whose steps delimit its collectives.

    Steps: ``global_step`` (or ``step=``) None logs at step 0, as torch's writer (see
    ``count_steps``).
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
        write_to_disk: bool = True,
        *,
        logdir: str | os.PathLike | None = None,
        max_queue_bytes: int = 256 << 20,
        on_anomaly: Callable[[AnomalyReport], object] | None = None,
        distributed: object = None,
        timeout: float | None = None,
        count_steps: bool | None = None,
    ) -> None:
        folder = arguments.run_folder(log_dir, logdir, comment, default_logdir)
        purge_step = None if purge_step is None else arguments.check_step(purge_step)
        arguments.check_writer_options(
            flush_secs, max_queue, max_queue_bytes, filename_suffix, on_anomaly, write_to_disk
        )
        if count_steps is not None and not isinstance(count_steps, bool):
            raise TypeError(f"count_steps must be True, False or None, got {count_steps!r}")
        self._state = WriterState(folder, flush_secs, max_queue, filename_suffix, max_queue_bytes,
                                  on_anomaly, distributed, write_to_disk, purge_step,
                                  check_timeout(timeout, distributed), count_steps)  # fmt: skip
        self._file_writer = FileWriter(self._state)

    @property
    def log_dir(self) -> str:
        """The directory this writer writes into (``logdir`` is the same)."""
        return self._state.logdir

    logdir = log_dir

    def get_logdir(self) -> str:
        """The directory this writer writes into (as torch's SummaryWriter names it)."""
        return self._state.logdir

    @property
    def file_writer(self) -> FileWriter | None:
        """Torch's ``FileWriter`` methods on this writer's event file; None once closed (as
        torch's and tensorboardX's), until a later call reopens it."""
        return None if self._state.events.closed else self._file_writer

    @property
    def all_writers(self) -> dict[str, FileWriter] | None:
        """Torch's ``{log_dir: file_writer}``; None once closed."""
        writer = self.file_writer
        return None if writer is None else {self._state.logdir: writer}

    def _get_file_writer(self) -> FileWriter:  # torch's name: Lightning calls it
        """``file_writer``, reopening a closed writer first (as torch's does)."""
        self._state.check_open()
        return self._file_writer

    @property
    def file_path(self) -> str | None:
        """Path of the event file this process writes (None on ranks other than 0)."""
        return self._state.events.path

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called and nothing logged since (a later ``add_*``
        reopens the writer: a new event file in the same folder)."""
        return self._state.events.closed

    @property
    def rank(self) -> int:
        """This process's rank in the writer's group (0 without ``distributed``)."""
        return self._state.rank

    def probe(self, tag: str, *, bins: str = "tensorflow", formats: object = ()) -> Probe:
        """A probe: ``probe(x)`` returns ``x`` and adds its statistics on ``x``'s device,
        from eager code, ``torch.compile(fullgraph=True)`` code (no graph break, no
        recompile when values change) and captured CUDA graphs (each replay adds again);
        :meth:`collect` logs them.

        Call it outside compiled code (once; a later call with the same tag returns the same
        probe). The first use of a probe on a device allocates its accumulator there
        (about 12 KiB, and 80 KiB of kernel scratch on a GPU); inside a CUDA graph capture
        that first use is refused: call the probe once before capturing.

        Args:
            tag: the histogram's series name.
            bins: ``"tensorflow"`` (TensorBoard's ladder, the only buckets that a running
                total can keep fixed; ``"tensorboard"`` is the same).
            formats: low-precision formats whose overflow and underflow counts the probe
                also keeps (``"float8_e4m3fn"``, ``"float8_e5m2"``, ``"float16"``,
                ``"bfloat16"``), logged as ``<tag>/lowp/<format>/overflow`` and
                ``.../underflow`` at each collect.

        Returns:
            The :class:`~gpu_summary.Probe`, a callable on torch tensors (CPU or CUDA).

        Raises:
            TypeError: PyTorch is missing, or ``formats`` is not names.
            ValueError: other ``bins``; an unknown format; the tag's probe exists with other
                formats; the writer is closed.
        """
        state = self._state
        tag, _, _ = state.begin(tag, None, None)
        if bins not in ("tensorflow", "tensorboard"):
            raise ValueError(f"a probe keeps TensorBoard's fixed ladder of buckets: "
                             f"bins='tensorflow', got {bins!r}")  # fmt: skip
        return state.probes.probe(tag, check_formats(formats))

    def collect(
        self,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log what every probe saw since the last collect, one record per probe, and start
        each probe again from zero.

        Each record is the histogram of every value the probe saw, exactly equal to the
        histogram of those values concatenated (counts, min and max exact; sums within the
        backends' tolerance), with ``<tag>/nonfinite`` beside it when NaN or ±Inf were among
        them (and a report to ``on_anomaly``), and the format counts. A probe that saw
        nothing writes nothing. On a device the accumulators are copied back asynchronously
        and emptied on the current stream: nothing waits here. Call it outside compiled
        code and outside a CUDA graph capture (e.g. after ``graph.replay()``). With
        ``distributed``, every rank calls it with the same probes; rank 0 writes the exact
        merge.

        Args:
            global_step: the step of the records; None: 0 (with ``count_steps``, each tag's
                last + 1).
            walltime: seconds since the epoch; default now.
        """
        state = self._state
        step = arguments.either_step(global_step, step)
        _, step, wall = state.begin("collect", step, walltime)
        probes.collect(state, state.probes, step, wall)

    def monitor_gpus(
        self, interval: float = 10.0, devices: list[int] | None = None, *, lenient: bool = False
    ) -> GpuMonitor:
        """Log NVML metrics of the GPUs every ``interval`` seconds until the writer closes
        (see :class:`~gpu_summary.GpuMonitor`); returns the monitor."""
        return GpuMonitor(self, interval, devices, lenient=lenient)

    @contextlib.contextmanager
    def use_metadata(
        self, *, global_step: int | None = None, walltime: float | None = None
    ) -> Iterator[SummaryWriter]:
        """``with writer.use_metadata(global_step=10): ...``: the calls inside that give no
        ``global_step`` (or no ``walltime``) use these (tensorboardX's). Not nested.

        Raises:
            ValueError: neither given, or a block of this writer is already open.
            TypeError: a step or wall time of the wrong type.
        """
        if global_step is None and walltime is None:
            raise ValueError("use_metadata needs global_step or walltime (or both)")
        step = None if global_step is None else arguments.check_step(global_step)
        wall = None if walltime is None else arguments.check_walltime(walltime)
        state = self._state
        if state.metadata is not None:
            raise ValueError("a use_metadata block of this writer is already open; not nested")
        state.metadata = (step, wall)
        try:
            yield self
        finally:
            state.metadata = None

    def export_scalars_to_json(self, path: str | os.PathLike) -> None:
        """Write every value :meth:`add_scalars` logged since the last export to ``path`` as
        JSON, ``{"<log_dir>/<main_tag>/<tag>": [[walltime, step, value], ...]}``, and forget
        them (tensorboardX's method; waits for device values).

        Raises:
            OSError: ``path`` cannot be written (the values are kept for a later export).
        """
        scalar.export_scalars(self._state, path)

    def flush(self, fsync: bool = False) -> None:
        """Block until everything logged so far is in the event file (distributed: every step
        before the current one, whose merge starts with the next step's first merged call or
        ``close()``; windows stay open). The OS then has it: it survives the
        process being killed. ``fsync=True`` also waits for the storage device (``os.fsync``),
        so that it survives a power loss; ``close()`` always does."""
        self._state.flush(fsync)

    def close(self) -> None:
        """Flush and close the file. Idempotent. A later ``add_*`` call reopens the writer, a
        new event file in the same folder, as torch's and tensorboardX's do (not with
        ``distributed``: its collectives end here, and a later call raises ValueError)."""
        self._state.close()

    def __reduce__(self) -> tuple:
        raise TypeError(arguments.NOT_PICKLED)

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        if exc_type is not None:
            self._state.fail_session()
        self.close()
