"""An ONNX ``ModelProto`` as graph nodes.

Graph inputs (those that are not initializers) become "Input" nodes; each node keeps its
op_type and attributes, its name (or "<op_type>_<i>" when unnamed); an input tensor is an edge
from the node that produces it ("node:k" for its k-th output). Initializers (weights) are not
nodes: their names and shapes are listed in the consuming node's ``weights`` attr. Graph outputs
become "Output" nodes.
"""

from __future__ import annotations

from gpu_summary.summaries.graph import Node


def nodes_from_onnx(model: object) -> list[Node]:
    from onnx import helper

    graph = model.graph
    weights = {init.name: list(init.dims) for init in graph.initializer}
    producers: dict[str, str] = {}
    nodes = []
    for value in graph.input:
        if value.name not in weights:
            nodes.append(Node(value.name, "Input"))
            producers[value.name] = value.name
    used = {node.name for node in nodes}
    for index, onnx_node in enumerate(graph.node):
        name = onnx_node.name or f"{onnx_node.op_type}_{index}"
        while name in used:
            name = f"{name}_{index}"
        used.add(name)
        for k, output in enumerate(onnx_node.output):
            producers[output] = name if k == 0 else f"{name}:{k}"
        attrs: dict[str, object] = {}
        for attribute in onnx_node.attribute:
            value = helper.get_attribute_value(attribute)
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            elif isinstance(value, list):
                value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
            attrs[attribute.name] = value
        inputs, used_weights = [], {}
        for tensor in onnx_node.input:
            if tensor in weights:
                used_weights[tensor] = weights[tensor]
            elif tensor:  # "" marks an omitted optional input
                inputs.append(producers.get(tensor, tensor))
        if used_weights:
            attrs["weights"] = used_weights
        nodes.append(Node(name, onnx_node.op_type, inputs, attrs))
    for value in graph.output:
        if value.name in producers:
            nodes.append(Node(f"output/{value.name}", "Output", [producers[value.name]]))
    return nodes
