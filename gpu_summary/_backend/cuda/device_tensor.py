"""Device tensors from any library as zero-copy CuPy views, each with the stream to work on.

One adapter per kind of producer, chosen from the object's type (``sys.modules``, never an
import): CuPy arrays, PyTorch tensors, any ``__dlpack__`` exporter (JAX, ...) and any
``__cuda_array_interface__`` exporter (Numba, OneFlow, ...). Each returns a
:class:`DeviceArray`: the data as a CuPy array that shares the producer's memory, and the
stream on which the producer's pending writes to it are ordered, so that the device backend's
kernels launch on that stream and never wait on the host.

An object that offers both protocols is taken through DLPack, which orders the producer's
writes before the consumer's stream; the array interface does so only when it names a stream
(version 3's ``stream`` entry), and XLA's names none. A stream that is capturing a CUDA graph
is refused before anything is queued (``capture.refuse_capturing``).

Imported only when device data arrives (it imports CuPy).
"""

from __future__ import annotations

import sys

import cupy
import numpy as np

from gpu_summary._backend.cuda import capture
from gpu_summary._backend.numpy.arrays import widened


class BFloat16:
    """The dtype of a bfloat16 tensor (NumPy has none); its data is viewed as uint16."""

    kind = "f"
    itemsize = 2
    name = "bfloat16"
    char = "E"

    def __repr__(self) -> str:
        return "dtype('bfloat16')"

    __str__ = __repr__


BFLOAT16 = BFloat16()


class DeviceArray:
    """A device tensor: a CuPy view of its memory and the stream that orders its use.

    Supports what the writer does to validate and reshape an argument (shape, ndim, size,
    dtype, indexing, transpose); the view and the original tensor share memory.
    """

    __slots__ = ("array", "dtype", "owner", "stream")

    def __init__(self, array: cupy.ndarray, stream: object, dtype: object, owner: object) -> None:
        self.array = array  # bfloat16 data is a uint16 view
        self.stream = stream  # a cupy Stream (possibly of another library's stream)
        self.dtype = dtype  # np.dtype, or BFLOAT16
        self.owner = owner  # the producer's object, kept alive while the view is used

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def strides(self) -> tuple[int, ...]:
        """Strides in bytes (of the stored form: a bfloat16 tensor's uint16 view)."""
        return self.array.strides

    @property
    def size(self) -> int:
        return self.array.size

    @property
    def device_id(self) -> int:
        return self.array.device.id

    @property
    def dtype_name(self) -> str:
        """The dtype's name as the kernels know it (``kernel_sources.CUDA_TYPES``)."""
        return self.dtype.name if isinstance(self.dtype, BFloat16) else np.dtype(self.dtype).name

    def _view(self, array: cupy.ndarray) -> DeviceArray:
        return DeviceArray(array, self.stream, self.dtype, self.owner)

    def __getitem__(self, key: object) -> DeviceArray:
        return self._view(self.array[key])

    def transpose(self, axes: list[int]) -> DeviceArray:
        return self._view(self.array.transpose(axes))

    def reshape(self, *shape: int) -> DeviceArray:
        return self._view(self.array.reshape(*shape))


class _StreamHandle:
    """A raw ``cudaStream_t`` behind the CUDA stream protocol (``__cuda_stream__``)."""

    __slots__ = ("_pointer",)

    def __init__(self, pointer: int) -> None:
        self._pointer = pointer

    def __cuda_stream__(self) -> tuple[int, int]:
        return (0, self._pointer)


def external_stream(pointer: int, device: int) -> object:
    """A CuPy stream object for a stream another library created on ``device``.

    CuPy 14 deprecates ``ExternalStream`` (it warns on every construction) for
    ``Stream.from_external``, which CuPy 13 lacks: the first that exists is used.
    """
    from_external = getattr(cupy.cuda.Stream, "from_external", None)
    if from_external is None:
        return cupy.cuda.ExternalStream(pointer, device)
    with cupy.cuda.Device(device):
        return from_external(_StreamHandle(pointer))


def _from_cupy(array: cupy.ndarray) -> DeviceArray:
    return DeviceArray(array, cupy.cuda.get_current_stream(array.device.id), array.dtype, array)


class _OnItsOwnStream:
    """A CUDA torch tensor exported through DLPack with no stream handshake (``stream=-1``).

    Our kernels run on the tensor's current stream, so there is nothing to order. Letting
    CuPy pass its current stream instead fails under ``CUPY_CUDA_PER_THREAD_DEFAULT_STREAM=1``
    with torch on its default stream: CuPy passes 2, which torch refuses ("per-thread default
    stream is not supported").
    """

    __slots__ = ("_tensor",)

    def __init__(self, tensor: object) -> None:
        self._tensor = tensor

    def __dlpack__(self, stream: object = None, **options: object) -> object:
        return self._tensor.__dlpack__(stream=-1, **options)

    def __dlpack_device__(self) -> tuple:
        return self._tensor.__dlpack_device__()


def _from_torch(tensor: object, argument: str, in_capture: bool = False) -> DeviceArray:
    """``in_capture``: a capturing stream is accepted (a probe: only a kernel launch follows),
    8-bit floats then refused (their float32 copy would be an allocation in the graph)."""
    torch = sys.modules["torch"]
    tensor = tensor.detach()
    device = tensor.device.index
    torch_stream = torch.cuda.current_stream(tensor.device)
    stream = external_stream(torch_stream.cuda_stream, device)
    narrow = str(tensor.dtype).startswith(("torch.float8_", "torch.float6_", "torch.float4_"))
    if not in_capture or narrow:
        capture.refuse_capturing(stream, argument)  # before anything is queued on it
    dtype = None
    if narrow:
        # No kernel reads 8-bit floats: an exact float32 copy, made on the tensor's stream.
        tensor = widened(tensor, argument)
    if tensor.dtype == torch.bfloat16:  # CuPy has no bfloat16: read the same memory as uint16
        dtype, storage, tensor = BFLOAT16, cupy.uint16, tensor.view(torch.int16)
    elif tensor.dtype == torch.bool:  # not every DLPack version carries bool
        dtype, storage, tensor = np.dtype(np.bool_), cupy.bool_, tensor.view(torch.uint8)
    if tensor.is_conj() or tensor.is_neg():
        tensor = tensor.resolve_conj().resolve_neg()
    with cupy.cuda.Device(device), stream:
        array = cupy.from_dlpack(_OnItsOwnStream(tensor))
    if dtype is None:
        dtype = array.dtype
    else:
        array = array.view(storage)
    return DeviceArray(array, stream, dtype, tensor)


def _stream_of_interface(stream: object, device: int) -> object:
    """The stream named by a __cuda_array_interface__ v3 ``stream`` entry."""
    if stream is None:  # the producer needs no ordering
        with cupy.cuda.Device(device):
            return cupy.cuda.get_current_stream()
    if stream == 1:
        return cupy.cuda.Stream.null
    if stream == 2:
        return cupy.cuda.Stream.ptds
    return external_stream(int(stream), device)


def _from_array_interface(obj: object, argument: str) -> DeviceArray:
    interface = obj.__cuda_array_interface__
    if interface.get("mask") is not None:
        raise TypeError(f"{argument} is a masked CUDA array; fill or drop the masked values first")
    dtype = np.dtype(interface["typestr"])
    shape = tuple(int(s) for s in interface["shape"])
    pointer = int(interface["data"][0])
    strides = interface.get("strides")
    if strides is None:
        strides = tuple(np.cumprod((1, *shape[:0:-1]))[::-1] * dtype.itemsize) if shape else ()
    strides = tuple(int(s) for s in strides)
    # The memory spanned, from its lowest to its highest byte.
    low = sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s < 0 and n)
    high = sum((n - 1) * s for n, s in zip(shape, strides, strict=True) if s > 0 and n)
    extent = 0 if 0 in shape else high - low + dtype.itemsize
    device = (
        cupy.cuda.runtime.pointerGetAttributes(pointer).device
        if pointer
        else cupy.cuda.runtime.getDevice()
    )
    memory = cupy.cuda.UnownedMemory(pointer + low, extent, obj, device)
    array = cupy.ndarray(shape, dtype, cupy.cuda.MemoryPointer(memory, -low), strides)
    return DeviceArray(array, _stream_of_interface(interface.get("stream"), device), dtype, obj)


def _from_dlpack(obj: object, argument: str) -> DeviceArray:
    # CuPy passes its current stream to __dlpack__; the producer orders its writes before it
    # (on the device, without a host wait), and our kernels run on that stream. A capturing
    # stream is refused first: the producer's wait would be recorded into the user's graph.
    try:
        device = int(obj.__dlpack_device__()[1])
    except Exception:  # noqa: BLE001 - CuPy's from_dlpack says what is wrong with it
        device = cupy.cuda.runtime.getDevice()
    with cupy.cuda.Device(device):
        capture.refuse_capturing(cupy.cuda.get_current_stream(), argument)
    array = cupy.from_dlpack(obj)
    return DeviceArray(array, cupy.cuda.get_current_stream(array.device.id), array.dtype, obj)


def adopt_for_probe(tensor: object, argument: str) -> DeviceArray:
    """A CUDA torch tensor wrapped as :func:`adopt` does, also while its stream captures a
    CUDA graph (a probe queues one kernel launch and nothing else); 8-bit floats are refused
    there (RuntimeError), as :func:`adopt` refuses every capture."""
    wrapped = _from_torch(tensor, argument, in_capture=True)
    if not isinstance(wrapped.dtype, BFloat16) and np.dtype(wrapped.dtype).kind not in "biuf":
        raise TypeError(
            f"{argument} must hold bool, integer or floating-point numbers, got dtype "
            f"{wrapped.dtype}; convert it (for example with .float()) before logging"
        )
    return wrapped


def adopt(obj: object, argument: str) -> DeviceArray:
    """Wrap a device tensor without copying it or synchronising.

    Args:
        obj: a CuPy array, a CUDA PyTorch tensor, or any object with
            ``__cuda_array_interface__`` or a CUDA ``__dlpack__``.
        argument: the caller's parameter name, for error messages.

    Raises:
        TypeError: the tensor's dtype is not bool, integer or real floating point.
        RuntimeError: its stream is capturing a CUDA graph.
    """
    if type(obj).__module__.split(".")[0] == "torch" and "torch" in sys.modules:
        wrapped = _from_torch(obj, argument)  # its stream asked before the export
    elif not isinstance(obj, (DeviceArray, cupy.ndarray)) and (
        hasattr(obj, "__dlpack__") or not hasattr(obj, "__cuda_array_interface__")
    ):
        wrapped = _from_dlpack(obj, argument)  # its stream asked before the export
    else:
        if isinstance(obj, DeviceArray):
            wrapped = obj
        elif isinstance(obj, cupy.ndarray):
            wrapped = _from_cupy(obj)
        else:
            wrapped = _from_array_interface(obj, argument)
        capture.refuse_capturing(wrapped.stream, argument)  # nothing queued by the wrapping
    if not isinstance(wrapped.dtype, BFloat16) and np.dtype(wrapped.dtype).kind not in "biuf":
        raise TypeError(
            f"{argument} must hold bool, integer or floating-point numbers, got dtype "
            f"{wrapped.dtype}; convert it (for example with .float()) before logging"
        )
    return wrapped
