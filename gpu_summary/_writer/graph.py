"""``add_graph``: a model's structure as a GraphDef event and the seed's structure graph."""

from __future__ import annotations

import json
import os
import time

from gpu_summary._core import arguments
from gpu_summary._events import safe_files
from gpu_summary._graph import model_nodes
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.summaries import graph as graph_summaries


def log_graph(
    state: WriterState, model: object, input_to_model: object = None, walltime: float | None = None
) -> None:
    """SummaryWriter.add_graph, on a writer's state."""
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
    state.events.add(jobs.graph(graph_def, wall))


def log_onnx_graph(state: WriterState, path: object, walltime: float | None = None) -> None:
    """SummaryWriter.add_onnx_graph: the model read with ``onnx.load``, logged by
    :func:`log_graph`."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"onnx_model_file must be the path of a .onnx file, got "
                        f"{type(path).__name__}: {path!r}")  # fmt: skip
    state.events.check_open()
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
    log_graph(state, model, None, walltime)
