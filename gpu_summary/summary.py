"""The seed document's ``flow.summary`` API, for code written against OneFlow's.

``import gpu_summary.summary as summary`` stands in for ``flow.summary``; the seed's examples
run as they are once OneFlow's job decorators are dropped (the calls they wrapped are made
directly)::

    summary.create_summary_writer("runs/seed")             # the default writer
    summary.scalar(np.array([0.5], np.float32), np.array([1], np.int64),
                   np.frombuffer(b"loss", np.int8))         # or plain 0.5, 1, "loss"
    summary.histogram(np.random.rand(100, 100), 1, "weights")
    summary.image(images_nhwc_uint8, 1, "samples")
    summary.pb(np.frombuffer(str(summary.text(["a", "b"])).encode(), np.int8), step=1)
    summary.pb(summary.hparams({summary.HParam("lr", summary.RealRange(1e-3, 1e-1)): 0.01,
                                summary.Metric("loss", float): 0.2}), step=0)
    summary.Graph("runs/seed").write_structure_graph(model)
    summary.Projector("runs/seed")                         # see gpu_summary._seed.projector
    summary.flush_summary_writer()

Argument forms: tags as str, bytes or int8/uint8 arrays of UTF-8 bytes; steps as ints or
one-element integer arrays; any argument may come wrapped in a one-element list, as OneFlow's
jobs received them. The seed's ``np.fromstring(s, dtype=np.int8)`` is gone from NumPy 2: use
``np.frombuffer(s.encode(), dtype=np.int8)``.

Differences from OneFlow, each deliberate: ``hparams`` returns TensorBoard's own hparams
summaries (experiment and session start) so its HParams dashboard shows them, plus each
metric's value as a scalar; a value outside its HParam's domain warns instead of being taken
silently. ``Graph.write_structure_graph`` takes the model (OneFlow read its job's graph
implicitly). Device tensors are accepted everywhere and reduced where they live.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
from google.protobuf import message as _message
from google.protobuf import text_format

from gpu_summary import hparams as _hp
from gpu_summary._seed.arguments import array_bytes, seed_step, seed_tag, unwrap
from gpu_summary._seed.projector import Projector
from gpu_summary.hparams import HParam, IntegerRange, Metric, RealRange, ValueSet
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import hparams as _hparams_summaries
from gpu_summary.summaries.scalar import scalar_summary
from gpu_summary.summaries.text import text_summary
from gpu_summary.writer import SummaryWriter

__all__ = [
    "Graph",
    "HParam",
    "Hparam",
    "IntegerRange",
    "Metric",
    "Projector",
    "RealRange",
    "ValueSet",
    "close_summary_writer",
    "create_summary_writer",
    "default_writer",
    "flush_summary_writer",
    "histogram",
    "hparams",
    "image",
    "pb",
    "scalar",
    "text",
]

Hparam = HParam  # the name later OneFlow releases export

_lock = threading.Lock()
_writer: SummaryWriter | None = None


def create_summary_writer(logdir: str | os.PathLike, **options: object) -> SummaryWriter:
    """Open the default writer, in ``logdir``, for this module's functions; returns it.

    ``options`` go to :class:`~gpu_summary.SummaryWriter` (``flush_secs``, ``max_queue``,
    ``on_anomaly``, ...). Calling it again closes the previous default writer (flushing it)
    and opens a new event file. A call without a step logs at one more than its tag's last
    (``count_steps=True``, the seed's way, unless ``options`` say otherwise).
    """
    global _writer
    writer = SummaryWriter(logdir, **{"count_steps": True, **options})
    with _lock:
        previous, _writer = _writer, writer
    if previous is not None:
        previous.close()
    return writer


def default_writer() -> SummaryWriter:
    """The writer :func:`create_summary_writer` opened.

    Raises:
        RuntimeError: none is open (never created, or closed).
    """
    writer = _writer
    if writer is None or writer.closed:
        raise RuntimeError(
            "no summary writer is open: call gpu_summary.summary.create_summary_writer(logdir) "
            "before logging with the module's functions"
        )
    return writer


def flush_summary_writer() -> None:
    """Block until everything logged through the default writer is in its file."""
    default_writer().flush()


def close_summary_writer() -> None:
    """Flush and close the default writer (also done at interpreter exit). Idempotent."""
    global _writer
    with _lock:
        writer, _writer = _writer, None
    if writer is not None:
        writer.close()


def scalar(
    value: object, step: object, tag: object, *, window: int | None = None,
    reduce: str | tuple[str, ...] = "mean",
) -> None:  # fmt: skip
    """Log one number (a Python number or a one-element array/tensor) under ``tag``;
    ``window=K``: one record of the K calls' values, reduced by ``reduce`` (see
    ``SummaryWriter.add_scalar``)."""
    default_writer().add_scalar(seed_tag(tag), unwrap(value), seed_step(step, None),
                                reduce=reduce, window=window)  # fmt: skip


def histogram(
    value: object, step: object, tag: object, bins: object = "tensorboard", *,
    window: int | None = None,
) -> None:  # fmt: skip
    """Log the distribution of ``value``'s elements (see ``SummaryWriter.add_histogram``);
    ``window=K``: one histogram of every value of K calls."""
    default_writer().add_histogram(seed_tag(tag), unwrap(value), seed_step(step, None), bins,
                                   window=window)  # fmt: skip


def image(value: object, step: object, tag: object, max_size: int | None = None) -> None:
    """Log images: a batch N×H×W×C (the seed's layout) or one image H×W×C, uint8 (0..255) or
    float (0..1), with C = 1, 3 or 4. ``max_size`` shrinks the longer side to that many pixels
    before the images leave their device."""
    value = unwrap(value)
    ndim = getattr(value, "ndim", None)
    if ndim not in (3, 4):
        raise ValueError(
            f"value must be a batch of images N×H×W×C or one image H×W×C, got "
            f"{'shape ' + str(tuple(value.shape)) if ndim is not None else type(value).__name__}"
        )
    writer = default_writer()
    if ndim == 4:
        writer.add_images(seed_tag(tag), value, seed_step(step, None), dataformats="NHWC",
                          max_size=max_size, layout="tensor")  # fmt: skip
    else:
        writer.add_image(seed_tag(tag), value, seed_step(step, None), dataformats="HWC",
                         max_size=max_size)  # fmt: skip


def text(strings: object, tag: str | None = None) -> summary_pb2.Summary:
    """A Summary of ``strings`` (a list of str, shown as a one-column Markdown table; or one
    str) under ``tag`` (default ``"text"``), for :func:`pb`. Nothing is written."""
    tag = seed_tag(tag, "text")
    if isinstance(strings, str):
        return text_summary(tag, [strings], scalar=True)
    if not isinstance(strings, (list, tuple)) or not strings:
        raise ValueError(f"text takes a non-empty list of str, got {strings!r:.80}")
    bad = [type(s).__name__ for s in strings if not isinstance(s, str)]
    if bad:
        raise TypeError(f"text takes a list of str, found a {bad[0]}")
    return text_summary(tag, list(strings), scalar=False)


def hparams(values: dict) -> summary_pb2.Summary:
    """A Summary of this run's hyperparameters for TensorBoard's HParams dashboard, for
    :func:`pb`. Nothing is written.

    Args:
        values: ``{key: value}`` with keys :class:`HParam` (its domain describes it), str, or
            :class:`Metric` (the metric's value, logged as a scalar under its name).

    Returns:
        a Summary holding ``_hparams_/experiment`` (every hparam with its domain, every
        metric), ``_hparams_/session_start_info`` (the values) and one scalar per metric value.
        A writer that writes it adds ``_hparams_/session_end_info`` when it closes.

    Raises:
        TypeError: a key that is not HParam/Metric/str, a value of the wrong type.
        ValueError: a name used twice. (A value outside its domain only warns.)
    """
    session = _hp.session(values, domains=False)
    now = time.time()
    summary = summary_pb2.Summary()
    summary.MergeFrom(_hparams_summaries.experiment_summary(session, now))
    summary.MergeFrom(_hparams_summaries.session_start_summary(session, now))
    for metric, value in session.metrics:
        summary.MergeFrom(scalar_summary(metric.name, value))
    return summary


def pb(value: object, step: object = None) -> None:
    """Write a Summary message at ``step``: the message itself, or its protobuf text format
    (``str(message)``) or serialized bytes, as str, bytes or an int8/uint8 array (the seed's
    ``np.frombuffer(str(message).encode(), np.int8)``).

    Raises:
        ValueError: ``value`` holds no Summary, or one with no values.
    """
    default_writer().add_summary(_summary_message(unwrap(value)), seed_step(step, None))


def _summary_message(value: object) -> summary_pb2.Summary:
    if isinstance(value, _message.Message):
        return value  # add_summary checks its type
    if isinstance(value, np.ndarray):
        value = array_bytes(value, "value as an array must be int8/uint8 bytes of a Summary")
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(
            "value must be a Summary message, its text format or its serialized bytes (str, "
            f"bytes or an int8 array), got {type(value).__name__}"
        )
    data = bytes(value).rstrip(b"\0")
    summary = summary_pb2.Summary()
    try:
        text_format.Parse(data.decode("utf-8"), summary)
        return summary
    except (UnicodeDecodeError, text_format.ParseError):
        pass
    try:
        summary.ParseFromString(data)
    except _message.DecodeError:
        raise ValueError(
            "value holds neither the text format nor the serialized bytes of a Summary; pass "
            "np.frombuffer(str(message).encode(), np.int8) for a message from text() or "
            "hparams()"
        ) from None
    return summary


class Graph:
    """The model structure graph of the run in ``logdir``.

    ``write_structure_graph(model)`` writes it for TensorBoard's Graphs dashboard (a GraphDef
    event) and as the seed's ``<logdir>/graph/structure_graph.json``, through the default
    writer when that writes to ``logdir`` (else through a writer of its own, closed at once).
    """

    def __init__(self, logdir: str | os.PathLike | None = None) -> None:
        if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
            raise TypeError(f"logdir must be a str or path, got {type(logdir).__name__}")
        self._logdir = None if logdir is None else os.fspath(logdir)
        self._written = False

    def write_structure_graph(self, model: object = None, input_to_model: object = None) -> None:
        """Write ``model``'s structure: a ``torch.nn.Module`` (with ``input_to_model``, the
        shapes too), an ONNX ``ModelProto`` or a list of Keras-style layer dicts (see
        ``SummaryWriter.add_graph``). Once per Graph, as in the seed.

        Raises:
            TypeError: no model, or a model of another kind.
            ValueError: this Graph already wrote its graph.
        """
        if model is None:
            raise TypeError(
                "write_structure_graph needs the model: a torch.nn.Module, an ONNX ModelProto "
                "or a list of Keras-style layer dicts (OneFlow took it from its job; there is "
                "no job here)"
            )
        if self._written:
            raise ValueError(
                "this Graph already wrote its structure graph; create only one per run, or a "
                "new Graph for a new logdir"
            )
        writer = _writer
        logdir = self._logdir
        if logdir is None:
            logdir = default_writer().logdir
        if writer is not None and not writer.closed and _same_folder(writer.logdir, logdir):
            writer.add_graph(model, input_to_model)
        else:
            with SummaryWriter(logdir) as own:
                own.add_graph(model, input_to_model)
        self._written = True


def _same_folder(a: str, b: str) -> bool:
    return os.path.abspath(a) == os.path.abspath(b)
