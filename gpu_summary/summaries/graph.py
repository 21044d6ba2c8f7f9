"""Model structure: a GraphDef for TensorBoard's Graphs dashboard, and the seed's Keras-style
``structure_graph.json``, from one list of :class:`Node`.

The GraphDef goes into ``Event.graph_def`` (serialized), which the dashboard draws: one NodeDef
per layer (``name``, ``op``, ``input``, ``attr``), "/" in names drawn as nested groups, an attr
``_output_shapes`` (when known) labelling the edges with tensor shapes.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from gpu_summary.proto import graph_pb2, tensor_shape_pb2


@dataclasses.dataclass
class Node:
    """One layer or operation.

    ``inputs`` name other nodes ("node", or "node:k" for its k-th output); ``attrs`` become
    NodeDef attrs; ``config`` is the layer's config in the JSON (defaults to ``attrs``);
    ``output_shapes`` (dims, -1 unknown) label the dashboard's edges.
    """

    name: str
    op: str
    inputs: list[str] = dataclasses.field(default_factory=list)
    attrs: dict[str, object] = dataclasses.field(default_factory=dict)
    config: dict | None = None
    output_shapes: list[list[int]] | None = None
    inbound_nodes: list | None = None  # the caller's own Keras inbound_nodes, kept verbatim


def jsonable(value: object) -> object:
    """A JSON-compatible copy of ``value`` (NumPy scalars and arrays, tuples, sets, other
    objects as their str)."""
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    return str(value)


def _shape(dims: list[int]) -> tensor_shape_pb2.TensorShapeProto:
    return tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=int(d)) for d in dims]
    )


def attr_value(value: object) -> graph_pb2.AttrValue:
    """An AttrValue: bool, int, float, str/bytes, and uniform lists of those, as themselves;
    anything else (dicts, mixed lists, objects) as its JSON text."""
    value = jsonable(value) if not isinstance(value, bytes) else value
    if isinstance(value, bool):
        return graph_pb2.AttrValue(b=value)
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return graph_pb2.AttrValue(i=value)
    if isinstance(value, float):
        return graph_pb2.AttrValue(f=value)
    if isinstance(value, bytes):
        return graph_pb2.AttrValue(s=value)
    if isinstance(value, str):
        return graph_pb2.AttrValue(s=value.encode("utf-8"))
    if isinstance(value, list) and value:
        kinds = {type(v) for v in value}
        if kinds == {bool}:
            return graph_pb2.AttrValue(list={"b": value})
        if kinds == {int} and all(-(2**63) <= v < 2**63 for v in value):
            return graph_pb2.AttrValue(list={"i": value})
        if kinds <= {int, float}:
            return graph_pb2.AttrValue(list={"f": [float(v) for v in value]})
        if kinds == {str}:
            return graph_pb2.AttrValue(list={"s": [v.encode("utf-8") for v in value]})
    return graph_pb2.AttrValue(s=json.dumps(value, sort_keys=True).encode("utf-8"))


def graph_def(nodes: list[Node]) -> graph_pb2.GraphDef:
    """The GraphDef of validated nodes (unique names, known inputs)."""
    graph = graph_pb2.GraphDef()
    for node in nodes:
        node_def = graph.node.add(name=node.name, op=node.op, input=node.inputs)
        for key, value in node.attrs.items():
            node_def.attr[key].CopyFrom(attr_value(value))
        if node.output_shapes is not None:
            node_def.attr["_output_shapes"].list.shape.extend(
                _shape(dims) for dims in node.output_shapes
            )
    return graph


def _inbound(node: Node) -> list:
    if node.inbound_nodes is not None:
        return jsonable(node.inbound_nodes)
    if not node.inputs:
        return []
    entries = []
    for ref in node.inputs:
        name, _, index = ref.partition(":")
        entries.append([name, 0, int(index or 0), {}])
    return [entries]


def structure_graph(nodes: list[Node], name: str) -> dict:
    """The seed's ``structure_graph.json`` content: a Keras functional-model description."""
    consumed = {ref.partition(":")[0] for node in nodes for ref in node.inputs}
    layers = [
        {
            "name": node.name,
            "class_name": node.op,
            "config": jsonable(node.config if node.config is not None else node.attrs),
            "inbound_nodes": _inbound(node),
        }
        for node in nodes
    ]
    return {
        "class_name": "Model",
        "config": {
            "name": name,
            "layers": layers,
            "input_layers": [[n.name, 0, 0] for n in nodes if not n.inputs],
            "output_layers": [[n.name, 0, 0] for n in nodes if n.name not in consumed],
        },
        "backend": "gpu_summary",
    }
