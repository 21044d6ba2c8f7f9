"""Host data as the NumPy backend takes it: numeric arrays (narrow floats widened), walked in
cache-sized chunks; copies to the host; the Projector's matrix and its principal components."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np

from gpu_summary._backend.pca import principal_components
from gpu_summary._core.results import (
    Pending,
    Ready,
)

CHUNK = 1 << 15  # 32K values: measured fastest (temporaries stay in L2)


def flat_chunks(values: np.ndarray) -> Iterator[np.ndarray]:
    """1-D pieces of ``values`` covering every element once, in no particular order."""
    if values.ndim == 0:
        yield values.reshape(1)
        return
    if values.flags.c_contiguous or values.flags.f_contiguous:
        flat = values.ravel(order="K")  # a view for either memory order
        for start in range(0, flat.size, CHUNK):
            yield flat[start : start + CHUNK]
        return
    # Strided: copy slabs of the leading axis, about CHUNK elements at a time.
    inner = max(1, values[0].size) if values.shape[0] else 1
    step = max(1, CHUNK // inner)
    for start in range(0, values.shape[0], step):
        yield values[start : start + step].reshape(-1)


def c_order_chunks(values: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(flat C-order index of the first element, 1-D piece) covering ``values`` in C order."""
    if values.ndim == 0 or values.flags.c_contiguous:
        flat = values.reshape(-1)
        for start in range(0, flat.size, CHUNK):
            yield start, flat[start : start + CHUNK]
        return
    inner = max(1, values[0].size) if values.shape[0] else 1
    step = max(1, CHUNK // inner)
    for start in range(0, values.shape[0], step):
        yield start * inner, values[start : start + step].reshape(-1)


def quiet_overflow(reduction: Callable) -> Callable:
    """Run a reduction with float overflow warnings off: sums beyond DBL_MAX are ±inf (or NaN),
    which is the right answer, not a reason to warn the user."""

    @functools.wraps(reduction)
    def quiet(*args: object, **kwargs: object) -> object:
        with np.errstate(over="ignore", invalid="ignore"):
            return reduction(*args, **kwargs)

    return quiet


def as_float(chunk: np.ndarray) -> np.ndarray:
    """A chunk as native-order float32 (where that is exact: float16, bool, 8/16-bit ints) or
    float64 (everything else; int64 beyond 2**53 rounds to the nearest double)."""
    if chunk.dtype in (np.float32, np.float64):  # native order only: '>f4' != float32
        return chunk
    if chunk.dtype.kind == "b" or chunk.dtype.itemsize <= 2:
        return chunk.astype(np.float32)
    return chunk.astype(np.float64)


NARROW_FLOATS = ("bfloat16", "float8_", "float6_", "float4_")


def is_narrow_float(dtype_name: str) -> bool:
    """Whether a dtype name (``bfloat16``, ``torch.float8_e4m3fn``, ...) is a narrow float."""
    return dtype_name.rpartition(".")[2].startswith(NARROW_FLOATS)


# The native dtypes every kernel reads as they are (numeric's answer without its checks).
_READY = frozenset(
    np.dtype(t)
    for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64,
              np.uint64, np.float16, np.float32, np.float64)
)  # fmt: skip


def numeric(values: np.ndarray, argument: str) -> np.ndarray:
    """``values``, narrow floats widened to float32; TypeError unless the data is numeric."""
    if values.dtype in _READY:
        return values
    if is_narrow_float(values.dtype.name):
        check_copy(4 * values.size, values.shape, values.strides, values.itemsize, argument,
                   "widening it to float32")  # fmt: skip
        values = values.astype(np.float32)
    check_numeric(values, argument)
    return values


def widened(tensor: object, argument: str) -> object:
    """A torch tensor of a float type no kernel reads (bfloat16 on the host, 8/6/4-bit
    floats) as float32: an exact copy, refused for a zero-stride view whose copy would be
    huge, and for types torch cannot widen (``float4_e2m1fn_x2``: two packed values a
    byte)."""
    shape = tuple(tensor.shape)
    strides = tuple(s * tensor.element_size() for s in tensor.stride())
    check_copy(4 * tensor.numel(), shape, strides, tensor.element_size(),
               argument, "widening it to float32")  # fmt: skip
    try:
        return tensor.float()
    except (NotImplementedError, RuntimeError) as exc:
        raise TypeError(
            f"{argument} has dtype {tensor.dtype}, which torch cannot widen to float32 ({exc}); "
            "unpack or convert it to a float type first"
        ) from None


def unmasked(values: np.ma.MaskedArray, argument: str, drop: bool) -> np.ndarray:
    """The data of a masked array (``numpy.ma``) for a call that must not log its masked
    entries as data: with ``drop`` (histograms), its unmasked values — the data itself when
    nothing is masked, else a 1-D copy of the unmasked ones; without, a TypeError (an image,
    a clip, a point or a scalar has no place for a hole)."""
    if not drop:
        raise TypeError(
            f"{argument} is a masked array (numpy.ma), whose masked entries would be logged as "
            f"data; fill them first, e.g. {argument}.filled(0), or pass {argument}.data to log "
            "every entry as it is"
        )
    mask = np.ma.getmask(values)
    if mask is np.ma.nomask or not mask.any():
        return values.data
    return values.compressed()


# A working copy at most this large is made of any input; beyond it, only of an input whose
# elements occupy at least an eighth of it (a float64 copy of bool data is 8 times its size).
COPY_ALLOWANCE = 256 << 20


def memory_extent(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> int:
    """Bytes of memory an array's elements span (strides in bytes): its size in bytes for a
    contiguous array, a few bytes for a view with zero strides."""
    if 0 in shape:
        return 0
    return itemsize + sum((n - 1) * abs(s) for n, s in zip(shape, strides, strict=True))


def check_copy(
    nbytes: int, shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int,
    argument: str, purpose: str,
) -> None:  # fmt: skip
    """Raise ValueError before making an ``nbytes`` working copy of an array (``shape``,
    ``strides`` in bytes) when the copy would be over ``COPY_ALLOWANCE`` and over 8 times the
    memory its elements occupy: a view with zero strides (``numpy.broadcast_to``,
    ``Tensor.expand``) names billions of values over a few bytes, and a copy of them would
    exhaust the machine."""
    if nbytes <= COPY_ALLOWANCE:
        return
    extent = memory_extent(tuple(shape), tuple(strides), itemsize)
    if nbytes <= 8 * extent:
        return
    size = int(np.prod(shape, dtype=object))
    raise ValueError(
        f"{argument} is a view of {size:,} values over {extent:,} bytes of memory (zero "
        f"strides, as numpy.broadcast_to or Tensor.expand make); {purpose} would take "
        f"{nbytes / 2**30:.1f} GiB; pass a smaller view, or a real array "
        "(numpy.ascontiguousarray) if the memory is there"
    )


def check_numeric(values: np.ndarray, argument: str) -> None:
    """Raise TypeError unless ``values`` holds bool, integer or real floating-point data."""
    kind = values.dtype.kind
    if kind not in "biuf":
        fix = {
            "c": "log its .real, .imag or abs() instead",
            "M": "convert the dates to numbers first, e.g. .astype('datetime64[s]').astype(int)",
            "m": "convert the durations to numbers first, e.g. / np.timedelta64(1, 's')",
        }.get(kind, "convert it (for example with .astype(float)) before logging")
        raise TypeError(
            f"{argument} must hold bool, integer or floating-point numbers, got dtype "
            f"{values.dtype}; {fix}"
        )


def as_array(values: object, argument: str) -> np.ndarray:
    """``values`` (array, number, list) as a NumPy array without copying where possible."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:
        raise TypeError(
            f"{argument} must be an array, a number or a list of numbers; "
            f"{type(values).__name__} could not be converted: {exc}"
        ) from None
    return numeric(array, argument)


def to_host(values: np.ndarray) -> Pending[np.ndarray]:
    """A copy of ``values`` on the host (the caller may change its array afterwards)."""
    return Ready(np.array(values, copy=True))


def embedding(matrix: np.ndarray, components: int | None) -> Pending[np.ndarray]:
    """An N×D matrix (N×d1×... flattened per row) as float32 for the Projector, or its N×k
    principal-component projection (``gpu_summary._backend.pca``, in
    float64) when ``components`` is set.

    Raises:
        ValueError: ``components`` is set and the matrix holds NaN or ±Inf.
    """
    matrix = matrix.reshape(len(matrix), -1)
    if components is None:
        return Ready(np.array(matrix, dtype=np.float32, copy=True))
    x = matrix.astype(np.float64)
    if not np.isfinite(x).all():
        raise ValueError(
            "mat holds NaN or ±Inf, which principal components cannot place; log it without "
            "reduce='pca', or check it first with add_anomaly"
        )
    return Ready(principal_components(np, x, components))


def snapshot(values: np.ndarray) -> np.ndarray:
    """A private copy of ``values`` that later reductions may read after the caller changed
    its array (distributed ``bins=n`` counts once the global range is known)."""
    return np.array(values, copy=True)
