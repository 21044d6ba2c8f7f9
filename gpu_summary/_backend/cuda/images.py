"""The device backend's thumbnails (``kernels/gs_thumbnails.cu``)."""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.cuda import runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._backend.cuda_kernels import thumbnails as thumbnails_abi
from gpu_summary._core.results import Pending

thumbnail_size = numpy_backend.thumbnail_size


def thumbnails(
    images: DeviceArray, max_size: int | None, *, truncate: bool = False
) -> Pending[np.ndarray]:
    """uint8 NHWC thumbnails of NHWC device images (any strides), made on the device; floats
    converted as the NumPy backend's ``image_to_uint8`` (``truncate``: as torch's writer).

    Only the thumbnails are copied to the host; the result is a NumPy array over pinned memory.
    """
    n, h, w, c = images.shape
    out_h, out_w = thumbnail_size(h, w, max_size)
    total = n * out_h * out_w * c
    with cupy.cuda.Device(images.device_id), images.stream:
        array = images.array
        itemsize = array.dtype.itemsize
        if any(s % itemsize for s in array.strides):  # misaligned views: copy (on the stream)
            array = cupy.ascontiguousarray(array)
        strides = tuple(s // itemsize for s in array.strides)
        out = cupy.cuda.alloc(max(total, 1))
        dtype = images.dtype_name
        kernel = runtime.kernel(
            images.device_id,
            kernel_sources.THUMBNAILS_FILE,
            thumbnails_abi.thumbnails_expression(dtype),
            dtype,
        )
        if total:
            grid = runtime.grid_for(images.device_id, total, kernel)
            args = thumbnails_abi.thumbnails_args(
                array.data.ptr, (n, h, w, c), strides, out_h, out_w, out.ptr, truncate
            )
            kernel((grid,), (kernel_sources.THREADS,), args)
        host, event = runtime.launch_copy(out, total, images.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return raw.reshape(n, out_h, out_w, c)

        return runtime.DevicePending(event, host, parse, (out, array, images.owner))
