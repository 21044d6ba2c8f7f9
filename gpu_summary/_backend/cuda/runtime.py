"""CUDA runtime plumbing of the device backend: compiled kernels cached per device, launch
grids sized to one wave, host data staged through pinned memory, and pending results copied
back asynchronously and released without waiting.

On the caller's thread nothing here waits for the device: a reduction queues a memset, its
kernels, a ``cudaMemcpyAsync`` of the compact result into pinned host memory and a CUDA event,
all on the stream that orders the producer's writes. The writer thread's
``DevicePending.result()`` waits on the event, then reads the pinned buffer.

.. note:: The first use of a dtype and kernel on a device compiles it with NVRTC (CuPy caches
   the binary on disk, so later processes only load it); the first launch on a device also
   reads its multiprocessor count. Neither synchronises a stream.

Buffers: device results come from CuPy's stream-ordered memory pool; pinned host buffers from
a pinned pool of this module's own (:func:`pinned`), which never gives memory back to the
driver while the process runs: ``cudaFreeHost`` synchronises the device, and CuPy's shared pool
calls it on whatever thread allocates when an allocation fails, or on every drop when a user
turns that pool off. A :class:`DevicePending` holds both (and the input tensor) until its event
has completed, so none is reused while a kernel or copy may still touch it.

Waits (``cudaEventSynchronize``, on the writer and release threads) run in relaxed capture mode
(``capture.relaxed``), so that they never invalidate a CUDA graph the user captures meanwhile.

After ``os.fork()`` the child cannot use the parent's CUDA context: results and buffers it
inherits are kept, untouched, until it exits (:func:`_keep_in_child`), instead of being
released there with CUDA calls that fail ("Exception ignored" noise) and would not free the
parent's memory anyway.
"""

from __future__ import annotations

import ctypes
import os
import queue
import sys
import threading
from collections.abc import Callable

import cupy
import numpy as np

from gpu_summary._backend.cuda import capture
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import catalogue
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core.results import Pending

MOMENT_RTOL = kernel_sources.MOMENT_RTOL

HOST_TO_DEVICE, DEVICE_TO_HOST, DEVICE_TO_DEVICE = 1, 2, 3

_lock = threading.Lock()
_modules: dict[tuple[int, str, str], cupy.RawModule] = {}
_functions: dict[tuple[int, str, str], cupy.RawKernel] = {}
_multiprocessors: dict[int, int] = {}
_resident_blocks: dict[tuple[int, int], int] = {}


def kernel(device: int, filename: str, expression: str, dtype: str) -> cupy.RawKernel:
    """A compiled kernel of one storage type ``dtype``.

    The first request of a (module, dtype) on a device compiles every kernel of that module
    for that dtype in one NVRTC program (``catalogue.module_expressions``), on the calling
    thread: about 1.5 s for gs_reduce, 0.9 s for gs_anomaly, 0.3 s for gs_thumbnails, 0.5 s
    for gs_pr_curve on a 2-core x86 VM. CuPy keeps the binary in its on-disk kernel cache, so
    any later process on the machine only loads it (milliseconds). :func:`warm_up` does the
    compiling ahead, off the training thread. Neither synchronises a stream.
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
                        code=kernel_sources.kernel_source(filename),
                        options=kernel_sources.COMPILE_OPTIONS,
                        name_expressions=catalogue.module_expressions(filename, dtype),
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
            for filename, expression in catalogue.first_expressions(dtype):
                kernel(device, filename, expression, dtype)


def grid_for(device: int, work: int, kernel: cupy.RawKernel, shared_bytes: int = 0) -> int:
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
            kernel.kernel.ptr, kernel_sources.THREADS, shared_bytes
        )
        _resident_blocks[key] = resident
    per_block = kernel_sources.THREADS * 4
    return max(1, min(sms * max(resident, 1), -(-work // per_block)))


_CUDA_ERROR_MEMORY_ALLOCATION = 2  # cudaErrorMemoryAllocation (CuPy does not export it)


def _allocate_pinned(size: int) -> cupy.cuda.PinnedMemoryPointer:
    """The pinned pool's allocator (``cudaHostAlloc``). A failure is a MemoryError, not CuPy's
    CUDARuntimeError: on that one, CuPy's pool would release all its free blocks
    (``cudaFreeHost``, a device sync) on the calling thread and try again."""
    try:
        memory = cupy.cuda.PinnedMemory(size, cupy.cuda.runtime.hostAllocPortable)
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        if exc.status != _CUDA_ERROR_MEMORY_ALLOCATION:
            raise
        raise MemoryError(
            f"gpu_summary could not page-lock {size:,} bytes of host memory for a copy of a "
            f"result ({exc}); free host memory, or log smaller tensors"
        ) from None
    return cupy.cuda.PinnedMemoryPointer(memory, 0)


_pinned_pool = cupy.cuda.PinnedMemoryPool(_allocate_pinned)  # no CUDA call until a malloc


ONE_OFF_BYTES = 64 << 20  # larger copies get pinned memory of their own, not pooled


def pinned(nbytes: int) -> cupy.cuda.PinnedMemoryPointer:
    """A pinned host buffer of at least ``nbytes`` (one at least).

    Up to ``ONE_OFF_BYTES``, from this module's pool (which rounds up to a power of two and
    keeps blocks for reuse): dropping it, on any thread, returns it to the pool (bookkeeping,
    no CUDA call). A larger one (a whole matrix for ``add_embedding``) is allocated for that
    copy alone, so the pool never holds gigabytes for the rest of the process; it is freed
    (``cudaFreeHost``) on the release thread, never the caller's (``DevicePending``). The
    holders drop a buffer only after the copy that uses it has run.
    """
    if nbytes > ONE_OFF_BYTES:
        return _allocate_pinned(nbytes)
    return _pinned_pool.malloc(max(nbytes, 1))


def stage(values: np.ndarray, device_pointer: int, stream: object) -> object:
    """Queue a copy of host ``values`` to ``device_pointer`` on ``stream`` through pinned
    memory (no sync); returns the pinned buffer, to keep until the copy has run."""
    pinned_buffer = pinned(values.nbytes)
    staged = np.frombuffer(pinned_buffer, values.dtype, values.size)
    staged[:] = values.ravel()
    cupy.cuda.runtime.memcpyAsync(
        device_pointer, staged.ctypes.data, values.nbytes, HOST_TO_DEVICE, stream.ptr
    )
    return pinned_buffer


class DevicePending(Pending):
    """A result whose bytes are being copied into pinned host memory on some stream.

    ``result()`` (the writer thread) waits on the event recorded after the copy, then parses
    the pinned bytes once. Until then, the pending result keeps the input tensor, the device
    buffer and the pinned buffer alive. If it is dropped unread, on whatever thread, it hands
    its event and buffers to the release thread, which waits for the event and only then lets
    the buffers return to their pools: dropping a result never waits for the device.
    """

    __slots__ = ("_event", "_host", "_keep", "_parse", "_pid", "_value")

    def __init__(
        self, event: cupy.cuda.Event, host: np.ndarray, parse: Callable, keep: tuple
    ) -> None:
        self._event = event
        self._host = host
        self._parse = parse
        self._keep = keep
        self._value = None
        self._pid = os.getpid()

    def result(self) -> object:
        if self._keep is not None:
            if self._pid != os.getpid():
                raise RuntimeError(
                    "a device result launched before os.fork() cannot be read in the child: "
                    "CUDA does not survive fork; log from the parent, or start the worker "
                    "with the 'spawn' or 'forkserver' method"
                )
            # The writer thread sleeps here; a caller only in a call documented to wait for
            # its own copies (add_embedding, whose files are on disk when it returns).
            with capture.relaxed():
                self._event.synchronize()
                self._value = self._parse(self._host)
                keep, host, self._keep, self._host = self._keep, self._host, None, None
                if host.nbytes > ONE_OFF_BYTES:  # freed by cudaFreeHost: not on this thread
                    release_after(None, (keep, host))
                # Otherwise the buffers return to their pools here; with a user's pool turned
                # off, that frees device memory, which relaxed mode keeps from a capture.
                del keep, host
        return self._value

    def __del__(self) -> None:
        if self._keep is not None:
            if self._pid != os.getpid():
                _keep_in_child((self._event, self._keep, self._host))
                return
            try:
                release_after(self._event, (self._keep, self._host))
            except Exception:  # noqa: BLE001 - interpreter shutdown: the device goes too
                pass


_dropped: queue.SimpleQueue = queue.SimpleQueue()  # (event, buffers) of unread results
_release_thread: threading.Thread | None = None


def _release_dropped(dropped: queue.SimpleQueue) -> None:
    while True:
        event, buffers = dropped.get()
        with capture.relaxed():  # waits and frees alike: a user's capture stays valid
            try:
                if event is not None:
                    event.synchronize()  # the release thread sleeps here, never the caller
            except Exception:  # noqa: BLE001 - a failed device: nothing left to protect
                pass
            del event, buffers


def release_after(event: object, buffers: tuple) -> None:
    """Keep ``buffers`` until ``event`` (None: nothing to wait for) has completed, then drop
    them on the release thread, without waiting here (``__del__`` runs on any thread:
    SimpleQueue.put is safe there, and no lock is taken)."""
    global _release_thread
    if sys.is_finalizing():  # no thread starts now; the device goes with the process
        return
    _dropped.put((event, buffers))
    thread = _release_thread
    if thread is None or not thread.is_alive():  # first drop, or a child after fork()
        thread = threading.Thread(
            target=_release_dropped, args=(_dropped,), name="gpu_summary-release", daemon=True
        )
        try:
            thread.start()
        except RuntimeError:  # interpreter shutdown: the device goes too
            return
        _release_thread = thread


def _keep_in_child(objects: object) -> None:
    """Never release ``objects`` (CUDA events and buffers a forked child inherited): one
    reference more than anything will drop, so not even the interpreter's exit frees them."""
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(objects))


def forget_after_fork() -> None:
    """In a forked child: the parent's dropped results, pinned blocks and loaded kernels are
    kept untouched; the child starts its own queue, release thread, pool and kernels if it
    ever uses a device."""
    global _dropped, _release_thread, _pinned_pool, _lock
    _keep_in_child((_dropped, _pinned_pool, dict(_modules), dict(_functions)))
    _lock = threading.Lock()  # a compile the parent was running does not exist here
    _modules.clear()  # CuPy unloads a collected module: in the child, a failing CUDA call
    _functions.clear()
    _resident_blocks.clear()
    _dropped, _release_thread = queue.SimpleQueue(), None
    _pinned_pool = cupy.cuda.PinnedMemoryPool(_allocate_pinned)


def order_after(earlier: object, stream: object) -> None:
    """Make ``stream`` wait (on the device, never the host) for the work queued so far on
    ``earlier``; nothing when they are one stream."""
    if earlier.ptr != stream.ptr:
        event = cupy.cuda.Event(disable_timing=True)
        event.record(earlier)
        stream.wait_event(event)


def launch_copy(
    device_buffer: cupy.cuda.MemoryPointer, nbytes: int, stream: object
) -> tuple[np.ndarray, cupy.cuda.Event]:
    """Queue a copy of ``nbytes`` to pinned memory and an event after it."""
    host = np.frombuffer(pinned(nbytes), np.uint8, max(nbytes, 1))[:nbytes]
    if nbytes:
        cupy.cuda.runtime.memcpyAsync(
            host.ctypes.data, device_buffer.ptr, nbytes, DEVICE_TO_HOST, stream.ptr
        )
    event = cupy.cuda.Event(block=True, disable_timing=True)
    event.record(stream)
    return host, event


def flat_source(
    values: DeviceArray, view_of: Callable = kernel_layout.kernel_view
) -> tuple[int, list[int], list[int], cupy.ndarray]:
    """The input as a kernel reads it: (address, shape, strides, array to keep), laid out by
    ``view_of`` (any order for gs_reduce; ``kernel_layout.c_order_view`` for gs_anomaly)."""
    array = values.array
    itemsize = array.dtype.itemsize
    view = view_of(array.data.ptr, array.shape, array.strides, itemsize)
    if view is None:  # odd strides or too many dimensions: copy, on the stream
        array = cupy.ascontiguousarray(array)
        view = view_of(array.data.ptr, array.shape, array.strides, itemsize)
    pointer, shape, strides = view
    return pointer, shape, strides, array
