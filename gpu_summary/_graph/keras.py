"""The seed's Keras-style layer list: ``[{"name", "class_name", "config", "inbound_nodes"}]``.

``inbound_nodes`` may be Keras 2's ``[[[name, node_index, tensor_index, kwargs], ...]]``, Keras
3's ``[{"args": [...keras tensors with "keras_history"...], "kwargs": {...}}]``, or simply a
list of layer names; a tensor index k > 0 becomes the input "name:k".
"""

from __future__ import annotations

from gpu_summary.summaries.graph import Node


def _refs(entry: object, where: str) -> list[str]:
    """Input references found in one inbound entry (recursively)."""
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, dict):
        config = entry.get("config")
        history = config.get("keras_history") if isinstance(config, dict) else None
        if history:  # a Keras 3 tensor
            return _refs(list(history), where)
        found = []
        for key in ("args", "kwargs"):
            value = entry.get(key)
            values = value.values() if isinstance(value, dict) else value or []
            for item in values:
                if isinstance(item, (dict, list)):
                    found += _refs(item, where)
        return found
    if isinstance(entry, (list, tuple)):
        if entry and isinstance(entry[0], str):  # [name, node_index, tensor_index, kwargs]
            tensor = entry[2] if len(entry) > 2 and isinstance(entry[2], int) else 0
            return [entry[0] if not tensor else f"{entry[0]}:{tensor}"]
        found = []
        for item in entry:
            found += _refs(item, where)
        return found
    raise TypeError(f"{where}: cannot read inbound node entry {entry!r}")


def nodes_from_layers(layers: list | tuple) -> list[Node]:
    """Nodes of a Keras-style layer list.

    Raises:
        TypeError: a layer that is not a dict with str "name" and "class_name", a "config"
            that is not a dict, an unreadable "inbound_nodes".
    """
    if not layers:
        raise ValueError("the layer list is empty; give at least one layer")
    nodes = []
    for index, layer in enumerate(layers):
        where = f"layer {index}"
        if not isinstance(layer, dict):
            raise TypeError(f"{where} must be a dict, got {type(layer).__name__}")
        name, op = layer.get("name"), layer.get("class_name")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{where} needs a non-empty str 'name', got {name!r}")
        where = f"layer {name!r}"
        if not isinstance(op, str) or not op:
            raise TypeError(f"{where} needs a non-empty str 'class_name', got {op!r}")
        config = layer.get("config", {})
        if not isinstance(config, dict):
            raise TypeError(f"{where}: 'config' must be a dict, got {type(config).__name__}")
        inbound = layer.get("inbound_nodes", [])
        if not isinstance(inbound, (list, tuple)):
            raise TypeError(f"{where}: 'inbound_nodes' must be a list, got {inbound!r}")
        inputs = list(dict.fromkeys(_refs(list(inbound), where)))
        nodes.append(
            Node(name=name, op=op, inputs=inputs, attrs=dict(config), config=config,
                 inbound_nodes=list(inbound))
        )  # fmt: skip
    return nodes
