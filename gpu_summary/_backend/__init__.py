"""Backend dispatch: pick the reduction backend from the array's type, without importing it.

Host data (NumPy arrays and scalars, Python numbers and lists, CPU tensors of any library that
speaks DLPack or the array protocol) goes to the NumPy backend, the reference. Device data
(``__cuda_array_interface__``, or ``__dlpack_device__`` naming a CUDA device) goes to the CUDA
backend (``cuda.py``, which imports CuPy), wrapped zero-copy with the stream it is ordered on.
Detection reads types and ``sys.modules`` only, so a NumPy input never imports
CuPy, and a type's verdict is cached when the type alone decides it.
"""

from __future__ import annotations

import numbers
import threading

import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.protocol import BACKEND_FUNCTIONS, Backend
from gpu_summary._sync import StoppableThread

__all__ = ["BACKEND_FUNCTIONS", "Backend", "backend_for", "device_backend", "is_device", "warm_up"]

# DLPack device types (dlpack.h): CPU memory, and the CUDA kinds a kernel can read.
_DLPACK_CPU = 1
_DLPACK_CUDA = {2, 3, 13}  # kDLCUDA, kDLCUDAHost, kDLCUDAManaged

_HOST_TYPES: set[type] = {np.ndarray, list, tuple, int, float, bool}


def _is_device(obj: object) -> bool:
    dlpack_device = getattr(obj, "__dlpack_device__", None)
    if dlpack_device is not None:
        try:
            device_type = int(dlpack_device()[0])
        except Exception:  # noqa: BLE001 - a broken exporter is treated as host data
            return False
        return device_type in _DLPACK_CUDA
    return hasattr(obj, "__cuda_array_interface__")


def is_device(values: object) -> bool:
    """Whether ``values`` lives on a CUDA device (and so goes to the device backend)."""
    return type(values) not in _HOST_TYPES and _is_device(values)


def _host_array(obj: object, argument: str) -> np.ndarray:
    """A NumPy view of host data from any library (zero-copy where the library allows),
    checked numeric, narrow floats widened (``numpy_backend.numeric``)."""
    if isinstance(obj, np.ndarray):
        return numpy_backend.numeric(obj, argument)
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.generic):
        detach = getattr(obj, "detach", None)  # torch tensors that require grad
        if callable(detach):
            obj = detach()
        widen = getattr(obj, "float", None)
        if callable(widen) and numpy_backend.is_narrow_float(str(getattr(obj, "dtype", ""))):
            obj = widen()  # a torch bfloat16/float8 tensor, which NumPy cannot view: exact copy
        try:
            array = np.from_dlpack(obj)
        except (BufferError, TypeError, RuntimeError, ValueError):
            pass  # a dtype DLPack cannot carry: fall back to the array protocol
        else:
            return numpy_backend.numeric(array, argument)
    return numpy_backend.as_array(obj, argument)


def _load_device_backend(why: str, fix: str = "") -> Backend:
    """The CUDA backend module (imports CuPy); TypeError saying ``why`` it was needed."""
    try:
        from gpu_summary._backend import cuda
    except ImportError as exc:
        raise TypeError(
            f"{why} but the device backend cannot load ({exc}); install it with "
            f"pip install 'gpu_summary[cuda12]' (or [cuda13]){fix}"
        ) from exc
    return cuda


def device_backend(values: object, argument: str) -> Backend:
    """The CUDA backend module (imports CuPy, on first device input only)."""
    kind = type(values)
    return _load_device_backend(
        f"{argument} is on a CUDA device ({kind.__module__}.{kind.__qualname__})",
        ", or copy the tensor to the host first (for example tensor.cpu())",
    )


def backend_for(values: object, argument: str) -> tuple[Backend, object]:
    """The backend that reduces ``values``, and ``values`` in the form that backend takes.

    Args:
        values: an array, tensor, number or (nested) list of numbers.
        argument: the caller's parameter name, for error messages.

    Raises:
        TypeError: the data is not numeric, or lives on a CUDA device and CuPy is missing.
    """
    kind = type(values)
    if kind in _HOST_TYPES or isinstance(values, (np.generic, numbers.Number)):
        array = numpy_backend.as_array(values, argument)
        return numpy_backend, array
    if _is_device(values):
        backend = device_backend(values, argument)
        return backend, backend.adopt(values, argument)
    return numpy_backend, _host_array(values, argument)


def warm_up(
    dtypes: object = ("float32",), device: int = 0, *, background: bool = True
) -> threading.Thread | None:
    """Compile (or load from CuPy's on-disk cache) the device kernels of ``dtypes`` ahead of the
    first device call, so that no training step pays for it.

    Without it, the first reduction of a dtype on a device compiles that dtype's kernels on the
    calling thread (about 1.5 s for histograms and moments, 0.9 s for anomaly reports, 0.3 s
    for thumbnails, 0.5 s for precision-recall counts, on a 2-core x86 VM; once per machine,
    as CuPy caches the binaries on disk).

    Args:
        dtypes: dtype names ("float32", "bfloat16", ...), NumPy dtypes or torch dtypes.
        device: the CUDA device ordinal.
        background: compile on a daemon thread (returned, started) instead of the caller's.

    Returns:
        The started thread, or None when ``background`` is False.

    Raises:
        ValueError: a dtype the kernels do not read, or a bad device ordinal.
        TypeError: CuPy is missing.
    """

    from gpu_summary._backend.cuda_kernels import sources as kernel_sources

    if isinstance(dtypes, (str, np.dtype, type)) or not hasattr(dtypes, "__iter__"):
        dtypes = (dtypes,)
    names = []
    for dtype in dtypes:
        name = str(dtype).removeprefix("torch.")
        if name not in kernel_sources.CUDA_TYPES:
            try:
                name = np.dtype(dtype).name
            except TypeError:
                pass
        if name not in kernel_sources.CUDA_TYPES:
            raise ValueError(
                f"dtypes holds {dtype!r}, which no kernel reads; use names from "
                f"{sorted(kernel_sources.CUDA_TYPES)}"
            )
        names.append(name)
    if isinstance(device, bool) or not isinstance(device, int) or device < 0:
        raise ValueError(f"device must be a CUDA device ordinal (an int >= 0), got {device!r}")
    cuda = _load_device_backend("warm_up compiles CUDA kernels,")
    if not background:
        cuda.warm_up(tuple(names), device)
        return None
    thread = StoppableThread(cuda.warm_up, "gpu_summary-warm-up", (tuple(names), device))
    thread.start()
    return thread
