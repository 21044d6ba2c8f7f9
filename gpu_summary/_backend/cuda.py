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

import functools
import queue
import sys
import threading
from collections.abc import Callable

import cupy
import numpy as np

from gpu_summary import _anomaly, _kernels, _ladder
from gpu_summary._backend import _layout
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend._device_tensor import BFloat16, DeviceArray, adopt, external_stream
from gpu_summary._backend._results import AnomalyResult, HistogramResult, Pending, TensorStats

__all__ = [
    "adopt",
    "anomaly",
    "embedding",
    "even_counts",
    "histogram_even",
    "histogram_fixed",
    "histograms",
    "histograms_torch",
    "scalar",
    "snapshot",
    "tensor_stats",
    "thumbnail_size",
    "thumbnails",
    "to_host",
]

MOMENT_RTOL = _kernels.MOMENT_RTOL

_HOST_TO_DEVICE, _DEVICE_TO_HOST, _DEVICE_TO_DEVICE = 1, 2, 3

_lock = threading.Lock()
_modules: dict[tuple[int, str, str], cupy.RawModule] = {}
_functions: dict[tuple[int, str, str], cupy.RawKernel] = {}
_multiprocessors: dict[int, int] = {}
_resident_blocks: dict[tuple[int, int], int] = {}


def _kernel(device: int, filename: str, expression: str, dtype: str) -> cupy.RawKernel:
    """A compiled kernel of one storage type ``dtype``.

    The first request of a (module, dtype) on a device compiles every kernel of that module
    for that dtype in one NVRTC program (``_kernels.module_expressions``), on the calling
    thread: about 1.5 s for gs_reduce, 0.9 s for gs_anomaly, 0.3 s for gs_thumbnails on a
    2-core x86 VM. CuPy keeps the binary in its on-disk kernel cache, so any later process
    on the machine only loads it (milliseconds). :func:`warm_up` does the compiling ahead, off
    the training thread. Neither synchronises a stream.
    """
    key = (device, filename, expression)
    function = _functions.get(key)
    if function is None:
        with _lock:
            function = _functions.get(key)
            if function is None:
                module_key = (device, filename, dtype)
                module = _modules.get(module_key)
                if module is None:
                    module = cupy.RawModule(
                        code=_kernels.kernel_source(filename),
                        options=_kernels.COMPILE_OPTIONS,
                        name_expressions=_kernels.module_expressions(filename, dtype),
                    )
                    _modules[module_key] = module
                function = module.get_function(expression)
                _functions[key] = function
    return function


def warm_up(dtypes: tuple[str, ...], device: int) -> None:
    """Compile (or load from CuPy's disk cache) every kernel module for ``dtypes`` on
    ``device``, so that no later call compiles. Safe to run on any thread; no stream sync."""
    with cupy.cuda.Device(device):
        for dtype in dtypes:
            for filename, expression in _kernels.first_expressions(dtype):
                _kernel(device, filename, expression, dtype)


def _grid(device: int, work: int, kernel: cupy.RawKernel, shared_bytes: int = 0) -> int:
    """Blocks for ``work`` items (THREADS * 4 a block): at most one full wave of the device,
    as many blocks per multiprocessor as the kernel's registers and shared memory let reside
    at once (the driver's occupancy calculator), at least one."""
    sms = _multiprocessors.get(device)
    if sms is None:
        sms = cupy.cuda.Device(device).attributes["MultiProcessorCount"]
        _multiprocessors[device] = sms
    key = (id(kernel), shared_bytes)
    resident = _resident_blocks.get(key)
    if resident is None:
        resident = cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
            kernel.kernel.ptr, _kernels.THREADS, shared_bytes
        )
        _resident_blocks[key] = resident
    per_block = _kernels.THREADS * 4
    return max(1, min(sms * max(resident, 1), -(-work // per_block)))


def _stage(values: np.ndarray, device_pointer: int, stream: object) -> object:
    """Queue a copy of host ``values`` to ``device_pointer`` on ``stream`` through pinned
    memory (no sync); returns the pinned buffer, to keep until the copy has run."""
    pinned = cupy.cuda.alloc_pinned_memory(max(values.nbytes, 1))
    staged = np.frombuffer(pinned, values.dtype, values.size)
    staged[:] = values.ravel()
    cupy.cuda.runtime.memcpyAsync(
        device_pointer, staged.ctypes.data, values.nbytes, _HOST_TO_DEVICE, stream.ptr
    )
    return pinned


class _DevicePending(Pending):
    """A result whose bytes are being copied into pinned host memory on some stream.

    ``result()`` (the writer thread) waits on the event recorded after the copy, then parses
    the pinned bytes once. Until then, the pending result keeps the input tensor, the device
    buffer and the pinned buffer alive. If it is dropped unread, on whatever thread, it hands
    its event and buffers to the release thread, which waits for the event and only then lets
    the buffers return to their pools: dropping a result never waits for the device.
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
                _release_after(self._event, (self._keep, self._host))
            except Exception:  # noqa: BLE001 - interpreter shutdown: the device goes too
                pass


_dropped: queue.SimpleQueue = queue.SimpleQueue()  # (event, buffers) of unread results
_release_thread: threading.Thread | None = None


def _release_dropped() -> None:
    while True:
        event, buffers = _dropped.get()
        try:
            event.synchronize()  # the release thread sleeps here, never the caller
        except Exception:  # noqa: BLE001 - a failed device: nothing left to protect
            pass
        del event, buffers


def _release_after(event: object, buffers: tuple) -> None:
    """Keep ``buffers`` until ``event`` has completed, without waiting here (``__del__`` runs
    on any thread: SimpleQueue.put is safe there, and no lock is taken)."""
    global _release_thread
    _dropped.put((event, buffers))
    thread = _release_thread
    if thread is None or not thread.is_alive():  # first drop, or a child after fork()
        thread = threading.Thread(target=_release_dropped, name="gpu_summary-release", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: the device goes too
            return
        _release_thread = thread


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


def _flat_source(
    values: DeviceArray, view_of: Callable = _layout.kernel_view
) -> tuple[int, list[int], list[int], cupy.ndarray]:
    """The input as a kernel reads it: (address, shape, strides, array to keep), laid out by
    ``view_of`` (any order for gs_reduce; ``_layout.c_order_view`` for gs_anomaly)."""
    array = values.array
    itemsize = array.dtype.itemsize
    view = view_of(array.data.ptr, array.shape, array.strides, itemsize)
    if view is None:  # odd strides or too many dimensions: copy, on the stream
        array = cupy.ascontiguousarray(array)
        view = view_of(array.data.ptr, array.shape, array.strides, itemsize)
    pointer, shape, strides = view
    return pointer, shape, strides, array


class _Reduction:
    """One reduction: its device buffer (``_kernels.ReduceBuffer``, with room for the block
    partials of a ``mode`` launch), zeroed on the stream, and the input in the collapsed
    layout the kernel reads."""

    def __init__(self, values: DeviceArray, mode: int, n_buckets: int, n_limits: int = 0) -> None:
        self.values = values
        self.pointer, self.shape, self.strides, self.keep = _flat_source(values)
        self.n = int(values.size)
        self.device = values.device_id
        _, grid, _ = self._launch_shape(mode, n_limits, 0)
        self.buffer = _kernels.ReduceBuffer(n_buckets, grid, n_limits)
        self.memory = cupy.cuda.alloc(self.buffer.total_bytes)
        cupy.cuda.runtime.memsetAsync(self.memory.ptr, 0, self.buffer.zero_bytes, values.stream.ptr)

    @property
    def limits_pointer(self) -> int:
        return self.memory.ptr + self.buffer.limits

    def _launch_shape(self, mode: int, n_limits: int, bins: int) -> tuple:
        """(kernel, grid, dynamic shared bytes) of a launch of ``mode``."""
        dtype = self.values.dtype_name
        expression = _kernels.reduce_expression(dtype, mode)
        kernel = _kernel(self.device, _kernels.REDUCE_FILE, expression, dtype)
        shared = _kernels.reduce_shared_bytes(mode, n_limits, bins)
        return kernel, _grid(self.device, self.n, kernel, shared), shared

    def launch(self, mode: int, n_limits: int = 0, bins: int = 0) -> None:
        kernel, grid, shared = self._launch_shape(mode, n_limits, bins)
        if mode != _kernels.EVEN:  # block partials: as many as the buffer holds
            grid = self.buffer.grid
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
        kernel((grid,), (_kernels.THREADS,), args, shared_mem=shared)

    def finish(self, parse: Callable[[np.ndarray], object], extra: tuple = ()) -> _DevicePending:
        host, event = _launch_copy(self.memory, self.buffer.result_bytes, self.values.stream)
        keep = (self.memory, self.keep, self.values.owner, *extra)
        return _DevicePending(event, host, parse, keep)


def tensor_stats(values: DeviceArray) -> Pending[TensorStats]:
    """Moments and non-finite counts of a device tensor; launches one kernel, no sync."""
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = _Reduction(values, _kernels.STATS, 0)
        reduction.launch(_kernels.STATS)
        return reduction.finish(_kernels.parse_stats)


def histogram_fixed(values: DeviceArray, limits: np.ndarray | None) -> Pending[HistogramResult]:
    """Histogram over fixed limits (None: the TensorBoard ladder) with stats, in one kernel.

    Caller limits travel to the device through pinned memory on the same stream (no sync).
    """
    with cupy.cuda.Device(values.device_id), values.stream:
        if limits is None:
            reduction = _Reduction(values, _kernels.LADDER, _ladder.N_LIMITS)
            reduction.launch(_kernels.LADDER)
            extra: tuple = ()
            limits = _ladder.LIMITS
        else:
            n_limits = int(limits.size)
            reduction = _Reduction(values, _kernels.EDGES, n_limits, n_limits)
            staging = _stage(
                np.asarray(limits, np.float64), reduction.limits_pointer, values.stream
            )
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
        reduction = _Reduction(values, _kernels.STATS, bins)
        reduction.launch(_kernels.STATS)
        reduction.launch(_kernels.EVEN, bins=bins)

        def parse(raw: np.ndarray) -> HistogramResult:
            counts, stats = _kernels.parse_result(raw, bins)
            lo, hi = (stats.min, stats.max) if stats.count else (0.0, 1.0)
            edges = numpy_backend.even_edges(lo, hi, bins)
            return HistogramResult(limits=edges[1:], counts=counts, stats=stats)

        return reduction.finish(parse)


def even_counts(values: DeviceArray, lo: float, hi: float, bins: int) -> Pending[np.ndarray]:
    """Counts over the even buckets of [lo, hi] (the NumPy backend's ``even_counts``): one
    EVEN launch reading the range from the stats words, staged through pinned memory."""
    with cupy.cuda.Device(values.device_id), values.stream:
        reduction = _Reduction(values, _kernels.EVEN, bins)
        words = np.zeros(_kernels.STATS_WORDS, np.uint64)
        words[0] = 1  # "there are finite values": the EVEN pass counts
        words.view(np.float64)[4:6] = lo, hi
        staging = _stage(words, reduction.memory.ptr + reduction.buffer.stats, values.stream)
        reduction.launch(_kernels.EVEN, bins=bins)

        def parse(raw: np.ndarray) -> np.ndarray:
            counts, _ = _kernels.parse_result(raw, bins)
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
        dtype = images.dtype_name
        kernel = _kernel(
            images.device_id, _kernels.THUMBNAILS_FILE, _kernels.thumbnails_expression(dtype), dtype
        )
        if total:
            grid = _grid(images.device_id, total, kernel)
            args = _kernels.thumbnails_args(
                array.data.ptr, (n, h, w, c), strides, out_h, out_w, out.ptr
            )
            kernel((grid,), (_kernels.THREADS,), args)
        host, event = _launch_copy(out, total, images.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return raw.reshape(n, out_h, out_w, c)

        return _DevicePending(event, host, parse, (out, array, images.owner))


def _c_order_source(values: DeviceArray) -> tuple[tuple, object]:
    """(gs_anomaly layout arguments, array to keep) addressing ``values`` in C order."""
    pointer, shape, strides, array = _flat_source(values, _layout.c_order_view)
    return _kernels.layout_args(pointer, int(values.size), shape, strides), array


def anomaly(
    values: DeviceArray,
    lower: float | None,
    upper: float | None,
    max_positions: int,
    cells: int,
) -> Pending[AnomalyResult]:
    """The NumPy backend's ``anomaly`` on the device, without a host sync.

    Launches, all on the producer's stream: a memset of one buffer (``_kernels.AnomalyBuffer``),
    gs_reduce's ladder pass (moments, non-finite counts and the report's histogram),
    gs_anomaly_scan (+ gs_anomaly_offsets and gs_anomaly_collect when
    positions are asked for), gs_heatmap, and the radix selection of the quantiles' order
    statistics (gs_select_step, then per byte of the order keys gs_select_count and
    gs_select_step: 4 rounds for 1-4 byte types, 8 for 8-byte ones); then two device copies
    (stats and ladder counts into the report's buffer) and one copy of the compact result to
    pinned memory. The order statistics are exact (found by counting, never
    by sorting a copy); the heat-map sums differ from NumPy's by summation order only.
    """
    dtype = values.dtype_name
    n = int(values.size)
    quantiles = np.asarray(_anomaly.QUANTILES, dtype=np.float64)
    grid_shape = _anomaly.heat_grid(n, cells)
    n_cells = grid_shape[2] * grid_shape[3]
    device = values.device_id
    with cupy.cuda.Device(device), values.stream:
        stream = values.stream
        stats = _Reduction(values, _kernels.LADDER, _ladder.N_LIMITS)  # + the report's histogram
        stats.launch(_kernels.LADDER)
        layout, keep = _c_order_source(values)
        buffer = _kernels.AnomalyBuffer(max_positions, n_cells, -(-n // _kernels.TILE))
        memory = cupy.cuda.alloc(buffer.total_bytes)
        base = memory.ptr
        cupy.cuda.runtime.memsetAsync(base, 0, buffer.total_bytes, stream.ptr)
        staging = _stage(quantiles, base + buffer.quantiles, stream)

        def run(name: str, args: tuple, work: int = 0, most: int | None = None) -> None:
            """Launch one kernel: one block without ``work``, else a grid for ``work`` items
            (at most ``most`` blocks)."""
            templated = name in _kernels.ANOMALY_KERNELS
            expression = _kernels.anomaly_expression(name, dtype) if templated else name
            kernel = _kernel(device, _kernels.ANOMALY_FILE, expression, dtype)
            grid = _grid(device, work, kernel) if work else 1
            grid = grid if most is None else min(grid, most)
            kernel((max(1, grid),), (_kernels.THREADS,), args)

        run("gs_anomaly_scan", _kernels.anomaly_scan_args(layout, lower, upper, base, buffer),
            n, buffer.tiles)  # fmt: skip
        if max_positions:
            run("gs_anomaly_offsets", _kernels.anomaly_offsets_args(base, buffer))
            run("gs_anomaly_collect",
                _kernels.anomaly_collect_args(layout, lower, upper, base, buffer), n,
                buffer.tiles)  # fmt: skip
        run("gs_heatmap", _kernels.heatmap_args(layout, grid_shape, base, buffer),
            n_cells * _kernels.THREADS * 4, n_cells)  # a cell a block  # fmt: skip
        stats_pointer = stats.memory.ptr + stats.buffer.stats
        passes = _kernels.order_key_bits(dtype) // 8
        step = functools.partial(
            _kernels.select_step_args, base, buffer, stats_pointer, quantiles.size
        )
        run("gs_select_step", step(-1, passes))
        for pass_ in range(passes):
            run("gs_select_count", _kernels.select_count_args(layout, base, buffer, pass_), n)
            run("gs_select_step", step(pass_, passes))
        cupy.cuda.runtime.memcpyAsync(
            base + buffer.stats, stats_pointer, 8 * _kernels.STATS_WORDS, _DEVICE_TO_DEVICE,
            stream.ptr,
        )  # fmt: skip
        cupy.cuda.runtime.memcpyAsync(
            base + buffer.ladder, stats.memory.ptr, 8 * _ladder.N_LIMITS, _DEVICE_TO_DEVICE,
            stream.ptr,
        )  # fmt: skip
        host, event = _launch_copy(memory, buffer.result_bytes, stream)
        shape = tuple(values.shape)

        def parse(raw: np.ndarray) -> AnomalyResult:
            words = raw.view(np.uint64)
            stats_ = _kernels.parse_stats(raw[buffer.stats : buffer.keys])
            offending = stats_.nan + stats_.posinf + stats_.neginf + int(words[0] + words[1])
            kept = min(offending, max_positions)

            def region(offset: int, count: int, dtype_: type) -> np.ndarray:
                return raw[offset : offset + 8 * count].view(dtype_).copy()

            count = stats_.count
            keys = region(buffer.keys, 2 * quantiles.size, np.uint64)
            heat = (grid_shape[2], grid_shape[3])
            return AnomalyResult(
                shape=shape,
                stats=stats_,
                below=int(words[0]),
                above=int(words[1]),
                positions=region(buffer.positions, kept, np.int64),
                position_values=region(buffer.values, kept, np.float64),
                order_stats=_kernels.order_key_values(keys, dtype) if count else np.zeros(0),
                heat_sum=region(buffer.heat_sum, n_cells, np.float64).reshape(heat),
                heat_count=region(buffer.heat_count, n_cells, np.int64).reshape(heat),
                heat_nonfinite=region(buffer.heat_nonfinite, n_cells, np.int64).reshape(heat),
                histogram=HistogramResult(
                    limits=_ladder.LIMITS,
                    counts=region(buffer.ladder, _ladder.N_LIMITS, np.int64),
                    stats=stats_,
                ),
            )

        keep_alive = (memory, staging, stats.memory, stats.keep, keep, values.owner)
        return _DevicePending(event, host, parse, keep_alive)


def to_host(values: DeviceArray) -> Pending[np.ndarray]:
    """A host copy of a device tensor (bfloat16 as float32), copied asynchronously."""
    dtype = values.dtype
    shape = tuple(values.shape)
    with cupy.cuda.Device(values.device_id), values.stream:
        array = values.array
        if not array.flags.c_contiguous:
            array = cupy.ascontiguousarray(array)  # on the stream
        host, event = _launch_copy(array.data, array.nbytes, values.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            if isinstance(dtype, BFloat16):
                bits = raw.view(np.uint16).astype(np.uint32) << 16
                return bits.view(np.float32).reshape(shape)
            return raw.view(dtype).reshape(shape).copy()

        return _DevicePending(event, host, parse, (array, values.owner))


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
        return _Converted(pending, lambda m: np.asarray(m, dtype=np.float32).reshape(n, -1))
    import cupyx

    with cupy.cuda.Device(matrix.device_id), matrix.stream, cupyx.errstate(linalg="ignore"):
        array = matrix.array
        if isinstance(matrix.dtype, BFloat16):
            array = (array.astype(cupy.uint32) << 16).view(cupy.float32)
        x = array.reshape(n, -1).astype(cupy.float64)
        centred = x - x.mean(axis=0)
        eigenvalues, vectors = cupy.linalg.eigh(centred.T @ centred)
        k = min(components, vectors.shape[1])
        axes = vectors[:, cupy.argsort(eigenvalues)[::-1][:k]]
        largest = axes[cupy.argmax(cupy.abs(axes), axis=0), cupy.arange(k)]
        axes = axes * cupy.where(largest < 0, -1.0, 1.0)
        projected = cupy.ascontiguousarray((centred @ axes).astype(cupy.float32))
        host, event = _launch_copy(projected.data, projected.nbytes, matrix.stream)

        def parse(raw: np.ndarray) -> np.ndarray:
            return raw.view(np.float32).reshape(n, k).copy()

        return _DevicePending(event, host, parse, (projected, matrix.owner))


class _Converted(Pending):
    """A pending result passed through a host function on first use."""

    __slots__ = ("_convert", "_pending")

    def __init__(self, pending: Pending, convert: Callable) -> None:
        self._pending, self._convert = pending, convert

    def result(self) -> object:
        return self._convert(self._pending.result())


def snapshot(values: DeviceArray) -> DeviceArray:
    """A private device copy of ``values``, made on the producer's stream (no sync), that later
    launches on the same stream may read after the producer overwrote the original."""
    with cupy.cuda.Device(values.device_id), values.stream:
        copy = values.array.copy()
    return DeviceArray(copy, values.stream, values.dtype, values.owner)


def histograms(tensors: list[DeviceArray]) -> Pending[list[HistogramResult]]:
    """Ladder histograms of several device tensors of one dtype on one device, in one launch.

    The tensors' addresses, lengths and strides go to the device as one small table (through
    pinned memory, on the first tensor's stream); gs_multi_ladder reduces them all; one copy
    brings every tensor's counts and stats back. A tensor that is not one run of memory (after
    merging its dimensions) is copied to contiguous memory on the stream first. No host sync.
    """
    first = tensors[0]
    with cupy.cuda.Device(first.device_id), first.stream:
        pointers, lengths, strides, keep = [], [], [], []
        for values in tensors:
            pointer, shape, element_strides, array = _flat_source(values)
            if len(shape) != 1:
                array = cupy.ascontiguousarray(values.array)  # on the stream
                pointer, element_strides = array.data.ptr, [1]
            pointers.append(pointer)
            lengths.append(int(values.size))
            strides.append(int(element_strides[0]))
            keep.append(array)
        keep += [values.owner for values in tensors]
        return _launch_multi(first.device_id, first.stream, first.dtype_name,
                             pointers, lengths, strides, keep)  # fmt: skip


# torch dtypes by name, as the kernels know them (bool and bfloat16 read as stored).
_TORCH_DTYPES = {f"torch.{name}": name for name in _kernels.CUDA_TYPES}


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
            view = _layout.kernel_view(
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
    table = _kernels.multi_table(pointers, lengths, strides)
    n_chunks = int(table[-1])
    n = len(pointers)
    buffer = _kernels.MultiBuffer(n, n_chunks)
    memory = cupy.cuda.alloc(buffer.total_bytes)
    cupy.cuda.runtime.memsetAsync(memory.ptr, 0, buffer.zero_bytes, stream.ptr)
    staging = _stage(table, memory.ptr + buffer.table, stream)
    if n_chunks:
        expression = _kernels.multi_expression(dtype_name)
        kernel = _kernel(device, _kernels.REDUCE_FILE, expression, dtype_name)
        shared = _kernels.reduce_shared_bytes(_kernels.LADDER)
        grid = min(n_chunks, _grid(device, n_chunks * _kernels.MULTI_CHUNK, kernel, shared))
        kernel((grid,), (_kernels.THREADS,), _kernels.multi_args(buffer, memory.ptr),
               shared_mem=shared)  # fmt: skip
    host, event = _launch_copy(memory, buffer.result_bytes, stream)

    def parse(raw: np.ndarray) -> list[HistogramResult]:
        return [
            HistogramResult(limits=_ladder.LIMITS, counts=counts, stats=stats)
            for counts, stats in _kernels.parse_multi(raw, n)
        ]

    return _DevicePending(event, host, parse, (memory, staging, *keep))
