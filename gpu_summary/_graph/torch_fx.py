"""A ``torch.nn.Module`` as graph nodes: its torch.fx dataflow graph when it traces, otherwise
its module tree.

Traced: placeholders become "Input" nodes, each module call a node named by the module's path
("encoder/layer1/fc", drawn as nested groups) with the module's class as op and its
hyperparameters (``in_features``, ``kernel_size``, ...) and parameter shapes as attrs; function
and method calls are named by fx. With ``input_to_model``, fx's shape propagation runs once on
it and every node carries the shapes of its outputs. Untraceable modules (data-dependent
control flow): every submodule is a node in its scope, and the children of an ``nn.Sequential``
are chained in order.
"""

from __future__ import annotations

import itertools
import sys

from gpu_summary.summaries.graph import Node

_SCALARS = (bool, int, float, str)


def _hyperparameters(module: object) -> dict[str, object]:
    """Public plain attributes of a module (its constructor's settings), parameter shapes."""
    attrs: dict[str, object] = {}
    for key, value in vars(module).items():
        if key.startswith("_") or key == "training":
            continue
        if isinstance(value, _SCALARS) or (
            isinstance(value, tuple) and all(isinstance(v, _SCALARS) for v in value)
        ):
            attrs[key] = list(value) if isinstance(value, tuple) else value
    for key, parameter in module.named_parameters(recurse=False):
        attrs[f"{key}_shape"] = list(parameter.shape)
    return attrs


def _scope(path: str) -> str:
    return path.replace(".", "/")


def _flat_nodes(value: object, node_type: type) -> list:
    """fx Nodes found in an argument (nested tuples, lists, dicts)."""
    if isinstance(value, node_type):
        return [value]
    if isinstance(value, (list, tuple)):
        return [n for item in value for n in _flat_nodes(item, node_type)]
    if isinstance(value, dict):
        return [n for item in value.values() for n in _flat_nodes(item, node_type)]
    return []


def _shapes(fx_node: object) -> list[list[int]] | None:
    meta = fx_node.meta.get("tensor_meta")
    if meta is None:
        return None
    # One TensorMetadata (a NamedTuple itself), or a tuple/list of them for several outputs.
    metas = [meta] if hasattr(meta, "shape") else list(meta)
    shapes = [list(m.shape) for m in metas if hasattr(m, "shape")]
    return shapes or None


class ModelInputError(ValueError, RuntimeError):
    """``input_to_model`` failed in the model: a ValueError, and a RuntimeError as torch's
    ``add_graph`` raises then (its tracer's error), so either ``except`` catches it."""


def _propagate_shapes(traced: object, input_to_model: object) -> None:
    from torch.fx.passes.shape_prop import ShapeProp

    inputs = input_to_model if isinstance(input_to_model, tuple) else (input_to_model,)
    try:
        ShapeProp(traced).propagate(*inputs)
    except Exception as exc:
        raise ModelInputError(
            f"input_to_model could not run through the model ({type(exc).__name__}: {exc}); "
            "pass an input the model accepts (a tensor or a tuple of its arguments), or None"
        ) from exc


def _traced_nodes(traced: object) -> list[Node]:
    fx = sys.modules["torch.fx"]
    names: dict[object, str] = {}
    used: set[str] = set()
    nodes = []
    for fx_node in traced.graph.nodes:
        attrs: dict[str, object] = {}
        if fx_node.op == "placeholder":
            name, op = fx_node.name, "Input"
        elif fx_node.op == "call_module":
            submodule = traced.get_submodule(fx_node.target)
            name, op = _scope(fx_node.target), type(submodule).__name__
            attrs = _hyperparameters(submodule)
        elif fx_node.op == "call_function":
            name = fx_node.name
            op = getattr(fx_node.target, "__name__", str(fx_node.target))
        elif fx_node.op == "call_method":
            name, op = fx_node.name, str(fx_node.target)
        elif fx_node.op == "get_attr":
            name, op = _scope(fx_node.target), "Parameter"
        else:  # output
            name, op = "output", "Output"
        if name in used:  # a module called twice: one node per call
            name = f"{name}_{fx_node.name}"
        used.add(name)
        names[fx_node] = name
        inputs = [names[n] for n in _flat_nodes((fx_node.args, fx_node.kwargs), fx.Node)]
        nodes.append(
            Node(name=name, op=op, inputs=list(dict.fromkeys(inputs)), attrs=attrs,
                 output_shapes=_shapes(fx_node))
        )  # fmt: skip
    return nodes


def _tree_nodes(module: object) -> list[Node]:
    torch = sys.modules["torch"]
    nodes = []
    for path, submodule in module.named_modules():
        if not path:
            continue
        nodes.append(Node(_scope(path), type(submodule).__name__, [], _hyperparameters(submodule)))
    by_name = {node.name: node for node in nodes}
    for path, submodule in module.named_modules():
        if isinstance(submodule, torch.nn.Sequential):
            children = [f"{path}.{c}" if path else c for c, _ in submodule.named_children()]
            for before, after in itertools.pairwise(children):
                by_name[_scope(after)].inputs.append(_scope(before))
    if not nodes:  # a module with no submodules
        nodes.append(Node(type(module).__name__, type(module).__name__, [],
                          _hyperparameters(module)))  # fmt: skip
    return nodes


def nodes_from_module(module: object, input_to_model: object = None) -> list[Node]:
    """Nodes of a torch module (see the module docstring).

    Raises:
        ModelInputError: ``input_to_model`` was given and the traced model fails on it (a
            ValueError and a RuntimeError).
    """
    import torch.fx

    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception:  # noqa: BLE001 - fx raises many kinds on untraceable code
        return _tree_nodes(module)
    if input_to_model is not None:
        _propagate_shapes(traced, input_to_model)
    return _traced_nodes(traced)
