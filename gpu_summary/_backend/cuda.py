"""The device backend: CUDA kernels launched on the producer's stream, results copied back
asynchronously.

Each function has the NumPy backend's signature and semantics (that module is the
specification; tests compare counts exactly and moments within ``MOMENT_RTOL``). On the
caller's thread a reduction only *launches*: a memset of a small device result buffer, one or
two kernels (``kernels/gs_reduce.cu``, ``kernels/gs_thumbnails.cu``), a ``cudaMemcpyAsync`` of
the compact result into pinned host memory, and a CUDA event, all on the stream that orders the
producer's writes to the tensor. Nothing on the caller's thread waits for the device: no
``.item()``, no ``float()``, no synchronising copy. The writer thread's ``Pending.result()``
waits on the event, then reads the pinned buffer.

.. note:: The first use of a dtype and kernel on a device compiles it with NVRTC (CuPy caches
   the binary on disk, so later processes only load it); the first thumbnails of a device also
   read its multiprocessor count. Neither synchronises a stream.

Buffers: device results come from CuPy's stream-ordered memory pool; pinned host buffers from
CuPy's pinned memory pool. A :class:`_DevicePending` holds both (and the input tensor) until its
event has completed, so none is reused while a kernel or copy may still touch it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cupy
import numpy as np

from gpu_summary import _kernels, _ladder
from gpu_summary._backend import _layout
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend._device_tensor import BFloat16, DeviceArray, adopt
from gpu_summary._backend._results import HistogramResult, Pending, TensorStats

__all__ = [
    "adopt",
    "histogram_even",
    "histogram_fixed",
    "scalar",
    "tensor_stats",
    "thumbnail_size",
    "thumbnails",
]

MOMENT_RTOL = _kernels.MOMENT_RTOL

_BLOCKS_PER_SM = 8
_HOST_TO_DEVICE, _DEVICE_TO_HOST = 1, 2

_lock = threading.Lock()
_functions: dict[tuple[int, str, str], cupy.RawKernel] = {}
_multiprocessors: dict[int, int] = {}


def _kernel(device: int, filename: str, expression: str) -> cupy.RawKernel:
    """A compiled kernel, built once per device (and kept on disk by CuPy)."""
    key = (device, filename, expression)
    function = _functions.get(key)
    if function is None:
        with _lock:
            function = _functions.get(key)
            if function is None:
                module = cupy.RawModule(
                    code=_kernels.kernel_source(filename),
                    options=_kernels.COMPILE_OPTIONS,
                    name_expressions=[expression],
                )
                function = module.get_function(expression)
                _functions[key] = function
    return function


def _grid(device: int, work: int) -> int:
    """Blocks for ``work`` items: enough to fill the device, at least one."""
    sms = _multiprocessors.get(device)
    if sms is None:
        sms = cupy.cuda.Device(device).attributes["MultiProcessorCount"]
        _multiprocessors[device] = sms
    per_block = _kernels.THREADS * 4
    return max(1, min(sms * _BLOCKS_PER_SM, -(-work // per_block)))


class _DevicePending(Pending):
    """A result whose bytes are being copied into pinned host memory on some stream.

    ``result()`` (the writer thread) waits on the event recorded after the copy, then parses
    the pinned bytes once. Until then, the pending result keeps the input tensor, the device
    buffer and the pinned buffer alive; if it is dropped unread, it waits for the event first,
    so no buffer returns to a pool while the device may still use it.
    """

    __slots__ = ("_event", "_host", "_keep", "_parse", "_value")

    def __init__(
        self, event: cupy.cuda.Event, host: np.ndarray, parse: Callable, keep: tuple
    ) -> None:
        self._event = event
        self._host = host
        self._parse = parse
        self._keep = keep
        self._value = None

    def result(self) -> object:
        if self._keep is not None:
            self._event.synchronize()  # the writer thread sleeps here, never the caller
            self._value = self._parse(self._host)
            self._keep = self._host = None
        return self._value

    def __del__(self) -> None:
        if self._keep is not None:
            try:
                self._event.synchronize()
            except Exception:  # noqa: BLE001 - interpreter shutdown: the device goes too
                pass


def _launch_copy(
    device_buffer: cupy.cuda.MemoryPointer, nbytes: int, stream: object
) -> tuple[np.ndarray, cupy.cuda.Event]:
    """Queue a copy of ``nbytes`` to pinned memory and an event after it."""
    pinned = cupy.cuda.alloc_pinned_memory(max(nbytes, 1))
    host = np.frombuffer(pinned, np.uint8, max(nbytes, 1))[:nbytes]
    if nbytes:
        cupy.cuda.runtime.memcpyAsync(
            host.ctypes.data, device_buffer.ptr, nbytes, _DEVICE_TO_HOST, stream.ptr
        )
    event = cupy.cuda.Event(block=True, disable_timing=True)
    event.record(stream)
    return host, event


def _flat_source(values: DeviceArray) -> tuple[int, list[int], list[int], cupy.ndarray]:
    """The input as gs_reduce reads it: (lowest address, shape, strides, array to keep)."""
    array = values.array
    itemsize = array.dtype.itemsize
    view = _layout.kernel_view(array.data.ptr, array.shape, array.strides, itemsize)
    if view is None:  # odd strides or too many dimensions: copy, on the stream
        array = cupy.ascontiguousarray(array)
        view = _layout.kernel_view(array.data.ptr, array.shape, array.strides, itemsize)
    pointer, shape, strides = view
    return pointer, shape, strides, array


class _Reduction:
    """One reduction: its device buffer (``_kernels.ReduceBuffer``), zeroed on the stream, and
    the input in the collapsed layout the kernel reads."""

    def __init__(self, values: DeviceArray, n_buckets: int, n_limits: int = 0) -> None:
        self.values = values
        self.pointer, self.shape, self.strides, self.keep = _flat_source(values)
        self.n = int(values.size)
        self.device = values.device_id
        self.buffer = _kernels.ReduceBuffer(n_buckets, _grid(self.device, self.n), n_limits)
        self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
        cupy.cuda.runtime.memsetAsync(self.memory.ptr, 0, self.buffer.zero_bytes, values.stream.ptr)

    @property
    def limits_pointer(self) -> int:
        return self.memory.ptr + self.buffer.limits

    def launch(self, mode: int, n_limits: int = 0, bins: int = 0) -> None:
        expression = _kernels.reduce_expression(self.values.dtype_name, mode)
        kernel = _kernel(self.device, _kernels.REDUCE_FILE, expression)
        args = _kernels.reduce_args(
            self.buffer,
            self.memory.ptr,
            mode,
            self.pointer,
            self.n,
            self.shape,
            self.strides,
            limits=self.limits_pointer if n_limits else 0,
            n_limits=n_limits,
            bins=bins,
        )
        shared = _kernels.reduce_shared_bytes(mode, n_limits, bins)
        kernel((self.buffer.grid,), (_kernels.THREADS,), args, shared_mem=shared)

    def finish(self, parse: Callable[[np.ndarray], object], extra: tuple = ()) -> _DevicePending:
        host, event = _launch_copy(self.memory, self.buffer.result_bytes, self.values.stream)
        keep = (self.memory, self.keep, self.values.owner, *extra)
        return _DevicePending(event, host, parse, keep)


def tensor_stats(values: DeviceArray) -> Pending[TensorStats]:
    """Moments and non-finite counts of a device tensor; launches one kernel, no sync."""
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = _Reduction(values, 0)
        reduction.launch(_kernels.STATS)
        return reduction.finish(_kernels.parse_stats)


def histogram_fixed(values: DeviceArray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """Histogram over fixed limits (None: the TensorBoard ladder) with stats, in one kernel.

    Caller limits travel to the device through pinned memory on the same stream (no sync).
    """
    with cupy.cuda.Device(values.device_id), values.stream:
        if limits is None:
            reduction = _Reduction(values, _ladder.N_LIMITS)
            reduction.launch(_kernels.LADDER)
            extra: tuple = ()
            limits = _ladder.LIMITS
        else:
            n_limits = int(limits.size)
            reduction = _Reduction(values, n_limits, n_limits)
            staging = cupy.cuda.alloc_pinned_memory(8 * n_limits)
            staged = np.frombuffer(staging, np.float64, n_limits)
            staged[:] = limits
            cupy.cuda.runtime.memcpyAsync(
                reduction.limits_pointer, staged.ctypes.data, 8 * n_limits, _HOST_TO_DEVICE,
                values.stream.ptr,
            )  # fmt: skip
            reduction.launch(_kernels.EDGES, n_limits=n_limits)
            extra = (staging,)
        host_limits = limits

        def parse(raw: np.ndarray) -> HistogramResult:
            counts, stats = _kernels.parse_result(raw, host_limits.size)
            return HistogramResult(limits=host_limits, counts=counts, stats=stats)

        return reduction.finish(parse, extra)


def histogram_even(values: DeviceArray, bins: int) -> Pending[HistogramResult]:
    """Histogram over ``bins`` even buckets spanning [min, max] of the finite values.

    Two kernels on the same stream: the stats pass writes min and max to device memory, and
    the counting pass reads them there; the range never visits the host before the counts.
    The edges are rebuilt on the writer thread from the same min and max, by the NumPy
    backend's ``even_edges`` (the kernels compute the identical doubles).
    """
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = _Reduction(values, bins)
        reduction.launch(_kernels.STATS)
        reduction.launch(_kernels.EVEN, bins=bins)

        def parse(raw: np.ndarray) -> HistogramResult:
            counts, stats = _kernels.parse_result(raw, bins)
            lo, hi = (stats.min, stats.max) if stats.count else (0.0, 1.0)
            edges = numpy_backend.even_edges(lo, hi, bins)
            return HistogramResult(limits=edges[1:], counts=counts, stats=stats)

        return reduction.finish(parse)


def scalar(value: DeviceArray) -> Pending[float]:
    """The single element of a device tensor, copied asynchronously (no sync)."""
    dtype = value.dtype

    def parse(raw: np.ndarray) -> float:
        if isinstance(dtype, BFloat16):
            return float((raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)[0])
        return float(raw.view(dtype)[0])

    with cupy.cuda.Device(value.device_id), value.stream:
        itemsize = value.array.dtype.itemsize
        host, event = _launch_copy(value.array.data, itemsize, value.stream)
        return _DevicePending(event, host, parse, (value.array, value.owner))


thumbnail_size = numpy_backend.thumbnail_size


def thumbnails(images: DeviceArray, max_size: int | None) -> Pending[np.ndarray]:
    """uint8 NHWC thumbnails of NHWC device images (any strides), made on the device.

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
        kernel = _kernel(
            images.device_id,
            _kernels.THUMBNAILS_FILE,
            _kernels.thumbnails_expression(images.dtype_name),
        )
        if total:
            grid = _grid(images.device_id, total)
            args = _kernels.thumbnails_args(
                array.data.ptr, (n, h, w, c), strides, out_h, out_w, out.ptr
            )
            kernel((grid,), (_kernels.THREADS,), args)
        host, event = _launch_copy(out, total, images.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return raw.reshape(n, out_h, out_w, c)

        return _DevicePending(event, host, parse, (out, array, images.owner))
