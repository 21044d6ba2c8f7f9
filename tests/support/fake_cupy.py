"""A stand-in for the part of CuPy the device backend uses, on the CPU.

"Device memory" is host memory; the stream operations (memset, copies, events) run at once;
kernels are the real kernel sources compiled for the CPU (tests/support/emulator.py),
launched with the grid, block, arguments and shared memory size the backend passes. Installed
as ``cupy`` in ``sys.modules`` by the ``emulated`` backend fixture, it runs the device backend
(gpu_summary/_backend/cuda/) end to end without a GPU: buffer layouts, launch arguments, strided and
foreign inputs, result parsing, writer integration. What it cannot show: asynchrony, streams,
real CUDA memory semantics (tests/test_backend_cuda.py does, on a GPU).

Every launch and stream operation is recorded in ``log`` for tests to inspect; device
allocations in ``allocations`` and event records in ``event_records``.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import threading
import types
from pathlib import Path

import numpy as np

from gpu_summary._backend.cuda_kernels import catalogue
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from support import emulator

bool_ = np.bool_
uint16 = np.uint16
uint8 = np.uint8
float32 = np.float32
log: list[tuple] = []
compiles: list[tuple] = []  # (module, name expressions, compiling thread) of each RawModule
waits: list[int] = []  # the thread of each Event.synchronize
wait_modes: list[int] = []  # the waiting thread's capture mode at each Event.synchronize
pinned_blocks: list[tuple[int, int]] = []  # (bytes, allocating thread) from pinned pools
allocations: list[int] = []  # the bytes of each device allocation (cuda.alloc)
event_records: list[int] = []  # the stream of each Event.record
in_other_process: list[str] = []  # CUDA calls made on a parent's objects in a forked child
_launch_lock = threading.Lock()
built_in: Path | None = None  # the folder holding the emulated kernels
_libraries: dict[str, ctypes.CDLL] = {}
_FILES = (
    kernel_sources.REDUCE_FILE,
    kernel_sources.THUMBNAILS_FILE,
    kernel_sources.ANOMALY_FILE,
    kernel_sources.PR_CURVE_FILE,
    kernel_sources.FORMATS_FILE,
)
_GARBAGE = 0xAB  # fresh "device" memory is not zero, so a missing memset shows


def install(folder, reuse: bool = False) -> types.ModuleType:
    """Build the emulated kernels into ``folder`` (``reuse``: load those already built there,
    e.g. by the test process for its worker processes); return this module, ready to stand
    in."""
    global built_in
    for filename in _FILES:
        if filename not in _libraries:
            _libraries[filename] = emulator.build(filename, Path(folder), reuse)
    built_in = built_in or Path(folder)
    return sys.modules[__name__]


class _Memory:
    def __init__(self, size: int) -> None:
        self.buffer = np.full(max(size, 1), _GARBAGE, dtype=np.uint8)
        self.ptr = self.buffer.ctypes.data
        self.size = size


class UnownedMemory:
    def __init__(self, ptr: int, size: int, owner: object, device_id: int = -1) -> None:
        self.ptr, self.size, self.owner, self.device_id = ptr, size, owner, device_id


class MemoryPointer:
    def __init__(self, mem: object, offset: int) -> None:
        self.mem = mem
        self.ptr = mem.ptr + offset


class _Data:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


# An H100 SXM's multiprocessors, and the blocks of 256 threads its occupancy calculator lets
# reside per multiprocessor for kernels of 40-64 registers: the grids of a real launch.
MULTIPROCESSORS = 132
RESIDENT_BLOCKS = 4


class _Device:
    def __init__(self, device: int | None = None) -> None:
        self.id = device or 0
        self.attributes = {"MultiProcessorCount": MULTIPROCESSORS}

    def __enter__(self) -> _Device:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class ndarray:
    """A device array: a NumPy array standing in for device memory."""

    def __init__(self, shape, dtype=float, memptr=None, strides=None) -> None:
        if isinstance(shape, np.ndarray):  # internal: wrap a host array
            self._host = shape
            return
        dtype = np.dtype(dtype)
        shape = tuple(shape)
        if strides is None:
            strides = tuple(np.cumprod((1, *shape[:0:-1]))[::-1] * dtype.itemsize) if shape else ()
        extent = max(
            1, sum((n - 1) * abs(s) for n, s in zip(shape, strides, strict=True)) + dtype.itemsize
        )
        low = sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s < 0)
        raw = (ctypes.c_uint8 * extent).from_address(memptr.ptr + low)
        self._host = np.ndarray(shape, dtype, buffer=raw, offset=-low, strides=strides)

    shape = property(lambda self: self._host.shape)
    strides = property(lambda self: self._host.strides)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    ndim = property(lambda self: self._host.ndim)
    nbytes = property(lambda self: self._host.nbytes)
    device = property(lambda self: _Device(0))
    flags = property(lambda self: self._host.flags)

    @property
    def data(self) -> _Data:
        return _Data(self._host.__array_interface__["data"][0])

    @property
    def __cuda_array_interface__(self) -> dict:
        interface = dict(self._host.__array_interface__)
        interface["version"] = 3
        interface["stream"] = None
        return interface

    def __getitem__(self, key: object) -> ndarray:
        return ndarray(self._host[key])

    @property
    def T(self) -> ndarray:
        return ndarray(self._host.T)

    def transpose(self, *axes) -> ndarray:
        return ndarray(self._host.transpose(*axes))

    def reshape(self, *shape) -> ndarray:
        return ndarray(self._host.reshape(*shape))

    def view(self, dtype) -> ndarray:
        return ndarray(self._host.view(dtype))

    def get(self) -> np.ndarray:
        return self._host.copy()

    def copy(self) -> ndarray:
        log.append(("copy", self.shape, get_current_stream().ptr))
        return ndarray(self._host.copy())


def asarray(a, dtype=None) -> ndarray:
    return ndarray(np.array(a, dtype=dtype))


def ascontiguousarray(a: ndarray) -> ndarray:
    log.append(("copy", a.shape))
    return ndarray(np.ascontiguousarray(a._host))


class _HostCapsule:
    """A capsule a producer handed over, read by NumPy as host memory."""

    def __init__(self, capsule: object) -> None:
        self._capsule = capsule

    def __dlpack__(self, **options: object) -> object:
        return self._capsule

    def __dlpack_device__(self) -> tuple[int, int]:
        return (1, 0)


def from_dlpack(array) -> ndarray:
    # As CuPy does: the producer is asked to order its writes before the current stream, named
    # 1 for the legacy default stream and 2 for the per-thread one.
    current = get_current_stream().ptr
    stream = 1 if current == 0 else current
    log.append(("from_dlpack", stream))
    return ndarray(np.from_dlpack(_HostCapsule(array.__dlpack__(stream=stream))))


class _Stream:
    _current: _Stream | None = None
    _handles = iter(range(0x5000, 1 << 62))  # fake cudaStream_t values of new streams

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False) -> None:
        self.ptr = 0 if null else 2 if ptds else next(_Stream._handles)
        self.done = True
        self.capturing = False  # a test sets it: a stream capturing a CUDA graph
        self._previous: list[_Stream | None] = []

    @classmethod
    def _of_handle(cls, ptr: int) -> _Stream:
        stream = cls()
        stream.ptr = ptr
        return stream

    def __enter__(self) -> _Stream:
        self._previous.append(_Stream._current)
        _Stream._current = self
        return self

    def __exit__(self, *exc: object) -> None:
        _Stream._current = self._previous.pop()

    def synchronize(self) -> None:
        pass

    def is_capturing(self) -> bool:
        return self.capturing

    def wait_event(self, event: _Event) -> None:
        assert event.recorded_on is not None, "waited on an event that was never recorded"
        log.append(("wait_event", self.ptr, event.recorded_on))

    @classmethod
    def from_external(cls, obj: object) -> _Stream:
        version, ptr = obj.__cuda_stream__()
        assert version == 0, version
        return cls._of_handle(ptr)


class _ExternalStream(_Stream):
    def __init__(self, ptr: int, device_id: int = -1) -> None:
        raise AssertionError("ExternalStream is deprecated in CuPy 14: use Stream.from_external")


class CUDARuntimeError(RuntimeError):
    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"CUDA error {status}")


_INITIALIZATION_ERROR = 3  # cudaErrorInitializationError: CUDA used in a forked child


class _Event:
    def __init__(self, block: bool = False, disable_timing: bool = False) -> None:
        self.recorded_on: int | None = None
        self.done = False
        self._pid = os.getpid()

    def _in_other_process(self, what: str) -> bool:
        if os.getpid() == self._pid:
            return False
        in_other_process.append(what)
        return True

    def __del__(self) -> None:  # CuPy's Event destroys its CUDA event when collected
        if self._in_other_process("cudaEventDestroy"):
            sys.stderr.write(
                "Exception ignored in: 'cupy.cuda.stream.Event.__dealloc__'\n"
                "CUDARuntimeError: cudaErrorInitializationError: initialization error\n"
            )

    def record(self, stream: _Stream | None = None) -> None:
        self.recorded_on = (stream or get_current_stream()).ptr
        event_records.append(self.recorded_on)
        self.done = True  # everything before it already ran

    def synchronize(self) -> None:
        assert self.recorded_on is not None, "waited on an event that was never recorded"
        if self._in_other_process("cudaEventSynchronize"):
            raise CUDARuntimeError(_INITIALIZATION_ERROR)
        waits.append(threading.get_ident())
        wait_modes.append(driver_library.mode())


def get_current_stream(device_id: int = -1) -> _Stream:
    return _Stream._current or _Stream.null


_Stream.null = _Stream(null=True)
_Stream.ptds = _Stream(ptds=True)


class _Function:
    def __init__(self, ptr: int) -> None:
        self.ptr = ptr


class _Kernel:
    """A compiled kernel (``name``, an instantiation of a template of the kernel source
    ``code``): launches the CPU build of the same source."""

    def __init__(self, code: str, name: str) -> None:
        self.kernel = _Function(id(self))
        filename = _file_of(code)
        match = re.fullmatch(r"(gs_\w+)(?:<(.+?)(?:, (\d))?>)?", name)
        assert match, name
        self.name, type_name, mode = match.groups()
        self.type_code = None
        if type_name is not None:
            self.type_code = emulator.TYPE_CODES[
                next(k for k, v in kernel_sources.CUDA_TYPES.items() if v == type_name)
            ]
        self.mode = None if mode is None else int(mode)
        self.library = _libraries[filename]

    def __call__(self, grid, block, args, *, shared_mem: int = 0) -> None:
        with _launch_lock:  # the emulator's grid state is global: one launch at a time
            self._launch(grid, block, args, shared_mem)

    def _launch(self, grid, block, args, shared_mem: int) -> None:
        assert block == (kernel_sources.THREADS,), block
        log.append(("launch", self.name, self.mode, grid[0], shared_mem, get_current_stream().ptr))
        values = emulator.as_ctypes(args)
        if self.name == "gs_reduce":
            size = self.library.emu_gs_reduce(
                self.type_code, self.mode, ctypes.c_uint(grid[0]), ctypes.c_uint64(shared_mem),
                *values,
            )  # fmt: skip
        elif self.name == "gs_multi_ladder":
            size = self.library.emu_gs_multi_ladder(
                self.type_code, ctypes.c_uint(grid[0]), ctypes.c_uint64(shared_mem), *values
            )
        elif self.name == "gs_pr_counts":
            size = self.library.emu_gs_pr_counts(
                self.type_code, ctypes.c_uint(grid[0]), ctypes.c_uint64(shared_mem), *values
            )
        elif self.name == "gs_thumbnails":
            assert shared_mem == 0
            size = self.library.emu_gs_thumbnails(self.type_code, ctypes.c_uint(grid[0]), *values)
        else:
            assert shared_mem == 0
            function = getattr(self.library, f"emu_{self.name}")
            typed = () if self.type_code is None else (self.type_code,)
            size = function(*typed, ctypes.c_uint(grid[0]), *values)
        assert size > 0, f"no emulated instantiation for {self.name} type {self.type_code}"


def _file_of(code: str) -> str:
    return next(f for f in _FILES if kernel_sources.kernel_source(f) == code)


class RawModule:
    def __init__(self, code: str, *, options: tuple = (), name_expressions=None) -> None:
        self.code = code
        self.filename = _file_of(code)
        assert options == kernel_sources.COMPILE_OPTIONS
        self.expressions = list(name_expressions or [])
        compiles.append((self.filename, tuple(self.expressions), threading.get_ident()))

    def get_function(self, name: str) -> _Kernel:
        assert name in self.expressions, "ask only for instantiated templates"
        assert name in catalogue.name_expressions(self.filename)
        return _Kernel(self.code, name)


RawKernel = _Kernel


def _alloc(size: int) -> MemoryPointer:
    allocations.append(size)
    return MemoryPointer(_Memory(size), 0)


class PinnedMemory:
    """cudaHostAlloc'd memory; collecting it frees it (cudaFreeHost, which syncs the device)."""

    def __init__(self, size: int, flags: int = 0) -> None:
        self.size = size
        self.flags = flags

    def __del__(self) -> None:
        log.append(("freeHost", self.size, threading.get_ident()))


class PinnedMemoryPointer(bytearray):
    """What CuPy's pinned allocations return: a buffer (for np.frombuffer) of ``mem.size -
    offset`` bytes, its address in ``ptr``."""

    def __init__(self, mem: PinnedMemory, offset: int) -> None:
        self.size = mem.size - offset
        super().__init__(bytes([_GARBAGE]) * max(self.size, 1))  # not zero: a missing fill shows
        self.mem = mem
        self.ptr = ctypes.addressof((ctypes.c_char * len(self)).from_buffer(self))


def _alloc_pinned_memory(size: int) -> PinnedMemoryPointer:
    raise AssertionError(
        "cupy.cuda.alloc_pinned_memory uses CuPy's shared pinned allocator, which a user may "
        "turn off (then every drop is a cudaFreeHost): the backend has a pool of its own"
    )


class PinnedMemoryPool:
    """CuPy's pool: blocks from ``allocator``, kept (and so never freed) while the pool lives;
    reuse is not modelled (each buffer is a fresh one: see PinnedMemoryPointer)."""

    def __init__(self, allocator=None) -> None:
        self._allocator = allocator
        self.blocks: list[object] = []

    def malloc(self, size: int) -> PinnedMemoryPointer:
        # CuPy 14's control flow: a power of two of 512-byte units; on CUDA's out-of-memory
        # error, every free block released (cudaFreeHost each) and one more try.
        size = 1 << max(9, (max(size, 1) - 1).bit_length())
        try:
            mem = self._allocator(size).mem
        except CUDARuntimeError as exc:
            if exc.status != 2:  # cudaErrorMemoryAllocation
                raise
            self.free_all_blocks()
            mem = self._allocator(size).mem
        pinned_blocks.append((size, threading.get_ident()))
        self.blocks.append(mem)
        return PinnedMemoryPointer(mem, 0)

    def free_all_blocks(self) -> None:
        for block in self.blocks:
            log.append(("freeHost", block.size, threading.get_ident()))
        self.blocks.clear()


class _Driver:
    """libcuda's per-thread stream capture mode (cuThreadExchangeStreamCaptureMode)."""

    GLOBAL = 0

    def __init__(self) -> None:
        self._modes: dict[int, int] = {}

    def mode(self) -> int:
        return self._modes.get(threading.get_ident(), self.GLOBAL)

    def cuThreadExchangeStreamCaptureMode(self, mode) -> int:
        value = mode._obj  # ctypes.byref(c_int)
        previous = self.mode()
        self._modes[threading.get_ident()] = value.value
        value.value = previous
        return 0


driver_library = _Driver()


def _occupancy(func: int, blockSize: int, dynamicSMemSize: int) -> int:
    assert blockSize == kernel_sources.THREADS, blockSize
    return RESIDENT_BLOCKS


def _memset_async(ptr: int, value: int, size: int, stream: int) -> None:
    log.append(("memset", size, stream))
    ctypes.memset(ptr, value, size)


def _memcpy_async(dst: int, src: int, size: int, kind: int, stream: int) -> None:
    log.append(("memcpy", size, kind, stream))
    ctypes.memmove(dst, src, size)


_runtime = types.SimpleNamespace(
    memsetAsync=_memset_async,
    memcpyAsync=_memcpy_async,
    pointerGetAttributes=lambda ptr: types.SimpleNamespace(device=0),
    getDevice=lambda: 0,
    CUDARuntimeError=CUDARuntimeError,
    hostAllocPortable=1,
)
cuda = types.SimpleNamespace(
    Device=_Device,
    Stream=_Stream,
    ExternalStream=_ExternalStream,
    Event=_Event,
    UnownedMemory=UnownedMemory,
    MemoryPointer=MemoryPointer,
    alloc=_alloc,
    alloc_pinned_memory=_alloc_pinned_memory,
    PinnedMemoryPointer=PinnedMemoryPointer,
    PinnedMemory=PinnedMemory,
    PinnedMemoryPool=PinnedMemoryPool,
    get_current_stream=get_current_stream,
    runtime=_runtime,
    driver=types.SimpleNamespace(occupancyMaxActiveBlocksPerMultiprocessor=_occupancy),
)
