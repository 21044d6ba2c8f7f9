"""gs_thumbnails.cu's ABI: its instantiations and arguments."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES


def thumbnails_expression(dtype: str) -> str:
    """The template instantiation of gs_thumbnails for an image dtype name."""
    return f"gs_thumbnails<{CUDA_TYPES[dtype]}>"


def thumbnails_args(
    src: int,
    shape: tuple[int, int, int, int],
    strides: tuple[int, int, int, int],
    out_h: int,
    out_w: int,
    out: int,
    truncate: bool = False,
) -> tuple:
    """gs_thumbnails' arguments: NHWC ``shape``, element ``strides``, output size and buffer,
    and the float conversion (``truncate``: torch's, else rounded half up)."""
    return (
        np.uint64(src),
        *map(np.int64, shape),
        *map(np.int64, strides),
        np.int64(out_h),
        np.int64(out_w),
        np.uint64(out),
        np.int32(bool(truncate)),
    )
