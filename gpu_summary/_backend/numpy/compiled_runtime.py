"""The compiled host path's machinery: whether it may run, the numba kernels loaded off the
caller's thread, and the thread pool the reductions share out their parts on.

``compiled`` (statistics and histograms) and ``compiled_reports`` (anomaly reports, thumbnails)
build on it; ``compiled_kernels`` holds the numba functions, imported only when numba is
(``compiled_format_kernels`` those of ``compiled_formats``, the low-precision counts).

Compiling takes about a second per dtype (then numba's on-disk cache loads it in milliseconds);
it happens on a background thread once a dtype's arrays have brought ``COMPILE_FROM`` values
in all (one large array, or a model's many small tensors), and calls take the specification's
path meanwhile, so no call waits for the compiler. Arrays under ``SMALL`` values
(``SMALL_STATS`` for statistics alone) take the specification always: there NumPy's few passes
cost less than the call into the kernels (about 15 us). :func:`prepare` compiles ahead (tests
and benchmarks wait for it).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
import warnings
from collections.abc import Callable, Iterator

import numpy as np

from gpu_summary._sync import StoppableThread, WorkerPool, in_worker

PART = 1 << 20  # arrays this large are split over threads, parts at least this large
SLAB = 1 << 20  # values copied at a time from a non-contiguous array
# Values of a dtype, all its arrays together, before its kernels are compiled (numba's import
# alone costs ~0.5 s of CPU, more than the specification spends on a short script's few arrays).
COMPILE_FROM = 1 << 16
# Below these sizes the specification is as fast or faster than the compiled call (measured on
# float32 for the ladder, even buckets and statistics alone: crossovers near 256 and 4,096).
SMALL = 1 << 8
SMALL_STATS = 1 << 12

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
WIDE_INTS = tuple(np.dtype(t) for t in (np.int32, np.uint32, np.int64, np.uint64))
PATTERNS = tuple(
    np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.float16)
)
SUPPORTED = FLOATS + WIDE_INTS + PATTERNS


def enabled() -> bool:
    """Whether compiled kernels may be used: numba is installed (looked up, not imported: that
    happens on the compiling thread) and ``GPU_SUMMARY_COMPILED`` does not switch them off."""
    if os.environ.get("GPU_SUMMARY_COMPILED", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    return _numba_installed() and _kernel_module is not _NO_NUMBA


@functools.cache
def _numba_installed() -> bool:
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a finder that refuses it; sys.modules["numba"] = None
        return False


# --- the kernels (built on first use; numba is optional) -------------------------------------

_kernel_module: object = None
_kernel_lock = threading.Lock()
_NO_NUMBA = object()


def kernels() -> object:
    """The namespace of compiled kernels, or None without numba."""
    global _kernel_module
    if _kernel_module is None:
        with _kernel_lock:
            if _kernel_module is None:
                try:
                    _kernel_module = _build_kernels()
                except ImportError:
                    _kernel_module = _NO_NUMBA
    return None if _kernel_module is _NO_NUMBA else _kernel_module


def _build_kernels() -> object:
    from gpu_summary._backend.numpy import compiled_kernels

    return compiled_kernels


# --- running parts on threads -----------------------------------------------------------------

_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


@functools.cache
def workers() -> int:
    """Threads a reduction is shared over: the CPUs this process may run on (its affinity,
    which containers and ``taskset`` narrow), at most 8."""
    try:
        usable_cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        usable_cpus = os.cpu_count() or 1
    return max(1, min(8, usable_cpus))


def thread_pool() -> WorkerPool:
    """The threads reductions share their parts over (not a shared pool such as BLAS's: ours,
    and safe against an interrupt while the caller waits for it)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool(workers())
        return _pool


def _forget_pool_after_fork() -> None:
    """The parent's threads do not exist in a forked child: no pool, and no compile running
    (a variant the parent was compiling is compiled again at its next use here)."""
    global _pool, _pool_lock, _state_lock
    _pool, _pool_lock, _state_lock = None, threading.Lock(), threading.Lock()
    for variant in [v for v, state in _state.items() if state == "compiling"]:
        del _state[variant]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def part_count(count: int) -> int:
    """How many contiguous parts :func:`in_parts` shares ``count`` values over (1 below
    ``2 * PART`` without asking how many CPUs there are)."""
    if count < 2 * PART:
        return 1
    return max(1, min(workers(), count // PART))


def in_parts(count: int, work: Callable[[int, int], object]) -> list[object]:
    """``work(start, stop)`` over contiguous parts of range(count), on the pool's threads and
    this one; results in part order."""
    parts = part_count(count)
    if parts == 1 or in_worker():
        return [work(0, count)]
    bounds = [count * k // parts for k in range(parts + 1)]
    try:
        futures = [thread_pool().submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)]
    except RuntimeError:  # interpreter shutdown: no new threads
        return [work(0, count)]
    return [work(bounds[0], bounds[1]), *(f.result() for f in futures)]


def in_parts_by_item(count: int, work: Callable[[int, int], object]) -> None:
    """``work(first, stop)`` over ranges of ``count`` items (images), one per thread."""
    parts = max(1, min(workers(), count))
    bounds = [count * k // parts for k in range(parts + 1)]
    futures = []
    if parts > 1 and not in_worker():
        try:
            futures = [
                thread_pool().submit(work, bounds[k], bounds[k + 1]) for k in range(1, parts)
            ]
        except RuntimeError:  # interpreter shutdown
            futures = []
    work(bounds[0], bounds[1] if futures else count)
    for future in futures:
        future.result()


def pieces(values: np.ndarray) -> Iterator[np.ndarray]:
    """1-D contiguous pieces covering every element once (views when contiguous)."""
    if values.ndim == 0:
        yield values.reshape(1)
    elif values.flags.c_contiguous or values.flags.f_contiguous:
        yield values.ravel(order="K")
    else:
        inner = max(1, values[0].size) if values.shape[0] else 1
        step = max(1, SLAB // inner)
        for start in range(0, values.shape[0], step):
            yield np.ascontiguousarray(values[start : start + step]).reshape(-1)


# --- which inputs the kernels take, and compiling them off the caller's thread ----------------

# What compiles a variant's kernels: each takes a small sample of the variant (its dtype, read-only
# or not) and runs every kernel that a reduction of it would (registered by the modules that
# call them: ``compiled``, ``compiled_reports``).
WARMERS: list[Callable[[np.ndarray], None]] = []
_state: dict[tuple[np.dtype, bool], str] = {}  # variant -> "compiling" | "ready" | "failed"
_seen: dict[tuple[np.dtype, bool], int] = {}  # variant -> values brought before its compile
_state_lock = threading.Lock()


def variant_of(piece: np.ndarray) -> tuple[np.dtype, bool] | None:
    """The kernels a 1-D contiguous piece needs (its dtype, whether it is read-only, which
    numba compiles apart), or None when none reads it."""
    if piece.dtype not in SUPPORTED:  # also rejects non-native byte order ('>f4' != float32)
        return None
    return piece.dtype, not piece.flags.writeable


def usable(variant: tuple[np.dtype, bool], size: int) -> bool:
    """Whether the kernels of ``variant`` are compiled; if not yet asked for and the ``size``
    values of this call bring the variant's total to ``COMPILE_FROM``, compile them on a
    background thread (the caller takes the specification's path meanwhile)."""
    state = _state.get(variant)
    if state == "ready":
        return True
    if state is not None:  # compiling, or failed: nothing to count
        return False
    seen = _seen[variant] = _seen.get(variant, 0) + size  # unlocked: a race only miscounts
    if seen >= COMPILE_FROM and enabled():
        with _state_lock:
            if variant not in _state:
                _state[variant] = "compiling"
                StoppableThread(_compile, "gpu_summary compile", (variant,)).start()
    return False


def _compile(variant: tuple[np.dtype, bool]) -> None:
    dtype, readonly = variant
    sample = np.array([0, 1, 2, 3, 4], dtype=np.float64).astype(dtype)
    sample.setflags(write=not readonly)
    try:
        for warm in WARMERS:
            warm(sample)
    except Exception as exc:  # noqa: BLE001 - a compiler failure must not reach the caller
        warnings.warn(
            f"gpu_summary: compiling the host kernels for {dtype} failed ({exc}); its "
            "reductions take the NumPy path",
            RuntimeWarning,
            stacklevel=1,
        )
        _state[variant] = "failed"
        return
    _state[variant] = "ready"


def prepare(dtypes: tuple = SUPPORTED, readonly: tuple[bool, ...] = (False, True)) -> bool:
    """Compile (or load from numba's cache) the kernels of ``dtypes`` on this thread, now.

    Returns:
        Whether compiled kernels are in use (False without numba or when switched off).
    """
    if not enabled() or kernels() is None:
        return False
    for dtype in dtypes:
        for flag in readonly:
            variant = (np.dtype(dtype), flag)
            with _state_lock:
                if _state.get(variant) == "ready":
                    continue
                _state[variant] = "compiling"
            _compile(variant)
    return True


def read_only(array: np.ndarray) -> np.ndarray:
    """A read-only float64 C-contiguous copy (one kernel signature for every limits array)."""
    array = np.array(array, dtype=np.float64, order="C", copy=True)
    array.setflags(write=False)
    return array
