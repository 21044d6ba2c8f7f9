"""The CUDA kernel sources: where they are, how they are compiled, which templates exist.

Kernels live in ``kernels/*.cu`` (shipped in the wheel as ``gpu_summary/kernels``). A module's
source is its ``.cu`` file with the shared header spliced in where it is included and the
ladder limits defined as exact hexadecimal doubles, so the text handed to NVRTC is complete:
CuPy's on-disk cache, keyed by source and options, is never stale after a header edit.

Nothing here imports CuPy; tests compile the same sources with NVRTC on machines with no GPU.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from gpu_summary import _ladder

HEADER = "gs_common.cuh"
REDUCE_FILE = "gs_reduce.cu"
THUMBNAILS_FILE = "gs_thumbnails.cu"

# Options for every kernel module (NVRTC's dialect default differs between CUDA versions).
COMPILE_OPTIONS = ("--std=c++17",)

# Threads per block of every kernel (GS_THREADS in the sources).
THREADS = 256

# Storage types, by the dtype name the device backend reports.
CUDA_TYPES = {
    "bool": "bool",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "float16": "gs::half16",
    "bfloat16": "gs::bfloat16",
    "float32": "float",
    "float64": "double",
}
IMAGE_DTYPES = ("bool", "uint8", "float16", "bfloat16", "float32", "float64")

# Dimensions a kernel indexes (gs::MAX_DIMS).
MAX_DIMS = 6

# gs_reduce's MODE template argument.
STATS, LADDER, EDGES, EVEN = 0, 1, 2, 3


def reduce_expression(dtype: str, mode: int) -> str:
    """The template instantiation of gs_reduce for a dtype name and mode."""
    return f"gs_reduce<{CUDA_TYPES[dtype]}, {mode}>"


def thumbnails_expression(dtype: str) -> str:
    """The template instantiation of gs_thumbnails for an image dtype name."""
    return f"gs_thumbnails<{CUDA_TYPES[dtype]}>"


def name_expressions(filename: str) -> list[str]:
    """Every instantiation the backend may ask a module for."""
    if filename == REDUCE_FILE:
        modes = (STATS, LADDER, EDGES, EVEN)
        return [reduce_expression(t, m) for t in CUDA_TYPES for m in modes]
    if filename == THUMBNAILS_FILE:
        return [thumbnails_expression(t) for t in IMAGE_DTYPES]
    raise ValueError(f"unknown kernel file {filename!r}")


def kernel_dir() -> Path:
    """The folder of the .cu sources: inside the installed package, or the source tree's."""
    packaged = Path(__file__).with_name("kernels")
    if (packaged / HEADER).is_file():
        return packaged
    return Path(__file__).resolve().parent.parent / "kernels"


def _ladder_values() -> str:
    return ", ".join(float(v).hex() for v in _ladder.LIMITS)


@functools.cache
def kernel_source(filename: str) -> str:
    """The complete source of one kernel module, ready for NVRTC."""
    folder = kernel_dir()
    header = (folder / HEADER).read_text(encoding="utf-8")
    body = (folder / filename).read_text(encoding="utf-8")
    include = f'#include "{HEADER}"'
    if include not in body:
        raise ValueError(f"{filename} must include {HEADER}")
    prologue = f"#define GS_LADDER_VALUES {_ladder_values()}\n"
    return prologue + body.replace(include, header, 1)


def reduce_args(
    data: int,
    n: int,
    shape: list[int],
    strides: list[int],
    limits: int,
    n_limits: int,
    shared_limits: bool,
    shared_counts: bool,
    bins: int,
    counts: int,
    stats: int,
    block_stats: int,
    blocks_done: int,
) -> tuple:
    """gs_reduce's arguments, each a NumPy scalar of the parameter's exact width.

    ``shape``/``strides`` are a collapsed layout (``_backend/_layout.py``, at most MAX_DIMS
    dimensions); pointers are device addresses as ints.
    """
    dims = len(shape)
    padded_shape = [*shape, *[1] * (MAX_DIMS - dims)]
    padded_strides = [*strides, *[0] * (MAX_DIMS - dims)]
    return (
        np.uint64(data),
        np.int64(n),
        np.int32(dims),
        *map(np.int64, padded_shape[1:]),
        *map(np.int64, padded_strides),
        np.uint64(limits),
        np.int32(n_limits),
        np.int32(shared_limits),
        np.int32(shared_counts),
        np.int32(bins),
        np.uint64(counts),
        np.uint64(stats),
        np.uint64(block_stats),
        np.uint64(blocks_done),
    )


def thumbnails_args(
    src: int,
    shape: tuple[int, int, int, int],
    strides: tuple[int, int, int, int],
    out_h: int,
    out_w: int,
    out: int,
) -> tuple:
    """gs_thumbnails' arguments: NHWC ``shape``, element ``strides``, output size and buffer."""
    return (
        np.uint64(src),
        *map(np.int64, shape),
        *map(np.int64, strides),
        np.int64(out_h),
        np.int64(out_w),
        np.uint64(out),
    )
