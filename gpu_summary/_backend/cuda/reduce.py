"""The device backend's statistics and histograms (``kernels/gs_reduce.cu``): one tensor per
launch, or many tensors of one dtype in one multi-tensor launch. Each function has the NumPy
backend's signature and semantics; counts equal exactly, moments within ``MOMENT_RTOL``."""

from __future__ import annotations

import sys
from collections.abc import Callable

import cupy
import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.cuda import runtime
from gpu_summary._backend.cuda.device_tensor import BFloat16, DeviceArray, external_stream
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import HistogramResult, Pending, TensorStats


class Reduction:
    """One reduction: its device buffer (``reduce_abi.ReduceBuffer``, with room for the block
    partials of a ``mode`` launch), zeroed on the stream, and the input in the collapsed
    layout the kernel reads."""

    def __init__(self, values: DeviceArray, mode: int, n_buckets: int, n_limits: int = 0) -> None:
        self.values = values
        self.pointer, self.shape, self.strides, self.keep = runtime.flat_source(values)
        self.n = int(values.size)
        self.device = values.device_id
        _, grid, _ = self._launch_shape(mode, n_limits, 0)
        self.buffer = reduce_abi.ReduceBuffer(n_buckets, grid, n_limits)
        self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
        cupy.cuda.runtime.memsetAsync(self.memory.ptr, 0, self.buffer.zero_bytes, values.stream.ptr)

    @property
    def limits_pointer(self) -> int:
        return self.memory.ptr + self.buffer.limits

    def _launch_shape(self, mode: int, n_limits: int, bins: int) -> tuple:
        """(kernel, grid, dynamic shared bytes) of a launch of ``mode``."""
        dtype = self.values.dtype_name
        expression = reduce_abi.reduce_expression(dtype, mode)
        kernel = runtime.kernel(self.device, kernel_sources.REDUCE_FILE, expression, dtype)
        shared = reduce_abi.reduce_shared_bytes(mode, n_limits, bins)
        return kernel, runtime.grid_for(self.device, self.n, kernel, shared), shared

    def launch(self, mode: int, n_limits: int = 0, bins: int = 0) -> None:
        kernel, grid, shared = self._launch_shape(mode, n_limits, bins)
        if mode != reduce_abi.EVEN:  # block partials: as many as the buffer holds
            grid = self.buffer.grid
        args = reduce_abi.reduce_args(
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
        kernel((grid,), (kernel_sources.THREADS,), args, shared_mem=shared)

    def finish(
        self, parse: Callable[[np.ndarray], object], extra: tuple = ()
    ) -> runtime.DevicePending:
        host, event = runtime.launch_copy(self.memory, self.buffer.result_bytes, self.values.stream)
        keep = (self.memory, self.keep, self.values.owner, *extra)
        return runtime.DevicePending(event, host, parse, keep)


def tensor_stats(values: DeviceArray) -> Pending[TensorStats]:
    """Moments and non-finite counts of a device tensor; launches one kernel, no sync."""
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = Reduction(values, reduce_abi.STATS, 0)
        reduction.launch(reduce_abi.STATS)
        return reduction.finish(reduce_abi.parse_stats)


def histogram_fixed(values: DeviceArray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """Histogram over fixed limits (None: the TensorBoard ladder) with stats, in one kernel.

    Caller limits travel to the device through pinned memory on the same stream (no sync).
    """
    with cupy.cuda.Device(values.device_id), values.stream:
        if limits is None:
            reduction = Reduction(values, reduce_abi.LADDER, _ladder.N_LIMITS)
            reduction.launch(reduce_abi.LADDER)
            extra: tuple = ()
            limits = _ladder.LIMITS
        else:
            n_limits = int(limits.size)
            reduction = Reduction(values, reduce_abi.EDGES, n_limits, n_limits)
            staging = runtime.stage(
                np.asarray(limits, np.float64), reduction.limits_pointer, values.stream
            )
            reduction.launch(reduce_abi.EDGES, n_limits=n_limits)
            extra = (staging,)
        host_limits = limits

        def parse(raw: np.ndarray) -> HistogramResult:
            counts, stats = reduce_abi.parse_result(raw, host_limits.size)
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
        reduction = Reduction(values, reduce_abi.STATS, bins)
        reduction.launch(reduce_abi.STATS)
        reduction.launch(reduce_abi.EVEN, bins=bins)

        def parse(raw: np.ndarray) -> HistogramResult:
            counts, stats = reduce_abi.parse_result(raw, bins)
            lo, hi = (stats.min, stats.max) if stats.count else (0.0, 1.0)
            edges = numpy_backend.even_edges(lo, hi, bins)
            return HistogramResult(limits=edges[1:], counts=counts, stats=stats)

        return reduction.finish(parse)


def even_counts(values: DeviceArray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """Counts over the even buckets of [lo, hi] (the NumPy backend's ``even_counts``): one
    EVEN launch reading the range from the stats words, staged through pinned memory."""
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = Reduction(values, reduce_abi.EVEN, bins)
        words = np.zeros(reduce_abi.STATS_WORDS, np.uint64)
        words[0] = 1  # "there are finite values": the EVEN pass counts
        words.view(np.float64)[4:6] = lo, hi
        staging = runtime.stage(words, reduction.memory.ptr + reduction.buffer.stats, values.stream)
        reduction.launch(reduce_abi.EVEN, bins=bins)

        def parse(raw: np.ndarray) -> np.ndarray:
            counts, _ = reduce_abi.parse_result(raw, bins)
            return counts

        return reduction.finish(parse, (staging,))


def scalar(value: DeviceArray) -> Pending[float]:
    """The single element of a device tensor, copied asynchronously (no sync)."""
    dtype = value.dtype

    def parse(raw: np.ndarray) -> float:
        if isinstance(dtype, BFloat16):
            return float((raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32)[0])
        return float(raw.view(dtype)[0])

    with cupy.cuda.Device(value.device_id), value.stream:
        itemsize = value.array.dtype.itemsize
        host, event = runtime.launch_copy(value.array.data, itemsize, value.stream)
        return runtime.DevicePending(event, host, parse, (value.array, value.owner))


def histograms(tensors: list[DeviceArray]) -> Pending[list[HistogramResult]]:
    """Ladder histograms of several device tensors of one dtype on one device, in one launch.

    The tensors' addresses, lengths and strides go to the device as one small table (through
    pinned memory, on the first tensor's stream); gs_multi_ladder reduces them all; one copy
    brings every tensor's counts and stats back. A tensor that is not one run of memory (after
    merging its dimensions) is copied to contiguous memory on the stream first. No host sync.
    """
    first = tensors[0]
    with cupy.cuda.Device(first.device_id), first.stream:
        pointers, lengths, strides, keep = multi_sources(tensors)
        keep += [values.owner for values in tensors]
        return _launch_multi(first.device_id, first.stream, first.dtype_name,
                             pointers, lengths, strides, keep)  # fmt: skip


def multi_sources(tensors: list[DeviceArray]) -> tuple[list, list, list, list]:
    """(addresses, lengths, element strides, arrays to keep) of tensors as gs_multi_ladder
    reads them: one run of memory each (a tensor that is not is copied, on the current
    stream)."""
    pointers, lengths, strides, keep = [], [], [], []
    for values in tensors:
        pointer, shape, element_strides, array = runtime.flat_source(values)
        if len(shape) != 1:
            array = cupy.ascontiguousarray(values.array)  # on the stream
            pointer, element_strides = array.data.ptr, [1]
        pointers.append(pointer)
        lengths.append(int(values.size))
        strides.append(int(element_strides[0]))
        keep.append(array)
    return pointers, lengths, strides, keep


# torch dtypes by name, as the kernels know them (bool and bfloat16 read as stored).
_TORCH_DTYPES = {f"torch.{name}": name for name in kernel_sources.CUDA_TYPES}


def histograms_torch(tensors: list) -> list[tuple[list[int], Pending[list[HistogramResult]]]]:
    """:func:`histograms` for CUDA torch tensors without wrapping each one: addresses,
    lengths and strides come straight from the tensors (a tensor that is not one run of memory
    is made contiguous by torch, on its stream), grouped by device and dtype; each group is one
    launch on torch's current stream of its device. Returns ``(indices, pending)`` per group.
    """
    torch = sys.modules["torch"]
    groups: dict[tuple[int, str], list[int]] = {}
    for k, tensor in enumerate(tensors):
        name = _TORCH_DTYPES.get(str(tensor.dtype))
        if name is None:
            raise TypeError(
                f"tensor {k} has dtype {tensor.dtype}, which gpu_summary cannot histogram; "
                "convert it (for example with .float())"
            )
        groups.setdefault((tensor.device.index, name), []).append(k)
    out = []
    for (device, name), members in groups.items():
        stream = external_stream(torch.cuda.current_stream(device).cuda_stream, device)
        pointers, lengths, strides, keep = [], [], [], []
        for k in members:
            tensor = tensors[k]
            view = kernel_layout.kernel_view(
                tensor.data_ptr(), tuple(tensor.shape),
                tuple(s * tensor.element_size() for s in tensor.stride()), tensor.element_size(),
            )  # fmt: skip
            if view is None or len(view[1]) != 1:
                tensor = tensor.detach().contiguous()
                view = (tensor.data_ptr(), [tensor.numel()], [1])
            pointers.append(view[0])
            lengths.append(int(tensor.numel()))
            strides.append(int(view[2][0]))
            keep.append(tensor)
        with cupy.cuda.Device(device), stream:
            pending = _launch_multi(device, stream, name, pointers, lengths, strides, keep)
        out.append((members, pending))
    return out


def _launch_multi(
    device: int,
    stream: object,
    dtype_name: str,
    pointers: list[int],
    lengths: list[int],
    strides: list[int],
    keep: list,
) -> Pending[list[HistogramResult]]:
    """Stage the table, launch gs_multi_ladder, queue the copy back (current device, stream)."""
    table = reduce_abi.multi_table(pointers, lengths, strides)
    n_chunks = int(table[-1])
    n = len(pointers)
    buffer = reduce_abi.MultiBuffer(n, n_chunks)
    memory = cupy.cuda.alloc(buffer.total_bytes)
    cupy.cuda.runtime.memsetAsync(memory.ptr, 0, buffer.zero_bytes, stream.ptr)
    staging = runtime.stage(table, memory.ptr + buffer.table, stream)
    if n_chunks:
        expression = reduce_abi.multi_expression(dtype_name)
        kernel = runtime.kernel(device, kernel_sources.REDUCE_FILE, expression, dtype_name)
        shared = reduce_abi.reduce_shared_bytes(reduce_abi.LADDER)
        grid = min(
            n_chunks, runtime.grid_for(device, n_chunks * reduce_abi.MULTI_CHUNK, kernel, shared)
        )
        kernel((grid,), (kernel_sources.THREADS,), reduce_abi.multi_args(buffer, memory.ptr),
               shared_mem=shared)  # fmt: skip
    host, event = runtime.launch_copy(memory, buffer.result_bytes, stream)

    def parse(raw: np.ndarray) -> list[HistogramResult]:
        return [
            HistogramResult(limits=_ladder.LIMITS, counts=counts, stats=stats)
            for counts, stats in reduce_abi.parse_multi(raw, n)
        ]

    return runtime.DevicePending(event, host, parse, (memory, staging, *keep))
