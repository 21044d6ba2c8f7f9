"""``add_tensor``: a whole tensor as a TensorProto (plugin ``tensor``). Host data is copied
at the call, device data copied back asynchronously and converted on the writer thread."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend import backend_for, exact_host_array, is_device
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
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


class TensorMethods:
    """The tensor method of :class:`gpu_summary.SummaryWriter`."""

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
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
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
