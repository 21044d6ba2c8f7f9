"""The device backend's low-precision counts (``kernels/gs_formats.cu``): per format of
``formats=``, the values that overflow and underflow it. The NumPy backend's
``format_counts`` is the specification (``gpu_summary._backend.numpy.formats``); counts
equal exactly.

:func:`format_counts` zeroes a small buffer, launches one kernel and copies 16 bytes a format
back (:func:`format_counts_many`: one buffer and one copy for many tensors);
:func:`format_counts_into` only launches, adding to a buffer the caller owns (a probe's
accumulator). None waits for the device.
"""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend.cuda import runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import formats as formats_abi
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core.results import Pending, Ready


def format_counts(values: DeviceArray, formats: tuple[str, ...]) -> Pending[np.ndarray]:
    """int64 counts of shape (len(formats), 2) (overflow, underflow) of a device tensor.

    Launched on the tensor's stream: a memset, one kernel (none for bool or an empty tensor)
    and an asynchronous copy into pinned memory; ``result()`` (the writer thread) waits on the
    event recorded after the copy. A layout the kernel cannot index is copied to contiguous
    memory on the stream first.
    """
    n_formats = len(formats)
    if not n_formats:
        return Ready(np.zeros((0, 2), np.int64))
    with cupy.cuda.Device(values.device_id), values.stream:
        nbytes = formats_abi.out_bytes(n_formats)
        memory = cupy.cuda.alloc(nbytes)
        cupy.cuda.runtime.memsetAsync(memory.ptr, 0, nbytes, values.stream.ptr)
        pointer, shape, strides, keep = runtime.flat_source(values)
        _launch(values, pointer, shape, strides, formats, memory.ptr)
        host, event = runtime.launch_copy(memory, nbytes, values.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return formats_abi.parse(raw, n_formats)

        return runtime.DevicePending(event, host, parse, (memory, keep, values.owner))


def format_counts_many(
    tensors: list[DeviceArray], formats: tuple[str, ...]
) -> Pending[list[np.ndarray]]:
    """:func:`format_counts` of several tensors of one device (``add_histograms``, a model's
    parameters): one buffer zeroed once, a launch per tensor, one copy back, all on the first
    tensor's stream after the work queued on the others'. No sync."""
    first = tensors[0]
    n_formats = len(formats)
    each = formats_abi.out_bytes(n_formats)
    with cupy.cuda.Device(first.device_id), first.stream:
        for other in tensors[1:]:
            runtime.order_after(other.stream, first.stream)
        memory = cupy.cuda.alloc(max(each * len(tensors), 1))
        cupy.cuda.runtime.memsetAsync(memory.ptr, 0, each * len(tensors), first.stream.ptr)
        keep: list = [memory]
        for k, values in enumerate(tensors):
            pointer, shape, strides, array = runtime.flat_source(values)  # a copy: this stream
            _launch(values, pointer, shape, strides, formats, memory.ptr + k * each)
            keep += [array, values.owner]
        host, event = runtime.launch_copy(memory, each * len(tensors), first.stream)

        def parse(raw: np.ndarray) -> list[np.ndarray]:
            return [formats_abi.parse(raw[k * each : (k + 1) * each], n_formats)
                    for k in range(len(tensors))]  # fmt: skip

        return runtime.DevicePending(event, host, parse, tuple(keep))


def format_counts_into(values: DeviceArray, formats: tuple[str, ...], out_ptr: int) -> None:
    """Add the counts of a device tensor to ``2 * len(formats)`` uint64 words at device
    address ``out_ptr`` (per format: overflow, underflow), in one launch on ``values.stream``.

    Allocates nothing, copies nothing and never waits, so it may be called while the stream
    captures a CUDA graph, once the kernel of the tensor's dtype is loaded: the first call for
    a dtype compiles its module with NVRTC and asks the device for its occupancy, so make that
    call, or ``gs.warm_up(dtypes)``, before capturing. The caller keeps the tensor and the
    buffer alive until the launch has run, and zeroes the buffer when it wants counts from
    zero.

    Raises:
        ValueError: more formats than the kernel takes, or a layout the kernel cannot index
            without a copy (strides that are not whole elements, or more than
            ``layout.MAX_DIMS`` dimensions after merging): pass a contiguous tensor.
    """
    if not formats:
        return
    array = values.array
    view = kernel_layout.kernel_view(array.data.ptr, array.shape, array.strides,
                                     array.dtype.itemsize)  # fmt: skip
    if view is None:
        raise ValueError(
            f"format_counts_into reads the tensor where it lies, and a tensor of shape "
            f"{tuple(array.shape)} and strides {tuple(array.strides)} needs a copy first; pass "
            "a contiguous tensor (e.g. tensor.contiguous())"
        )
    with cupy.cuda.Device(values.device_id), values.stream:
        _launch(values, *view, formats, out_ptr)


def _launch(
    values: DeviceArray,
    pointer: int,
    shape: list[int],
    strides: list[int],
    formats: tuple[str, ...],
    out_ptr: int,
) -> None:
    """One gs_format_counts launch on the current device and stream."""
    n = int(values.size)
    dtype = values.dtype_name
    if n == 0 or dtype == "bool":  # nothing to count: a bool is never out of range
        return
    args = formats_abi.format_args(pointer, n, shape, strides, dtype, formats, out_ptr)
    kernel = runtime.kernel(values.device_id, kernel_sources.FORMATS_FILE,
                            formats_abi.format_expression(dtype), dtype)  # fmt: skip
    grid = runtime.grid_for(values.device_id, n, kernel)
    kernel((grid,), (kernel_sources.THREADS,), args)
