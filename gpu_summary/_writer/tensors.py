"""``add_tensor`` (a whole tensor as a TensorProto) and ``add_mesh`` (the mesh plugin's
components): host data copied at the call, device data copied back asynchronously and
converted on the writer thread."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np

from gpu_summary._backend import backend_for, exact_host_array, is_device
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import mesh as mesh_summaries
from gpu_summary.summaries import tensor as tensor_summaries


def _host_tensor(tensor: object) -> tuple[np.ndarray, str]:
    """(a private copy, its dtype name); float16 and bfloat16 as their bit patterns."""
    array, name = exact_host_array(tensor, "tensor", "add_tensor")
    if name not in tensor_summaries.FIELDS:
        raise TypeError(f"tensor has dtype {array.dtype}, which add_tensor cannot store; give "
                        f"one of {sorted(tensor_summaries.FIELDS)}")  # fmt: skip
    if name in ("float16", "bfloat16"):
        array = array.view(np.uint16)
    _check_size(array.nbytes)
    return np.array(array, copy=True), name


def _check_size(nbytes: int) -> None:
    if nbytes >= arguments.MAX_RECORD_BYTES:
        raise ValueError(f"tensor holds {nbytes} bytes; a TensorProto holds under 2 GiB — log "
                         "a slice, or its histogram with add_histogram")  # fmt: skip


def log_tensor(
    state: WriterState, tag: object, tensor: object, step: object, walltime: object
) -> None:
    """SummaryWriter.add_tensor, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
    if is_device(tensor):
        backend, array = backend_for(tensor, "tensor")
        dtype = array.dtype_name
        nbytes = array.size * (2 if dtype == "bfloat16" else np.dtype(dtype).itemsize)
        _check_size(nbytes)
        pending = backend.to_host(array)

        def values() -> np.ndarray:
            host = pending.result()
            if dtype == "bfloat16":  # widened exactly to float32: its top 16 bits
                return (host.view(np.uint32) >> 16).astype(np.uint16)
            return host.view(np.uint16) if dtype == "float16" else host
    else:
        host, dtype = _host_tensor(tensor)
        nbytes = host.nbytes

        def values() -> np.ndarray:
            return host

    if not state.writes_files:
        return
    state.enqueue("tensor", tag, step, wall,
                  lambda: tensor_summaries.tensor_summary(tag, values(), dtype),
                  nbytes=nbytes)  # fmt: skip


def _component(values: object, name: str, batch: int | None) -> tuple[object, object, tuple]:
    """(backend, array, [B, N, 3] shape) of one mesh component, its shape checked."""
    backend, array = backend_for(values, name)
    shape = tuple(array.shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"{name} has shape {tuple(array.shape)}; give [batch, N, 3] (or "
                         "[N, 3]): three numbers per point or face")  # fmt: skip
    if batch is not None and shape[0] != batch:
        raise ValueError(f"{name} has a batch of {shape[0]} but vertices one of {batch}; give "
                         "one of each per mesh")  # fmt: skip
    return backend, array, shape


def _colors_u8(colors: np.ndarray) -> np.ndarray:
    if colors.dtype.kind == "f":
        return np.floor(np.clip(np.nan_to_num(colors, nan=0.0), 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.clip(colors, 0, 255).astype(np.uint8)


def check_faces(faces: np.ndarray, points: int) -> None:
    """Raise ValueError unless every face index lies in [0, points)."""
    if faces.size and (faces.min() < 0 or faces.max() >= points):
        raise ValueError(f"faces holds vertex indices {int(faces.min())}..{int(faces.max())}, "
                         f"but there are {points} vertices; indices run from 0 to "
                         f"{points - 1}")  # fmt: skip


def log_mesh(
    state: WriterState,
    tag: object,
    vertices: object,
    colors: object,
    faces: object,
    config_dict: object,
    step: object,
    walltime: object,
) -> None:
    """SummaryWriter.add_mesh, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
    if config_dict is None:
        json_config = "{}"
    else:
        if not isinstance(config_dict, dict):
            raise TypeError(f"config_dict must be a dict of three.js settings, got "
                            f"{type(config_dict).__name__}")  # fmt: skip
        try:
            json_config = json.dumps(config_dict, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"config_dict must hold JSON values (dicts, lists, str, finite "
                            f"numbers): {exc}") from None  # fmt: skip
    parts: dict[str, tuple] = {}
    backend, array, shape = _component(vertices, "vertices", None)
    parts["vertices"] = (backend, array, shape)
    if faces is not None:
        parts["faces"] = _component(faces, "faces", shape[0])
        if getattr(parts["faces"][1].dtype, "kind", "f") not in "iu":
            raise TypeError(f"faces must hold integer vertex indices, got "
                            f"{parts['faces'][1].dtype}")  # fmt: skip
    if colors is not None:
        parts["colors"] = _component(colors, "colors", shape[0])
        if parts["colors"][2] != shape:
            raise ValueError(f"colors has shape {parts['colors'][2]} but vertices {shape}; "
                             "give one RGB color per vertex")  # fmt: skip
    points = shape[1]
    sizes = {name: math.prod(part_shape) * (1 if name == "colors" else 4)  # as written
             for name, (_, _, part_shape) in parts.items()}  # fmt: skip
    largest = max(sizes, key=sizes.__getitem__)  # the component blamed
    arguments.check_record(sum(sizes.values()), largest, f"a mesh of {points:,} points",
                           "log fewer points, or a sample of them")  # fmt: skip
    host = {name: np.array(part, copy=True).reshape(part_shape)
            for name, (part_backend, part, part_shape) in parts.items()
            if part_backend is numpy_backend}  # fmt: skip
    if "faces" in host:
        check_faces(host["faces"], points)
    if not state.writes_files:
        return
    pending = {name: (part_backend.to_host(part), part_shape)
               for name, (part_backend, part, part_shape) in parts.items()
               if part_backend is not numpy_backend}  # fmt: skip

    def build() -> summary_pb2.Summary | None:
        arrays = dict(host)
        for name, (result, part_shape) in pending.items():
            arrays[name] = np.asarray(result.result()).reshape(part_shape)
        if "faces" in pending:
            try:
                check_faces(arrays["faces"], points)
            except ValueError as exc:
                warnings.warn(f"add_mesh({tag!r}) not written: {exc}", RuntimeWarning,
                              stacklevel=1)  # fmt: skip
                return None
        if "colors" in arrays:
            arrays["colors"] = _colors_u8(arrays["colors"])
        ordered = {name: arrays[name] for name in ("vertices", "faces", "colors") if name in arrays}
        return mesh_summaries.mesh_summary(tag, ordered, json_config)

    nbytes = sum(math.prod(p[2]) * 8 for p in parts.values())
    state.enqueue("mesh", tag, step, wall, build, nbytes=nbytes)
