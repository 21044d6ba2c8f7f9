"""CUDA graph capture: never recorded into, never invalidated.

Two hazards a logging library brings to a program that captures CUDA graphs
(``torch.cuda.graph``, ``torch.compile(mode="reduce-overhead")``, ``cupy.cuda.Graph``):

* **A call on a capturing stream.** The memset, kernels and copy of a reduction would be
  recorded into the user's graph, with buffers that return to CuPy's pools when the call's
  result is read: every replay would write into recycled memory, and a pool that grows during
  the capture makes the capture fail. :func:`refuse_capturing` raises at the call instead,
  naming the fix, before anything is queued.
* **A wait on our own threads while the user captures.** The writer and release threads wait
  for CUDA events (``cudaEventSynchronize``). Under the capture mode torch uses by default
  (``capture_error_mode="global"``) any thread's potentially unsafe call invalidates the
  capture. :func:`relaxed` puts the calling thread in ``cudaStreamCaptureModeRelaxed`` for the
  duration of the wait, and restores the thread's mode after it, so our background work never
  invalidates a user's capture, and a caller's thread is left as it was.

The mode is the driver's per-thread state (``cuThreadExchangeStreamCaptureMode``), shared by
every CUDA runtime in the process (CuPy's, PyTorch's): it is set through the driver library.
CuPy exposes no binding for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import sys
from collections.abc import Iterator

RELAXED = 2  # CU_STREAM_CAPTURE_MODE_RELAXED (cudaStreamCaptureModeRelaxed)
_UNLOADED = object()
_driver: object = _UNLOADED


def driver() -> object | None:
    """The CUDA driver library (``libcuda``), or None where it cannot be loaded (no driver:
    then nothing can be capturing either)."""
    global _driver
    if _driver is _UNLOADED:
        name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
        try:
            _driver = ctypes.CDLL(name)
            _driver.cuThreadExchangeStreamCaptureMode.argtypes = [ctypes.POINTER(ctypes.c_int)]
            _driver.cuThreadExchangeStreamCaptureMode.restype = ctypes.c_int
        except (OSError, AttributeError):
            _driver = None
    return _driver


def _exchange(library: object, mode: int) -> int | None:
    """Set the calling thread's capture mode; its previous mode, or None if the driver
    refused (not initialised on this thread yet: then no capture can involve it)."""
    value = ctypes.c_int(mode)
    if library.cuThreadExchangeStreamCaptureMode(ctypes.byref(value)) != 0:
        return None
    return value.value


@contextlib.contextmanager
def relaxed() -> Iterator[None]:
    """Run the block (a wait for the device) in relaxed capture mode, then restore the thread's
    own mode."""
    library = driver()
    previous = None if library is None else _exchange(library, RELAXED)
    try:
        yield
    finally:
        if previous is not None and previous != RELAXED:
            _exchange(library, previous)


def refuse_capturing(stream: object, argument: str) -> None:
    """Raise RuntimeError if ``stream`` (the one a call would queue its work on) is capturing a
    CUDA graph; nothing has been queued yet."""
    try:
        capturing = bool(stream.is_capturing())
    except Exception as exc:  # noqa: BLE001 - the query itself is illegal during a capture
        capturing, why = True, f" (asking the stream failed: {exc})"
    else:
        why = ""
    if capturing:
        raise RuntimeError(
            f"{argument} is on a CUDA stream that is capturing a graph{why}; gpu_summary's "
            "kernels and copies would be recorded into it, with buffers gone by the time it "
            "replays. Log outside the captured region instead: after graph.replay(), from the "
            "graph's static output tensors, or from the eager warm-up steps"
        )
