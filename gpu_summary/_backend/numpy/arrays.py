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


def numeric(values: np.ndarray, argument: str) -> np.ndarray:
    """``values``, narrow floats widened to float32; TypeError unless the data is numeric."""
    if is_narrow_float(values.dtype.name):
        values = values.astype(np.float32)
    check_numeric(values, argument)
    return values


def check_numeric(values: np.ndarray, argument: str) -> None:
    """Raise TypeError unless ``values`` holds bool, integer or real floating-point data."""
    if values.dtype.kind not in "biuf":
        raise TypeError(
            f"{argument} must hold bool, integer or floating-point numbers, got dtype "
            f"{values.dtype}; convert it (for example with .astype(float)) before logging"
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
