"""gs_formats.cu's ABI: its instantiations, the thresholds it is given, its arguments and how
the counts copied back are read."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.cuda_kernels.layout import layout_args
from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES
from gpu_summary._core import formats as _formats

MAX_FORMATS = len(_formats.FORMATS)  # GS_MAX_FORMATS: threshold slots of a launch
# Storage types whose magnitudes the kernel compares as float32 bits (gs_fmt::magnitude);
# every other type as float64 bits.
FLOAT32_BITS = ("float16", "bfloat16", "float32")


def format_expression(dtype: str) -> str:
    """The template instantiation of gs_format_counts for a dtype name."""
    return f"gs_format_counts<{CUDA_TYPES[dtype]}>"


def magnitude_width(dtype: str) -> int:
    """Bits of the magnitudes (and thresholds) gs_format_counts compares for ``dtype``."""
    return 32 if dtype in FLOAT32_BITS else 64


def out_bytes(n_formats: int) -> int:
    """Bytes of the counts a launch adds to: overflow and underflow (u64) per format."""
    return 16 * n_formats


def format_args(
    data: int,
    n: int,
    shape: list[int],
    strides: list[int],
    dtype: str,
    formats: tuple[str, ...],
    out: int,
) -> tuple:
    """gs_format_counts' arguments, each a NumPy scalar of the parameter's exact width.

    Args:
        data, n, shape, strides: the tensor as ``layout_args`` takes it.
        dtype: its storage type's name (``CUDA_TYPES``).
        formats: 1 to ``MAX_FORMATS`` names of ``_core.formats.FORMATS``.
        out: device address of the ``out_bytes(len(formats))`` the counts are added to.
    """
    if not 1 <= len(formats) <= MAX_FORMATS:
        raise ValueError(f"gs_format_counts takes 1 to {MAX_FORMATS} formats, got {formats!r}")
    width = magnitude_width(dtype)
    table = _formats.thresholds(formats, width)
    spare = MAX_FORMATS - len(formats)  # slots the kernel ignores; never matching besides
    over = [*table[:, 0].tolist(), *[_formats.INFINITY_BITS[width]] * spare]
    under = [*table[:, 1].tolist(), *[0] * spare]
    return (
        *layout_args(data, n, shape, strides),
        np.int32(len(formats)),
        *map(np.uint64, over),
        *map(np.uint64, under),
        np.uint64(out),
    )


def parse(raw: np.ndarray, n_formats: int) -> np.ndarray:
    """int64 counts of shape (n_formats, 2) (overflow, underflow) from the ``out_bytes``
    copied back."""
    counts = raw[: out_bytes(n_formats)].view(np.uint64).astype(np.int64)
    return counts.reshape(n_formats, 2)
