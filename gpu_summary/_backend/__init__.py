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
import os
import sys
import threading

import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.protocol import BACKEND_FUNCTIONS, Backend
from gpu_summary._core.results import HistogramResult, Pending
from gpu_summary._sync import StoppableThread

__all__ = [
    "BACKEND_FUNCTIONS",
    "Backend",
    "Placed",
    "backend_for",
    "check_tensor_kind",
    "check_working_copy",
    "device_backend",
    "exact_host_array",
    "host_numbers",
    "is_device",
    "launch_ladder_histograms",
    "probe_arrays",
    "warm_up",
]

# Where one tensor's histogram is: (the pending list of its group, its position in it).
Placed = tuple[Pending[list[HistogramResult]], int]

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


def check_tensor_kind(obj: object, argument: str) -> None:
    """Raise TypeError for a tensor without strided data to read: torch's nested (jagged) and
    meta tensors (sparse ones say so themselves when converted)."""
    if getattr(obj, "is_nested", False) is True:
        raise TypeError(
            f"{argument} is a nested (jagged) tensor, which has no single shape; log its "
            f"components one by one ({argument}.unbind()) or joined (torch.cat)"
        )
    if getattr(obj, "is_meta", False) is True:
        raise TypeError(
            f"{argument} is a meta tensor, which holds no data; pass a tensor on the CPU or "
            "a CUDA device"
        )


def _host_array(obj: object, argument: str) -> np.ndarray:
    """A NumPy view of host data from any library (zero-copy where the library allows),
    checked numeric, narrow floats widened (``numpy_backend.numeric``)."""
    if isinstance(obj, np.ndarray):
        return numpy_backend.numeric(obj, argument)
    check_tensor_kind(obj, argument)
    if hasattr(obj, "__dlpack_device__") and not isinstance(obj, np.generic):
        detach = getattr(obj, "detach", None)  # torch tensors that require grad
        if callable(detach):
            obj = detach()
        if callable(getattr(obj, "float", None)) and numpy_backend.is_narrow_float(
            str(getattr(obj, "dtype", ""))
        ):  # a torch bfloat16/float8 tensor, which NumPy cannot view: exact copy
            obj = numpy_backend.widened(obj, argument)
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


def backend_for(
    values: object, argument: str, *, drop_masked: bool = False
) -> tuple[Backend, object]:
    """The backend that reduces ``values``, and ``values`` in the form that backend takes.

    Args:
        values: an array, tensor, number or (nested) list of numbers.
        argument: the caller's parameter name, for error messages.
        drop_masked: a masked array (``numpy.ma``) stands for its unmasked values (what a
            histogram counts); otherwise a masked array is a TypeError.

    Raises:
        TypeError: the data is not numeric, is masked, is a nested or meta tensor, or lives
            on a CUDA device and CuPy is missing.
    """
    kind = type(values)
    if kind in _HOST_TYPES or isinstance(values, (np.generic, numbers.Number)):
        array = numpy_backend.as_array(values, argument)
        return numpy_backend, array
    if isinstance(values, np.ma.MaskedArray):
        return numpy_backend, numpy_backend.numeric(
            numpy_backend.unmasked(values, argument, drop_masked), argument
        )
    torch = sys.modules.get("torch")
    if torch is not None and (kind is torch.Tensor or kind is torch.nn.Parameter):
        array = _torch_host_array(values, argument)
        if array is not None:
            return numpy_backend, array
    check_tensor_kind(values, argument)
    if _is_device(values):
        backend = device_backend(values, argument)
        return backend, backend.adopt(values, argument)
    return numpy_backend, _host_array(values, argument)


def probe_arrays(values: object, state: object) -> tuple[Backend, object, object]:
    """(the backend, ``values``, ``state``) of a probe's operator call: torch tensors on the
    CPU as NumPy views, on a CUDA device adopted even while their stream captures a graph
    (the probe queues one launch and nothing else; ``cuda.adopt_for_probe``)."""
    argument = "the probe's tensor"
    if values.is_cpu:
        array = _torch_host_array(values, argument)
        if array is None:  # bfloat16 and what else numpy() refuses
            array = _host_array(values, argument)
        return numpy_backend, array, state.numpy()
    check_tensor_kind(values, argument)
    backend = device_backend(values, argument)
    return (backend, backend.adopt_for_probe(values, argument),
            backend.adopt_for_probe(state, "the probe's accumulator"))  # fmt: skip


def _torch_host_array(tensor: object, argument: str) -> np.ndarray | None:
    """A plain torch CPU tensor (or Parameter) as a NumPy view, by ``detach().numpy()``: a
    few microseconds where the DLPack path's Python-level protocol takes some 20 (a histogram
    of every parameter and gradient makes dozens of these calls a step). None for what the
    general path decides: a device, meta or nested tensor, and what ``numpy()`` refuses
    (bfloat16, sparse layouts, conjugate or negative views)."""
    if not tensor.is_cpu or tensor.is_nested:
        return None
    try:
        array = tensor.detach().numpy()
    except (TypeError, RuntimeError):
        return None
    return numpy_backend.numeric(array, argument)


def launch_ladder_histograms(pairs: list[tuple[str, object]], argument: str) -> list[Placed]:
    """Launch the ladder histogram of every ``(name, tensor)``, in as few launches as the
    backends allow; no sync. Device tensors of one device, dtype and stream go in one
    multi-tensor launch; CUDA torch tensors are read directly (``cuda.histograms_torch``),
    never adopted one by one; host arrays make one group per dtype.

    Returns:
        Where each tensor's histogram is, in the order of ``pairs``.

    Raises:
        TypeError: a tensor that is not numeric, or on a device without the device backend
            (the message names ``argument[name]``).
    """
    groups: dict[tuple, list[int]] = {}
    adopted: dict[int, tuple] = {}
    torch = sys.modules.get("torch")
    on_torch_devices = []
    for k, (name, tensor) in enumerate(pairs):
        if torch is not None and isinstance(tensor, torch.Tensor) and tensor.is_cuda:
            on_torch_devices.append(k)
            continue
        backend, array = backend_for(tensor, f"{argument}[{name!r}]", drop_masked=True)
        adopted[k] = (backend, array)
        stream = getattr(getattr(array, "stream", None), "ptr", None)
        key = (backend.__name__, getattr(array, "device_id", None), str(array.dtype), stream)
        groups.setdefault(key, []).append(k)
    placed: list = [None] * len(pairs)
    if on_torch_devices:
        cuda = device_backend(pairs[on_torch_devices[0]][1], argument)
        tensors = [pairs[k][1] for k in on_torch_devices]
        for members, pending in cuda.histograms_torch(tensors):
            for position, m in enumerate(members):
                placed[on_torch_devices[m]] = (pending, position)
    for members in groups.values():
        backend = adopted[members[0]][0]
        pending = backend.histograms([adopted[k][1] for k in members])
        for position, k in enumerate(members):
            placed[k] = (pending, position)
    return placed


def exact_host_array(values: object, argument: str, caller: str) -> tuple[np.ndarray, str]:
    """Host data as a NumPy array of its own dtype, nothing widened, and that dtype's name;
    a torch bfloat16 tensor (which NumPy cannot hold) as its bit patterns (uint16), named
    ``"bfloat16"``. Torch tensors are detached; the array may share the caller's memory.

    Raises:
        TypeError: a masked array, a nested or meta tensor, data that is not an array, or a
            torch dtype NumPy cannot hold (the message names ``caller``, which cannot store it).
    """
    if isinstance(values, np.ma.MaskedArray):
        numpy_backend.unmasked(values, argument, drop=False)  # raises: no place for a hole
    check_tensor_kind(values, argument)
    if type(values).__module__.split(".")[0] == "torch":
        torch = sys.modules["torch"]
        values = values.detach().cpu()
        if values.dtype == torch.bfloat16:
            return values.view(torch.int16).numpy().view(np.uint16), "bfloat16"
        try:
            array = values.numpy()
        except TypeError as exc:
            raise TypeError(f"{argument} has dtype {values.dtype}, which {caller} cannot store "
                            f"({exc}); convert it, e.g. with .float()") from None  # fmt: skip
        return array, array.dtype.name
    try:
        array = np.asarray(values)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argument} must be an array or tensor, got {type(values).__name__}: "
                        f"{exc}") from None  # fmt: skip
    return array, array.dtype.name


def check_working_copy(array: object, nbytes: int, argument: str, purpose: str) -> None:
    """Raise ValueError before a reduction makes an ``nbytes`` working copy of ``array`` (as
    ``backend_for`` returns it, on either backend) that would dwarf the memory its elements
    occupy: a zero-stride view of billions of values (``numpy_backend.check_copy``)."""
    itemsize = int(getattr(array.dtype, "itemsize", 1))
    numpy_backend.check_copy(nbytes, tuple(array.shape), tuple(array.strides), itemsize,
                             argument, purpose)  # fmt: skip


def host_numbers(values: object, argument: str, most: int, unit: str = "values") -> np.ndarray:
    """``values`` — a list, an array or a tensor of any library, on the host or a device — as
    a float64 NumPy array, for the short arguments a call reads whole (edges, counts, a
    curve's rows). Checked before anything is converted: at most ``most`` entries (a
    zero-stride view of billions is refused, never copied), real numbers (not complex, dates
    or text), no mask. Torch tensors are detached; a device tensor is copied to the host
    (a sync: these arguments are short).

    Raises:
        TypeError: not real numbers, a masked array, a nested or meta tensor.
        ValueError: more than ``most`` entries (``unit``, in the message); a number beyond
            float64.
    """
    if isinstance(values, np.ma.MaskedArray):
        numpy_backend.unmasked(values, argument, drop=False)  # raises
    check_tensor_kind(values, argument)
    device = type(values) not in _HOST_TYPES and _is_device(values)
    if device:
        backend = device_backend(values, argument)
        array = backend.adopt(values, argument)
    elif isinstance(values, (np.ndarray, list, tuple, np.generic, numbers.Number)):
        try:
            array = np.asarray(values)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(
                f"{argument} must be a sequence of numbers; {type(values).__name__} could not "
                f"be converted: {exc}"
            ) from None
    else:
        array = _host_array(values, argument)  # detached; checked numeric
    size = int(array.size)
    if size > most:
        raise ValueError(f"{argument} must be at most {most:,} {unit}, got {size:,}; pass fewer")
    if device:
        return np.asarray(backend.to_host(array).result(), np.float64)
    if array.dtype == object:  # Python ints beyond float64, or other objects
        try:
            return array.astype(np.float64)
        except OverflowError:
            raise ValueError(
                f"{argument} must be finite float64 numbers; one is too large"
            ) from None
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{argument} must hold real numbers: {exc}") from None
    return numpy_backend.numeric(array, argument).astype(np.float64)


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


def _device_backend_after_fork() -> None:
    """In a forked child, the device backend (if loaded) lets go of the parent's CUDA objects
    without touching them (registered once here: the backend module may be imported again)."""
    runtime = sys.modules.get("gpu_summary._backend.cuda.runtime")
    if runtime is not None:
        runtime.forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_device_backend_after_fork)
