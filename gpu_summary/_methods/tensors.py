"""Whole tensors and 3-D meshes."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._writer import tensors
from gpu_summary._writer.state import WriterState


class TensorMethods:
    """The tensor and mesh methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_tensor(
        self,
        tag: str,
        tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log a whole tensor as a TensorProto (plugin ``tensor``; read back exactly by
        ``tensorboard.util.tensor_util.make_ndarray`` and tbparse).

        Args:
            tag: series name.
            tensor: bool, int8..64, uint8..64, float16, bfloat16, float32, float64, complex64
                or complex128 data; host data is copied at the call, a device tensor
                asynchronously.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.

        float16 and bfloat16 are stored as their 16-bit patterns (TensorFlow's ``half_val``;
        torch stores float32 bits there, which readers cannot decode).

        Raises:
            TypeError: another dtype. ValueError: 2 GiB or more.
        """
        global_step = arguments.either_step(global_step, step)
        tensors.log_tensor(self._state, tag, tensor, global_step, walltime)

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
        global_step = arguments.either_step(global_step, step)
        tensors.log_mesh(self._state, tag, vertices, colors, faces, config_dict, global_step,
                         walltime)  # fmt: skip
