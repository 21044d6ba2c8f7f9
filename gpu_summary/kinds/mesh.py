"""``add_mesh``: a mesh or point cloud as the mesh plugin's components (vertices, faces,
colors). Host data is copied at the call, device data copied back asynchronously and converted
on the writer thread."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import mesh as mesh_summaries


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


class MeshMethods:
    """The mesh method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_mesh(
        self,
        tag: str,
        vertices: object,
        colors: object = None,
        faces: object = None,
        config_dict: dict | None = None,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log a mesh or point cloud (TensorBoard's Mesh dashboard).

        Args:
            tag: series name.
            vertices: [B, N, 3] (or [N, 3]) coordinates, stored float32.
            colors: [B, N, 3] per-vertex RGB: uint8 0..255 or float 0..1 (clipped).
            faces: [B, F, 3] integer vertex indices in [0, N) of each triangle.
            config_dict: three.js scene settings (camera, lights, material), JSON values.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.

        Raises:
            ValueError: shapes not [B, N, 3] or not matching, over 2 GiB in all (one
                record's limit), a face index outside [0, N)
                (device faces: checked on the writer thread; the mesh is then skipped with a
                RuntimeWarning). TypeError: non-integer faces, a config that is not JSON.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
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
            ordered = {
                name: arrays[name] for name in ("vertices", "faces", "colors") if name in arrays
            }
            return mesh_summaries.mesh_summary(tag, ordered, json_config)

        nbytes = sum(math.prod(p[2]) * 8 for p in parts.values())
        state.enqueue("mesh", tag, step, wall, build, nbytes=nbytes)
