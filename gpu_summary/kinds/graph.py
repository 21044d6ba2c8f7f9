"""``add_graph`` and ``add_onnx_graph``: a model's structure as a GraphDef event and the seed's
structure graph."""

from __future__ import annotations

import json
import os
import time

from gpu_summary._core import arguments
from gpu_summary._events import safe_files
from gpu_summary._events.jobs import Job
from gpu_summary._graph import model_nodes
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import event_pb2
from gpu_summary.summaries import graph as graph_summaries


def graph_job(graph_def: bytes, wall_time: float) -> Job:
    """An Event holding a serialized GraphDef (TensorBoard shows the latest one)."""
    data = event_pb2.Event(wall_time=wall_time, step=0, graph_def=graph_def).SerializeToString()
    return jobs.ready_event(data, "graph")


class GraphMethods:
    """The graph methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

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
            verbose: torch's, accepted (the graph comes from torch.fx).
            use_strict_trace: torch's, accepted (the graph comes from torch.fx).
            walltime: seconds since the epoch; default now.

        Writes a GraphDef event and ``<logdir>/graph/structure_graph.json`` (replaced
        atomically by later calls).

        Raises:
            TypeError: a model of another kind. ValueError: a malformed model, or an
                ``input_to_model`` it fails on (then also a RuntimeError, as torch's raises).
                Nothing is written then.
        """
        state = self._state
        state.events.check_open()
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        nodes, name = model_nodes(model, input_to_model)
        try:
            graph_def = graph_summaries.graph_def(nodes).SerializeToString()
        except UnicodeEncodeError as exc:
            arguments.check_unicode(exc.object, "a layer's name, type or input")
            raise  # not reached: check_unicode raises for what UTF-8 cannot encode
        if not state.writes_files:
            return  # rank 0's graph only
        text = json.dumps(graph_summaries.structure_graph(nodes, name), indent=1)
        # Readers see the old file or the new one, never a part; a failed write (or a link where
        # graph/ should be) leaves neither a part nor a temporary file, and raises here (OSError)
        # with nothing queued.
        safe_files.write(state.logdir, "graph/structure_graph.json", text.encode("utf-8"))
        state.events.add(graph_job(graph_def, wall))

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
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"onnx_model_file must be the path of a .onnx file, got "
                            f"{type(path).__name__}: {path!r}")  # fmt: skip
        self._state.events.check_open()
        try:
            import onnx
        except ImportError as exc:
            raise ImportError(
                f"add_onnx_graph needs the onnx package ({exc}); pip install onnx"
            ) from exc
        if not os.path.isfile(path):
            raise FileNotFoundError(f"onnx_model_file {os.fspath(path)!r} is not a file")
        try:
            model = onnx.load(os.fspath(path))
        except Exception as exc:  # noqa: BLE001 - protobuf's DecodeError and onnx's own
            raise ValueError(f"onnx_model_file {os.fspath(path)!r} is not an ONNX model: "
                             f"{type(exc).__name__}: {exc}") from None  # fmt: skip
        # This class's add_graph, as the model was always logged (never a subclass's override).
        GraphMethods.add_graph(self, model, None, walltime=walltime)
