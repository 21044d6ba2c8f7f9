"""Device tensors brought to the host (asynchronously), the Projector's matrix and its principal
components on the device, and private copies on the producer's stream."""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend.cuda import runtime
from gpu_summary._backend.cuda.device_tensor import BFloat16, DeviceArray
from gpu_summary._backend.pca import principal_components
from gpu_summary._core.results import Derived, Pending


def to_host(values: DeviceArray) -> Pending[np.ndarray]:
    """A host copy of a device tensor (bfloat16 as float32), copied asynchronously."""
    dtype = values.dtype
    shape = tuple(values.shape)
    with cupy.cuda.Device(values.device_id), values.stream:
        array = values.array
        if not array.flags.c_contiguous:
            array = cupy.ascontiguousarray(array)  # on the stream
        host, event = runtime.launch_copy(array.data, array.nbytes, values.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            if isinstance(dtype, BFloat16):
                bits = raw.view(np.uint16).astype(np.uint32) << 16
                return bits.view(np.float32).reshape(shape)
            return raw.view(dtype).reshape(shape).copy()

        return runtime.DevicePending(event, host, parse, (array, values.owner))


def embedding(matrix: DeviceArray, components: int | None) -> Pending[np.ndarray]:
    """The NumPy backend's ``embedding`` for a device matrix.

    Without ``components``: an asynchronous copy of the matrix, converted to float32 on the
    writer thread. With it: the principal components on the device (centring, ``XᵀX`` and its
    eigenvectors with cuSOLVER, in float64, on the stream, with CuPy's linalg error check off so
    that the caller never waits), then a copy of the N×k projection.
    """
    n = int(matrix.shape[0])
    if components is None:
        pending = to_host(matrix)
        return Derived(lambda: np.asarray(pending.result(), dtype=np.float32).reshape(n, -1))
    import cupyx

    with cupy.cuda.Device(matrix.device_id), matrix.stream, cupyx.errstate(linalg="ignore"):
        array = matrix.array
        if isinstance(matrix.dtype, BFloat16):
            array = (array.astype(cupy.uint32) << 16).view(cupy.float32)
        x = array.reshape(n, -1).astype(cupy.float64)
        projected = cupy.ascontiguousarray(principal_components(cupy, x, components))
        k = projected.shape[1]
        host, event = runtime.launch_copy(projected.data, projected.nbytes, matrix.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return raw.view(np.float32).reshape(n, k).copy()

        return runtime.DevicePending(event, host, parse, (projected, matrix.owner))


def snapshot(values: DeviceArray) -> DeviceArray:
    """A private device copy of ``values``, made on the producer's stream (no sync), that later
    launches on the same stream may read after the producer overwrote the original."""
    with cupy.cuda.Device(values.device_id), values.stream:
        copy = values.array.copy()
    return DeviceArray(copy, values.stream, values.dtype, values.owner)
