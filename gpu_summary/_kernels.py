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
ANOMALY_FILE = "gs_anomaly.cu"

# Options for every kernel module (NVRTC's dialect default differs between CUDA versions).
# CuPy's RawModule appends -ftz=true, the architecture and --device-as-default-execution-
# space; the kernels are written to be exact under -ftz=true (tests/test_cupy_path.py).
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

STATS_WORDS = 8  # u64 count, nan, posinf, neginf; double min, max, sum, sum_squares

# Dimensions a kernel indexes (gs::MAX_DIMS).
MAX_DIMS = 6

# gs_reduce's MODE template argument.
STATS, LADDER, EDGES, EVEN = 0, 1, 2, 3


def reduce_expression(dtype: str, mode: int) -> str:
    """The template instantiation of gs_reduce for a dtype name and mode."""
    return f"gs_reduce<{CUDA_TYPES[dtype]}, {mode}>"


def multi_expression(dtype: str) -> str:
    """The template instantiation of gs_multi_ladder for a dtype name."""
    return f"gs_multi_ladder<{CUDA_TYPES[dtype]}>"


def thumbnails_expression(dtype: str) -> str:
    """The template instantiation of gs_thumbnails for an image dtype name."""
    return f"gs_thumbnails<{CUDA_TYPES[dtype]}>"


# gs_anomaly.cu: kernels templated on the storage type, and the others.
ANOMALY_KERNELS = ("gs_anomaly_scan", "gs_anomaly_collect", "gs_heatmap", "gs_select_count")
ANOMALY_PLAIN_KERNELS = ("gs_anomaly_offsets", "gs_select_step")
TILE = THREADS * 4  # GS_TILE: consecutive flat indices per tile of gs_anomaly_scan
MAX_TARGETS = 32  # GS_MAX_TARGETS: order statistics one selection finds (2 per quantile)
RADIX = 256
SELECT_WORDS = 5 * MAX_TARGETS + 2 + MAX_TARGETS * RADIX  # GS_SELECT_WORDS


def anomaly_expression(kernel: str, dtype: str) -> str:
    """The template instantiation of one of gs_anomaly.cu's templated kernels."""
    return f"{kernel}<{CUDA_TYPES[dtype]}>"


def order_key_bits(dtype: str) -> int:
    """Bits of the order keys of a dtype (gs::order_key_bits): 64 for 8-byte types."""
    return 64 if dtype in ("int64", "uint64", "float64") else 32


def order_key_values(keys: np.ndarray, dtype: str) -> np.ndarray:
    """float64 values of the order keys ``keys`` (uint64) of a dtype (gs::order_key)."""
    keys = np.asarray(keys, dtype=np.uint64)
    if dtype in ("float16", "bfloat16", "float32"):
        bits = keys.astype(np.uint32)
        bits = np.where(bits & np.uint32(0x80000000), bits ^ np.uint32(0x80000000), ~bits)
        return bits.astype(np.uint32).view(np.float32).astype(np.float64)
    if dtype == "float64":
        top = np.uint64(1 << 63)
        bits = np.where(keys & top, keys ^ top, ~keys)
        return bits.astype(np.uint64).view(np.float64)
    if dtype == "int64":
        return (keys ^ np.uint64(1 << 63)).view(np.int64).astype(np.float64)
    if dtype in ("int8", "int16", "int32"):
        return (keys.astype(np.uint32) ^ np.uint32(1 << 31)).view(np.int32).astype(np.float64)
    return keys.astype(np.float64)


@dataclasses.dataclass(frozen=True)
class AnomalyBuffer:
    """Byte offsets of one anomaly reduction's device buffer (zeroed before the launches)::

        [below, above u64 | stats u64 x 8 | keys u64 x MAX_TARGETS |
         positions i64 x max_positions | values f64 x max_positions |
         heat sum f64 x cells | heat count u64 x cells | heat non-finite u64 x cells |
         ladder counts u64 x LADDER (copied from the stats pass's ladder histogram) |
         -- scratch: selection state u64 x SELECT_WORDS | quantiles f64 x MAX_TARGETS / 2 |
         tile offsets u64 x tiles | tile counts u32 x tiles]

    The first ``result_bytes`` are copied back to the host.
    """

    max_positions: int
    cells: int
    tiles: int

    stats = 16
    keys = stats + 8 * STATS_WORDS

    @property
    def positions(self) -> int:
        return self.keys + 8 * MAX_TARGETS

    @property
    def values(self) -> int:
        return self.positions + 8 * self.max_positions

    @property
    def heat_sum(self) -> int:
        return self.values + 8 * self.max_positions

    @property
    def heat_count(self) -> int:
        return self.heat_sum + 8 * self.cells

    @property
    def heat_nonfinite(self) -> int:
        return self.heat_count + 8 * self.cells

    @property
    def ladder(self) -> int:
        return self.heat_nonfinite + 8 * self.cells

    @property
    def result_bytes(self) -> int:
        return self.ladder + 8 * _ladder.N_LIMITS

    @property
    def select(self) -> int:
        return self.result_bytes

    @property
    def quantiles(self) -> int:
        return self.select + 8 * SELECT_WORDS

    @property
    def tile_offsets(self) -> int:
        return self.quantiles + 8 * (MAX_TARGETS // 2)

    @property
    def tile_counts(self) -> int:
        return self.tile_offsets + 8 * self.tiles

    @property
    def total_bytes(self) -> int:
        return self.tile_counts + 4 * self.tiles


def layout_args(data: int, n: int, shape: list[int], strides: list[int]) -> tuple:
    """The layout parameters shared by gs_anomaly.cu's kernels (GS_LAYOUT_PARAMS)."""
    dims = len(shape)
    padded_shape = [*shape, *[1] * (MAX_DIMS - dims)]
    padded_strides = [*strides, *[0] * (MAX_DIMS - dims)]
    return (
        np.uint64(data),
        np.int64(n),
        np.int32(dims),
        *map(np.int64, padded_shape[1:]),
        *map(np.int64, padded_strides),
    )


def anomaly_scan_args(
    layout: tuple, lower: float | None, upper: float | None, base: int, buffer: AnomalyBuffer
) -> tuple:
    """gs_anomaly_scan's arguments (``layout`` from :func:`layout_args`)."""
    return (
        *layout,
        *_bounds(lower, upper),
        np.uint64(base),  # counts: below, above
        np.uint64(base + buffer.tile_counts),
        np.int64(buffer.tiles),
    )


def anomaly_offsets_args(base: int, buffer: AnomalyBuffer) -> tuple:
    """gs_anomaly_offsets' arguments."""
    return (
        np.uint64(base + buffer.tile_counts),
        np.uint64(base + buffer.tile_offsets),
        np.int64(buffer.tiles),
    )


def anomaly_collect_args(
    layout: tuple, lower: float | None, upper: float | None, base: int, buffer: AnomalyBuffer
) -> tuple:
    """gs_anomaly_collect's arguments."""
    return (
        *layout,
        *_bounds(lower, upper),
        np.uint64(base + buffer.tile_counts),
        np.uint64(base + buffer.tile_offsets),
        np.int64(buffer.tiles),
        np.int64(buffer.max_positions),
        np.uint64(base + buffer.positions),
        np.uint64(base + buffer.values),
    )


def heatmap_args(
    layout: tuple, grid: tuple[int, int, int, int], base: int, buffer: AnomalyBuffer
) -> tuple:
    """gs_heatmap's arguments; ``grid`` is (rows, width, cell_rows, cell_columns)."""
    return (
        *layout,
        *map(np.int64, grid),
        np.uint64(base + buffer.heat_sum),
        np.uint64(base + buffer.heat_count),
        np.uint64(base + buffer.heat_nonfinite),
    )


def select_step_args(
    base: int, buffer: AnomalyBuffer, stats: int, n_quantiles: int, pass_: int, passes: int
) -> tuple:
    """gs_select_step's arguments; ``stats`` is the device address of gs_reduce's stats."""
    return (
        np.uint64(base + buffer.select),
        np.uint64(stats),
        np.uint64(base + buffer.quantiles),
        np.int32(n_quantiles),
        np.int32(pass_),
        np.int32(passes),
        np.uint64(base + buffer.keys),
    )


def select_count_args(layout: tuple, base: int, buffer: AnomalyBuffer, pass_: int) -> tuple:
    """gs_select_count's arguments."""
    return (*layout, np.uint64(base + buffer.select), np.int32(pass_))


def _bounds(lower: float | None, upper: float | None) -> tuple:
    return (
        np.float64(0.0 if lower is None else lower),
        np.float64(0.0 if upper is None else upper),
        np.int32(lower is not None),
        np.int32(upper is not None),
    )


def name_expressions(filename: str) -> list[str]:
    """Every instantiation the backend may ask a module for (all dtypes)."""
    names: list[str] = []
    for dtype in CUDA_TYPES:
        names += [e for e in module_expressions(filename, dtype) if e not in names]
    return names


def module_expressions(filename: str, dtype: str) -> list[str]:
    """The instantiations compiled together, in one NVRTC program, when the backend first
    needs a kernel of ``filename`` for storage type ``dtype`` (a dtype name of CUDA_TYPES):
    every kernel of the module for that dtype, and the module's untemplated kernels."""
    if filename == REDUCE_FILE:
        return [reduce_expression(dtype, m) for m in (STATS, LADDER, EDGES, EVEN)] + [
            multi_expression(dtype)
        ]
    if filename == THUMBNAILS_FILE:
        return [thumbnails_expression(dtype)] if dtype in IMAGE_DTYPES else []
    if filename == ANOMALY_FILE:
        return [*(anomaly_expression(name, dtype) for name in ANOMALY_KERNELS),
                *ANOMALY_PLAIN_KERNELS]  # fmt: skip
    raise ValueError(f"unknown kernel file {filename!r}")


def first_expressions(dtype: str) -> list[tuple[str, str]]:
    """(module, one instantiation) for each module a ``dtype`` may need: requesting these
    compiles everything :func:`module_expressions` lists for it."""
    return [
        (filename, expressions[0])
        for filename in (REDUCE_FILE, ANOMALY_FILE, THUMBNAILS_FILE)
        if (expressions := module_expressions(filename, dtype))
    ]


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
    shared = in_shared_memory(mode, n_limits, bins)
    return (
        *layout_args(data, n, shape, strides),
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


MULTI_CHUNK = 1 << 16  # GS_CHUNK: elements per chunk of gs_multi_ladder


@dataclasses.dataclass(frozen=True)
class MultiBuffer:
    """Byte offsets of one gs_multi_ladder launch's device buffer::

        [counts u64 x tensors x LADDER | stats u64 x 8 x tensors |
         -- chunks_done u32 x tensors, padded to 8 bytes | chunk stats u64 x 8 x chunks |
         table: pointers u64 x tensors | lengths i64 x tensors | strides i64 x tensors |
         first_chunk i64 x (tensors + 1)]

    The first ``zero_bytes`` must be zero before the launch; the first ``result_bytes`` are
    copied back; the table (``table_bytes`` from ``table``) is copied in from the host.
    """

    tensors: int
    chunks: int

    @property
    def stats(self) -> int:
        return 8 * self.tensors * _ladder.N_LIMITS

    @property
    def result_bytes(self) -> int:
        return self.stats + 8 * STATS_WORDS * self.tensors

    @property
    def chunks_done(self) -> int:
        return self.result_bytes

    @property
    def zero_bytes(self) -> int:
        return self.chunks_done + 8 * (-(-self.tensors // 2))

    @property
    def chunk_stats(self) -> int:
        return self.zero_bytes

    @property
    def table(self) -> int:
        return self.chunk_stats + 8 * STATS_WORDS * max(self.chunks, 1)

    @property
    def table_bytes(self) -> int:
        return 8 * (4 * self.tensors + 1)

    @property
    def total_bytes(self) -> int:
        return self.table + self.table_bytes


def multi_table(pointers: list[int], lengths: list[int], strides: list[int]) -> np.ndarray:
    """The table gs_multi_ladder reads (uint64 words): pointers, lengths, strides, and the
    first chunk of each tensor (with the total at the end)."""
    chunks = [-(-n // MULTI_CHUNK) for n in lengths]
    first = np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)])
    return np.concatenate(
        [
            np.asarray(pointers, dtype=np.uint64),
            np.asarray(lengths, dtype=np.int64).view(np.uint64),
            np.asarray(strides, dtype=np.int64).view(np.uint64),
            first.astype(np.int64).view(np.uint64),
        ]
    )


def multi_args(buffer: MultiBuffer, base: int) -> tuple:
    """gs_multi_ladder's arguments for a buffer at device address ``base``."""
    table = base + buffer.table
    n = buffer.tensors
    return (
        np.uint64(table),
        np.uint64(table + 8 * n),
        np.uint64(table + 16 * n),
        np.uint64(table + 24 * n),
        np.int32(n),
        np.uint64(base),
        np.uint64(base + buffer.stats),
        np.uint64(base + buffer.chunk_stats),
        np.uint64(base + buffer.chunks_done),
    )


def parse_multi(raw: np.ndarray, tensors: int) -> list[tuple[np.ndarray, TensorStats]]:
    """(int64 ladder counts, stats) of each tensor from a MultiBuffer's result bytes."""
    counts = raw[: 8 * tensors * _ladder.N_LIMITS].view(np.uint64).astype(np.int64)
    counts = counts.reshape(tensors, _ladder.N_LIMITS)
    base = 8 * tensors * _ladder.N_LIMITS
    words = 8 * STATS_WORDS
    return [
        (counts[t], parse_stats(raw[base + words * t : base + words * (t + 1)]))
        for t in range(tensors)
    ]
