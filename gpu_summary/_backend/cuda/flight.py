"""The device backend's flight recorder ring (``gs_flight`` in ``kernels/gs_reduce.cu``; the
layout in ``gpu_summary._core.flight``). The NumPy backend's ``flight`` is the specification:
counts equal exactly, moments within ``MOMENT_RTOL``.

A ring is one allocation on the first step's device, set to all one bits once. A step costs,
per dtype among its tensors, the table staged through pinned memory and one gs_flight launch
writing the tensors' records straight into the ring; then one copy of the ring's first word
(8 bytes) to pinned memory behind an event, which only the writer thread waits for. The ring is
copied back whole once, when the recorder logs its table. Each step's inputs and launch buffer
are kept until an event after its launch has completed, then released by the release thread.

.. note::
    Nothing here synchronises the device or the calling thread.
"""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend.cuda import capture, runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda.reduce import multi_sources
from gpu_summary._backend.cuda_kernels import flight as flight_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core.results import Pending

_WORD_BYTES = 8  # the ring's first word: its first step holding NaN/±Inf


class DeviceRing:
    """One ring on one device (``flight_abi.RingBuffer``); steps on other streams are ordered
    after the earlier ones."""

    def __init__(self, slots: int, tensors: int, like: DeviceArray) -> None:
        self.device, self.stream = like.device_id, like.stream
        self.buffer = flight_abi.RingBuffer(slots, tensors)
        with cupy.cuda.Device(self.device), self.stream:
            self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
            memset = cupy.cuda.runtime.memsetAsync
            memset(self.memory.ptr, 0xFF, self.buffer.ring_bytes, self.stream.ptr)
            memset(self.memory.ptr + self.buffer.chunks_done, 0, self.buffer.chunks_done_bytes,
                   self.stream.ptr)  # fmt: skip

    def add(self, arrays: list[DeviceArray], columns: list[int], orders: list[int],
            step: int) -> Pending[int]:  # fmt: skip
        stream = arrays[0].stream
        for array in arrays:
            if array.device_id != self.device:
                raise TypeError(f"a tensor is on device {array.device_id}, but this ring is "
                                f"on device {self.device}; a ring holds one device's "
                                "tensors")  # fmt: skip
        by_dtype: dict[str, list[int]] = {}
        for k, array in enumerate(arrays):
            by_dtype.setdefault(array.dtype_name, []).append(k)
        with cupy.cuda.Device(self.device), stream:
            if self.stream.ptr != stream.ptr:
                capture.refuse_capturing(self.stream, "the flight recorder's earlier steps")
                runtime.order_after(self.stream, stream)
            self.stream = stream
            for dtype, members in by_dtype.items():
                self._launch(dtype, [arrays[k] for k in members], [columns[k] for k in members],
                             [orders[k] for k in members], step)  # fmt: skip
            host, event = runtime.launch_copy(self.memory, _WORD_BYTES, stream)
            return runtime.DevicePending(event, host, _first_word, (self.memory,))

    def _launch(self, dtype: str, arrays: list[DeviceArray], columns: list[int],
                orders: list[int], step: int) -> None:  # fmt: skip
        stream = self.stream
        pointers, lengths, strides, keep = multi_sources(arrays)
        table = flight_abi.flight_table(pointers, lengths, strides, columns, orders)
        chunks = int(table[4 * len(arrays)])
        step_buffer = flight_abi.StepBuffer(len(arrays), chunks)
        memory = cupy.cuda.alloc(step_buffer.total_bytes)
        staging = runtime.stage(table, memory.ptr + step_buffer.table, stream)
        expression = flight_abi.flight_expression(dtype)
        kernel = runtime.kernel(self.device, kernel_sources.REDUCE_FILE, expression, dtype)
        grid = min(chunks, runtime.grid_for(self.device, chunks * flight_abi.CHUNK, kernel))
        kernel((grid,), (kernel_sources.THREADS,),
               flight_abi.flight_args(self.buffer, self.memory.ptr, step_buffer, memory.ptr,
                                      step))  # fmt: skip
        event = cupy.cuda.Event(block=True, disable_timing=True)
        event.record(stream)
        owners = tuple((a.owner, a.array) for a in arrays)
        runtime.release_after(event, (owners, tuple(keep), memory, staging))

    def result(self) -> Pending[np.ndarray]:
        capture.refuse_capturing(self.stream, "the flight recorder's ring")
        with cupy.cuda.Device(self.device), self.stream:
            host, event = runtime.launch_copy(self.memory, self.buffer.ring_bytes, self.stream)
            return runtime.DevicePending(event, host, _words, (self.memory,))


def _first_word(raw: np.ndarray) -> int:
    return int(raw.view(np.uint64)[0])


def _words(raw: np.ndarray) -> np.ndarray:
    return raw.view(np.uint64).copy()


def flight_open(slots: int, tensors: int, like: DeviceArray) -> DeviceRing:
    """An empty ring of ``slots`` steps of ``tensors`` tensors on ``like``'s device (one
    allocation and two memsets on its stream)."""
    return DeviceRing(slots, tensors, like)


def flight_add(ring: DeviceRing, arrays: list[DeviceArray], columns: list[int],
               orders: list[int], step: int) -> Pending[int]:  # fmt: skip
    """One step into the ring: a gs_flight launch per dtype, a copy of one word back, no
    sync. Returns the ring's ``first_bad`` word after this step."""
    return ring.add(arrays, columns, orders, step)


def flight_result(ring: DeviceRing) -> Pending[np.ndarray]:
    """The ring's words (uint64): one asynchronous copy."""
    return ring.result()
