"""``add_graph``: a model's structure as a GraphDef event and the seed's structure graph."""

from __future__ import annotations

import json
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
