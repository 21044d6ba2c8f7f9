"""The seed's embedding and exception projector files (``summary.Projector``).

``Projector(logdir)``; ``create_embedding_projector()`` then ``embedding_projector(value=v,
label=l, tag="emb", step=1, sample_name="sample", sample_type="image", x=x)`` writes
``<logdir>/projector/projector.<unix time>.log`` (and ``create_exception_projector()`` /
``exception_projector(...)`` the file ``projector.gradit.<unix time>.log``): each one serialized
``SummaryProjector`` that, unlike the original (which overwrote the file with the last call),
holds every call's ``Projector`` entry, with the latest sample. Each embedding is also written
in TensorBoard's Projector format into ``logdir`` itself (``projector_config.pbtxt``), so
``tensorboard --logdir <logdir>`` shows it.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from gpu_summary._embedding import arguments as embedding_args
from gpu_summary._embedding import files as _embedding
from gpu_summary._events import safe_files
from gpu_summary._seed.arguments import host, seed_step, seed_tag, unwrap
from gpu_summary.proto import summary_projector_pb2 as seed_pb2

_SAMPLE_TYPES = {
    "image": seed_pb2.Sample.IMAGE,
    "audio": seed_pb2.Sample.AUDIO,
    "text": seed_pb2.Sample.TEXT,
}


def _set_tensor(message: seed_pb2.Tensor, array: np.ndarray) -> None:
    array = np.ascontiguousarray(array)
    message.dtype = str(array.dtype)
    for size in array.shape:
        message.shape.dim.add(size=size)
    message.content = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


def _reserve(logdir: str, prefix: str) -> str:
    """Create ``projector/<prefix>.<unix time>.log`` in ``logdir`` — or, when another
    Projector (of this process or another) took that second's name,
    ``<prefix>.<unix time>.<n>.log`` — exclusively, so no two Projectors ever write one file;
    its name."""
    second = int(time.time())
    for number in range(1_000_000):
        name = f"{prefix}.{second}.log" if number == 0 else f"{prefix}.{second}.{number}.log"
        if safe_files.create_new(logdir, f"projector/{name}"):
            return name
    raise FileExistsError(f"no free projector file name in {logdir} for second {second}")


class Projector:
    """The seed's embedding and exception projector files in ``<logdir>/projector``.

    Thread-safe; each call rewrites its file atomically (a reader sees the previous or the
    new message, whole), so a file costs time linear in everything logged to it so far.
    """

    def __init__(self, logdir: str | os.PathLike | None = None) -> None:
        if logdir is None:
            raise ValueError("Projector needs a logdir, e.g. Projector('runs/demo')")
        self._logdir = os.fspath(logdir)
        self._folder = os.path.join(self._logdir, "projector")
        os.close(safe_files.folder(self._logdir, ["projector"]))  # a link there: OSError
        self._lock = threading.Lock()
        self._files: dict[int, tuple[str, seed_pb2.SummaryProjector]] = {}
        self._tensorboard = _embedding.ProjectorFiles(self._logdir)

    @property
    def logdir(self) -> str:
        """The folder of the projector files (``<logdir>/projector``)."""
        return self._folder

    @property
    def embedding_filename(self) -> str | None:
        entry = self._files.get(seed_pb2.MetaData.EMBEDDING)
        return entry and entry[0]

    @property
    def exception_filename(self) -> str | None:
        entry = self._files.get(seed_pb2.MetaData.EXCEPTION)
        return entry and entry[0]

    def create_embedding_projector(self) -> None:
        """Start ``projector.<unix time>.log`` for :meth:`embedding_projector`."""
        self._create(seed_pb2.MetaData.EMBEDDING, "projector")

    def create_exception_projector(self) -> None:
        """Start ``projector.gradit.<unix time>.log`` for :meth:`exception_projector`."""
        self._create(seed_pb2.MetaData.EXCEPTION, "projector.gradit")

    def _create(self, kind: int, prefix: str) -> None:
        with self._lock:
            if kind in self._files:
                raise ValueError(
                    f"this Projector already writes {self._files[kind][0]}; create only one "
                    "of each kind per Projector"
                )
            name = _reserve(self._logdir, prefix)
            message = seed_pb2.SummaryProjector()
            message.metadata.type = kind
            self._rewrite(name, message)  # no entry yet
            self._files[kind] = (os.path.join(self._folder, name), message)

    def embedding_projector(
        self,
        value: object = None,
        label: object = None,
        tag: object = None,
        step: object = None,
        sample_name: str | None = None,
        sample_type: str | None = None,
        x: object = None,
        *,
        x_format: str | None = None,
    ) -> None:
        """Log points ``value`` (N×...), with labels ``label`` (N) and samples ``x`` (N
        images for ``sample_type="image"``), in the seed's file and TensorBoard's Projector.

        ``x_format`` (ours): ``"NHWC"``, ``"NCHW"`` or ``"NHW"``; needed only when ``x``'s
        shape reads both ways (N×4×H×3: 4 channels or 3?).

        Raises:
            ValueError: :meth:`create_embedding_projector` was not called; no ``value``;
                labels or samples whose count is not N; an unknown ``sample_type``; an
                ambiguous ``x`` without ``x_format``. Nothing is logged then.
        """
        tag = seed_tag(tag, "embedding_projector")
        step = seed_step(step)
        kind = seed_pb2.MetaData.EMBEDDING
        points, labels, samples = self._check(kind, "embedding", value, label, sample_name,
                                              sample_type, x)  # fmt: skip
        matrix = points.reshape(len(points), -1).astype(np.float32)
        rows = None
        if labels is not None:
            pending, _ = embedding_args.labels(labels, len(matrix))
            rows = embedding_args.label_rows(pending.result())
        thumbnails = None
        if samples is not None and sample_type.lower() == "image" and samples.ndim in (3, 4):
            if len(samples) == len(matrix):
                layout = _sample_layout(samples, x_format)
                thumbnails = embedding_args.sprite_thumbnails(samples, layout,
                                                              len(matrix)).result()  # fmt: skip
        # Everything that can fail first: a call that raises leaves no entry behind.
        self._tensorboard.write(tag, step, matrix, rows, None, thumbnails)
        self._add_entry(kind, tag, step, points, labels, sample_name, sample_type, samples)

    def exception_projector(
        self,
        value: object = None,
        tag: object = None,
        step: object = None,
        sample_name: str | None = None,
        sample_type: str | None = None,
        x: object = None,
    ) -> None:
        """Log an exception (anomaly) tensor ``value`` in the seed's exception file.

        Raises:
            ValueError: :meth:`create_exception_projector` was not called; no ``value``; an
                unknown ``sample_type``.
        """
        tag = seed_tag(tag, "exception_projector")
        step = seed_step(step)
        kind = seed_pb2.MetaData.EXCEPTION
        points, _, samples = self._check(kind, "exception", value, None, sample_name,
                                         sample_type, x)  # fmt: skip
        self._add_entry(kind, tag, step, points, None, sample_name, sample_type, samples)

    def _rewrite(self, name: str, message: seed_pb2.SummaryProjector) -> None:
        """Replace ``projector/<name>`` with ``message``, whole (never through a link)."""
        safe_files.write(self._logdir, f"projector/{name}", message.SerializeToString())

    def _file(self, kind: int, name: str) -> tuple[str, seed_pb2.SummaryProjector]:
        entry = self._files.get(kind)
        if entry is None:
            raise ValueError(f"call create_{name}_projector() before {name}_projector()")
        return entry

    def _check(
        self,
        kind: int,
        name: str,
        value: object,
        label: object,
        sample_name: str | None,
        sample_type: str | None,
        x: object,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Check every argument; (value, labels, samples) on the host."""
        self._file(kind, name)
        if value is None:
            raise ValueError(f"{name}_projector needs a value (the tensor to project)")
        value = unwrap(value)  # the seed passes one-element lists of arrays
        with_sample = sample_name is not None and sample_type is not None
        if with_sample and (
            not isinstance(sample_type, str) or sample_type.lower() not in _SAMPLE_TYPES
        ):
            raise ValueError(
                f"sample_type must be one of {sorted(_SAMPLE_TYPES)}, got {sample_type!r}"
            )
        array = host(value, "value")
        if array.ndim == 0 or array.size == 0:
            raise ValueError(f"value must be N×D with N, D >= 1, got shape {array.shape}")
        labels = None if label is None else host(label, "label")
        if labels is not None and (labels.ndim == 0 or len(labels) != len(array)):
            raise ValueError(
                f"label must hold one label per point: value has {len(array)} rows, label "
                f"has shape {labels.shape}"
            )
        samples = None if not with_sample or x is None else host(x, "x")
        return array, labels, samples

    def _add_entry(
        self,
        kind: int,
        tag: str,
        step: int,
        array: np.ndarray,
        labels: np.ndarray | None,
        sample_name: str | None,
        sample_type: str | None,
        samples: np.ndarray | None,
    ) -> None:
        """Add one Projector entry (and the sample, when named) and rewrite the file once."""
        with self._lock:
            path, message = self._files[kind]
            entry = message.projector.add(tag=tag, step=step, WALL_TIME=time.time())
            _set_tensor(entry.value, array)
            if labels is not None:
                _set_tensor(entry.label, labels)
            if sample_name is not None and sample_type is not None:
                message.sample.Clear()
                message.sample.name = str(sample_name)
                message.sample.type = _SAMPLE_TYPES[sample_type.lower()]
                _set_tensor(message.sample.X, samples if samples is not None else np.zeros(0))
            self._rewrite(os.path.basename(path), message)


def _sample_layout(samples: np.ndarray, x_format: str | None) -> str | None:
    """``x_format``, or None (read from the shape) unless the shape reads both ways."""
    if x_format is not None:
        return x_format
    shape = samples.shape
    if samples.ndim == 4 and shape[1] in (1, 3, 4) and shape[3] in (1, 3, 4):
        raise ValueError(
            f"x of shape {shape} reads as N×C×H×W or as N×H×W×C; pass x_format='NHWC' or 'NCHW'"
        )
    return None
