"""The device backend's windows (``gs_reduce`` launched into one buffer per window): each
step's counts added in place by the kernel's atomics, its moments written to a stats slot of
its own, so a step costs one launch and one event — no allocation, memset or copy — and the
window's end one copy of the counts and the slots. The NumPy backend's ``windows`` is the
specification (counts exact, moments within ``MOMENT_RTOL``).

Each step's input (the producer's tensor, and any contiguous copy of it) is kept until the
event recorded after its launch has completed, then released by the release thread
(``runtime.release_after``): a tensor the caller drops right after the call is not handed back
to its allocator (PyTorch's caching allocator reuses freed blocks at once) while the queued
kernel may still read it, and a window of many steps holds no step's tensor longer."""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend.cuda import capture, runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import Pending, TensorStats

_MOST_WORK = 1 << 62  # a grid for any tensor: one full wave of the device


class DeviceWindow:
    """One window's device buffer (``reduce_abi.WindowBuffer``), zeroed once on the first
    step's stream; later steps on other streams are ordered after the earlier ones."""

    def __init__(self, limits: np.ndarray | None, size: int, like: DeviceArray,
                 histogram: bool) -> None:  # fmt: skip
        self.device = like.device_id
        self.stream = like.stream
        if not histogram:
            self.mode, n_buckets, n_limits = reduce_abi.STATS, 0, 0
        elif limits is None:
            self.mode, n_buckets, n_limits = reduce_abi.LADDER, _ladder.N_LIMITS, 0
        else:
            self.mode, n_buckets, n_limits = reduce_abi.EDGES, int(limits.size), int(limits.size)
        self.n_limits = n_limits
        with cupy.cuda.Device(self.device), self.stream:
            kernel = self._kernel(like.dtype_name)
            shared = reduce_abi.reduce_shared_bytes(self.mode, n_limits)
            grid = runtime.grid_for(self.device, _MOST_WORK, kernel, shared)
            self.buffer = reduce_abi.WindowBuffer(n_buckets, size, grid, n_limits)
            self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
            cupy.cuda.runtime.memsetAsync(self.memory.ptr, 0, self.buffer.zero_bytes,
                                          self.stream.ptr)  # fmt: skip
            self.staging = None
            if n_limits:
                self.staging = runtime.stage(
                    np.asarray(limits, np.float64),
                    self.memory.ptr + self.buffer.limits,
                    self.stream,
                )

    def _kernel(self, dtype: str) -> object:
        expression = reduce_abi.reduce_expression(dtype, self.mode)
        return runtime.kernel(self.device, kernel_sources.REDUCE_FILE, expression, dtype)

    def add(self, values: DeviceArray, slot: int) -> None:
        if values.device_id != self.device:
            raise TypeError(
                f"values is on device {values.device_id}, but this window's earlier "
                f"steps were on device {self.device}; keep a window on one device"
            )
        with cupy.cuda.Device(self.device), values.stream:
            _order_after_earlier_steps(self.stream, values.stream)
            self.stream = values.stream
            pointer, shape, strides, keep = runtime.flat_source(values)
            kernel = self._kernel(values.dtype_name)
            shared = reduce_abi.reduce_shared_bytes(self.mode, self.n_limits)
            grid = min(self.buffer.grid, runtime.grid_for(self.device, int(values.size), kernel,
                                                          shared))  # fmt: skip
            limits = self.memory.ptr + self.buffer.limits if self.n_limits else 0
            args = reduce_abi.reduce_args(self.buffer, self.memory.ptr, self.mode, pointer,
                                          int(values.size), shape, strides, limits=limits,
                                          n_limits=self.n_limits, slot=slot)  # fmt: skip
            kernel((grid,), (kernel_sources.THREADS,), args, shared_mem=shared)
            _release_after_launch(self.stream, (values.owner, values.array, keep))

    def result(self, slots: int) -> Pending[tuple[np.ndarray, list[TensorStats]]]:
        n_buckets = self.buffer.n_buckets
        capture.refuse_capturing(self.stream, _LAST_STEP)
        with cupy.cuda.Device(self.device), self.stream:
            host, event = runtime.launch_copy(self.memory, self.buffer.result_bytes(slots),
                                              self.stream)  # fmt: skip

            def parse(raw: np.ndarray) -> tuple[np.ndarray, list[TensorStats]]:
                return reduce_abi.parse_window(raw, n_buckets, slots)

            return runtime.DevicePending(event, host, parse, (self.memory, self.staging))


_LAST_STEP = "the window's last step"


def _order_after_earlier_steps(earlier: object, stream: object) -> None:
    """``stream`` waits for the window's earlier steps (an event recorded on ``earlier``,
    refused if that stream is now capturing a graph: the event would be recorded into it)."""
    if earlier.ptr != stream.ptr:
        capture.refuse_capturing(earlier, "the window's earlier steps")
    runtime.order_after(earlier, stream)


def _release_after_launch(stream: object, inputs: tuple) -> None:
    """Keep a step's ``inputs`` until the work queued on ``stream`` so far has run (an event,
    waited for on the release thread, never here)."""
    event = cupy.cuda.Event(block=True, disable_timing=True)
    event.record(stream)
    runtime.release_after(event, inputs)


def window_open(limits: np.ndarray | None, size: int, like: DeviceArray,
                histogram: bool = True) -> DeviceWindow:  # fmt: skip
    """An empty window of ``size`` steps on ``like``'s device (one allocation and memset)."""
    return DeviceWindow(limits, size, like, histogram)


def window_add(window: DeviceWindow, values: DeviceArray, slot: int) -> None:
    """One step into the window: a single gs_reduce launch on the values' stream, no sync."""
    window.add(values, slot)


def window_result(window: DeviceWindow, slots: int) -> Pending[tuple[np.ndarray, list]]:
    """The window's counts and its first ``slots`` steps' stats: one asynchronous copy."""
    return window.result(slots)


class DeviceMultiWindow:
    """A window of ``add_histograms`` steps over the same device tensors (one device and
    dtype): each step one ``gs_multi_ladder`` launch into the window's buffer
    (``reduce_abi.MultiWindowBuffer``) after its table is staged; one copy at the end."""

    def __init__(self, size: int, tensors: list[DeviceArray]) -> None:
        first = tensors[0]
        self.device, self.stream, self.dtype = first.device_id, first.stream, first.dtype_name
        self.lengths = [int(t.size) for t in tensors]
        chunks = sum(-(-n // reduce_abi.MULTI_CHUNK) for n in self.lengths)
        self.buffer = reduce_abi.MultiWindowBuffer(len(tensors), size, chunks)
        with cupy.cuda.Device(self.device), self.stream:
            self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
            cupy.cuda.runtime.memsetAsync(self.memory.ptr, 0, self.buffer.zero_bytes,
                                          self.stream.ptr)  # fmt: skip
        self.tables: list[object] = []  # each step's staged table, until the end

    def add(self, tensors: list[DeviceArray], slot: int) -> None:
        from gpu_summary._backend.cuda.reduce import multi_sources

        first = tensors[0]
        if [int(t.size) for t in tensors] != self.lengths or first.device_id != self.device:
            raise ValueError("a window of add_histograms needs the same tensors at every step "
                             "(as many, of the same sizes, on one device); finish the window "
                             "first (flush()) or use another prefix")  # fmt: skip
        with cupy.cuda.Device(self.device), first.stream:
            _order_after_earlier_steps(self.stream, first.stream)
            self.stream = first.stream
            pointers, lengths, strides, keep = multi_sources(tensors)
            table = reduce_abi.multi_table(pointers, lengths, strides)
            self.tables.append(runtime.stage(table, self.memory.ptr + self.buffer.table,
                                             self.stream))  # fmt: skip
            chunks = int(table[-1])
            if not chunks:
                return
            expression = reduce_abi.multi_expression(first.dtype_name)
            kernel = runtime.kernel(self.device, kernel_sources.REDUCE_FILE, expression,
                                    first.dtype_name)  # fmt: skip
            shared = reduce_abi.reduce_shared_bytes(reduce_abi.LADDER)
            grid = min(chunks, runtime.grid_for(self.device, chunks * reduce_abi.MULTI_CHUNK,
                                                kernel, shared))  # fmt: skip
            args = reduce_abi.multi_args(self.buffer, self.memory.ptr, slot)
            kernel((grid,), (kernel_sources.THREADS,), args, shared_mem=shared)
            owners = tuple((t.owner, t.array) for t in tensors)
            _release_after_launch(self.stream, (owners, tuple(keep)))

    def result(self, slots: int) -> Pending[list]:
        tensors = self.buffer.tensors
        capture.refuse_capturing(self.stream, _LAST_STEP)
        with cupy.cuda.Device(self.device), self.stream:
            host, event = runtime.launch_copy(self.memory, self.buffer.result_bytes(slots),
                                              self.stream)  # fmt: skip

            def parse(raw: np.ndarray) -> list:
                return reduce_abi.parse_multi_window(raw, tensors, slots)

            return runtime.DevicePending(event, host, parse, (self.memory, *self.tables))


def multi_window_open(size: int, tensors: list[DeviceArray]) -> DeviceMultiWindow:
    """An empty window of ``size`` add_histograms steps over ``tensors``' shapes."""
    return DeviceMultiWindow(size, tensors)


def multi_window_add(window: DeviceMultiWindow, tensors: list[DeviceArray], slot: int) -> None:
    """One step: the table staged, one gs_multi_ladder launch, no sync."""
    window.add(tensors, slot)


def multi_window_result(window: DeviceMultiWindow, slots: int) -> Pending[list]:
    """Each tensor's (counts, stats of each step): one asynchronous copy."""
    return window.result(slots)
