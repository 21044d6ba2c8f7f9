"""Models to graph nodes: one adapter per kind of model, and the checks every graph passes.

``model_nodes`` takes the seed's Keras-style list of layer dicts, a ``torch.nn.Module`` or an
ONNX ``ModelProto`` and returns validated :class:`~gpu_summary.summaries.graph.Node` lists.
PyTorch and ONNX are imported only when such a model arrives (never by this module).
"""

from __future__ import annotations

import sys

from gpu_summary.summaries.graph import Node


def _is_torch_module(model: object) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_onnx_model(model: object) -> bool:
    kind = type(model)
    return kind.__name__ == "ModelProto" and kind.__module__.split(".")[0] == "onnx"


def check_nodes(nodes: list[Node]) -> None:
    """Raise ValueError unless names are unique and every input names a node."""
    names: set[str] = set()
    for node in nodes:
        if node.name in names:
            raise ValueError(f"the graph names layer {node.name!r} twice; names must be unique")
        names.add(node.name)
    for node in nodes:
        for ref in node.inputs:
            source = ref.removeprefix("^").partition(":")[0]
            if source not in names:
                raise ValueError(
                    f"layer {node.name!r} takes input {source!r}, which no layer of the graph "
                    "is named; add that layer or fix the name"
                )


def model_nodes(model: object, input_to_model: object = None) -> tuple[list[Node], str]:
    """The nodes of ``model`` and a name for it.

    Raises:
        TypeError: a model of another kind, or a malformed layer list.
        ValueError: duplicate names, an input naming no layer.
    """
    if isinstance(model, (list, tuple)):
        from gpu_summary._graph import keras

        nodes, name = keras.nodes_from_layers(model), "model"
    elif _is_torch_module(model):
        from gpu_summary._graph import torch_fx

        nodes, name = torch_fx.nodes_from_module(model, input_to_model), type(model).__name__
    elif _is_onnx_model(model):
        from gpu_summary._graph import onnx_model

        nodes, name = onnx_model.nodes_from_onnx(model), model.graph.name or "model"
    else:
        kind = type(model)
        raise TypeError(
            f"model must be a list of layer dicts, a torch.nn.Module or an onnx.ModelProto, "
            f"got {kind.__module__}.{kind.__qualname__}"
        )
    check_nodes(nodes)
    return nodes, name
