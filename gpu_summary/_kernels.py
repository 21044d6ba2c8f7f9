"""The CUDA kernel sources: where they are, how they are compiled, which templates exist.

Kernels live in ``kernels/*.cu`` (shipped in the wheel as ``gpu_summary/kernels``). A module's
source is its ``.cu`` file with the shared header spliced in where it is included and the
ladder limits defined as exact hexadecimal doubles, so the text handed to NVRTC is complete:
CuPy's on-disk cache, keyed by source and options, is never stale after a header edit.

Nothing here imports CuPy; tests compile the same sources with NVRTC on machines with no GPU.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from gpu_summary import _ladder
from gpu_summary._backend._results import TensorStats

HEADER = "gs_common.cuh"
REDUCE_FILE = "gs_reduce.cu"
THUMBNAILS_FILE = "gs_thumbnails.cu"

# Options for every kernel module (NVRTC's dialect default differs between CUDA versions).
COMPILE_OPTIONS = ("--std=c++17",)

# The kernels' moments differ from the NumPy backend's by summation order only: for n finite
# values, |sum_gpu - sum_numpy| <= MOMENT_RTOL * sum(|x|) (and likewise for sum_squares) up to
# n = 2**31; min, max and every count are equal exactly.
MOMENT_RTOL = 1e-12

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
    header = header.replace("#pragma once\n", "", 1)  # spliced once, into this module only
    prologue = f"#define GS_LADDER_VALUES {_ladder_values()}\n"
    return prologue + body.replace(include, header, 1)


STATS_WORDS = 8  # u64 count, nan, posinf, neginf; double min, max, sum, sum_squares


@dataclasses.dataclass(frozen=True)
class ReduceBuffer:
    """Byte offsets of one reduction's device buffer, as gs_reduce reads and writes it::

        [counts u64 x n_buckets | stats u64 x 8 | blocks_done u32, padded to 8 bytes |
         block partials u64 x 8 x grid | caller limits f64 x n_limits]

    The first ``zero_bytes`` must be zero before the first launch; the first ``result_bytes``
    (counts and stats) are what is copied back to the host.
    """

    n_buckets: int
    grid: int
    n_limits: int = 0

    @property
    def stats(self) -> int:
        return 8 * self.n_buckets

    @property
    def blocks_done(self) -> int:
        return self.stats + 8 * STATS_WORDS

    @property
    def result_bytes(self) -> int:
        return self.blocks_done

    @property
    def zero_bytes(self) -> int:
        return self.blocks_done + 8

    @property
    def block_stats(self) -> int:
        return self.zero_bytes

    @property
    def limits(self) -> int:
        return self.block_stats + 8 * STATS_WORDS * self.grid

    @property
    def total_bytes(self) -> int:
        return self.limits + 8 * self.n_limits


SHARED_EDGES = 2048  # caller limits (and their counts) kept in shared memory up to this many
SHARED_EVEN_BINS = 8192  # even-bin counts kept in shared memory up to this many


def in_shared_memory(mode: int, n_limits: int = 0, bins: int = 0) -> bool:
    """Whether a gs_reduce launch keeps its counts (and limits) in shared memory."""
    if mode == LADDER:
        return True
    if mode == EDGES:
        return n_limits <= SHARED_EDGES
    if mode == EVEN:
        return bins <= SHARED_EVEN_BINS
    return False


def reduce_shared_bytes(mode: int, n_limits: int = 0, bins: int = 0) -> int:
    """Dynamic shared memory of a gs_reduce launch: limits as double, then uint32 counts."""
    if not in_shared_memory(mode, n_limits, bins):
        return 0
    if mode == LADDER:
        return _ladder.N_LIMITS * 12
    if mode == EDGES:
        return n_limits * 12
    return bins * 4


def reduce_args(
    buffer: ReduceBuffer,
    base: int,
    mode: int,
    data: int,
    n: int,
    shape: list[int],
    strides: list[int],
    *,
    limits: int = 0,
    n_limits: int = 0,
    bins: int = 0,
) -> tuple:
    """gs_reduce's arguments, each a NumPy scalar of the parameter's exact width.

    Args:
        buffer: the layout of the result buffer at device address ``base``.
        mode: STATS, LADDER, EDGES or EVEN.
        data: device address of the lowest element; ``n`` elements in the collapsed layout
            ``shape``/``strides`` (``_backend/_layout.py``; at most MAX_DIMS dimensions).
        limits: device address of ``n_limits`` caller limits (EDGES mode).
        bins: even buckets (EVEN mode).
    """
    dims = len(shape)
    padded_shape = [*shape, *[1] * (MAX_DIMS - dims)]
    padded_strides = [*strides, *[0] * (MAX_DIMS - dims)]
    shared = in_shared_memory(mode, n_limits, bins)
    return (
        np.uint64(data),
        np.int64(n),
        np.int32(dims),
        *map(np.int64, padded_shape[1:]),
        *map(np.int64, padded_strides),
        np.uint64(limits),
        np.int32(n_limits),
        np.int32(shared and mode == EDGES),  # shared_limits
        np.int32(shared),  # shared_counts
        np.int32(bins),
        np.uint64(base),
        np.uint64(base + buffer.stats),
        np.uint64(base + buffer.block_stats),
        np.uint64(base + buffer.blocks_done),
    )


def parse_stats(raw: np.ndarray) -> TensorStats:
    """TensorStats from the 64 stats bytes gs_reduce writes."""
    words = raw.view(np.uint64)
    doubles = raw.view(np.float64)
    count = int(words[0])
    return TensorStats(
        count=count,
        min=float(doubles[4]) if count else 0.0,
        max=float(doubles[5]) if count else 0.0,
        sum=float(doubles[6]),
        sum_squares=float(doubles[7]),
        nan=int(words[1]),
        posinf=int(words[2]),
        neginf=int(words[3]),
    )


def parse_result(raw: np.ndarray, n_buckets: int) -> tuple[np.ndarray, TensorStats]:
    """(int64 counts, stats) from the ``result_bytes`` copied back from a ReduceBuffer."""
    counts = raw[: 8 * n_buckets].view(np.uint64).astype(np.int64)
    return counts, parse_stats(raw[8 * n_buckets : 8 * n_buckets + 8 * STATS_WORDS])


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
