"""gs_anomaly.cu's ABI: its kernels, the layout of an anomaly report's device buffer, each
kernel's arguments, and the order keys its selection passes work on."""

from __future__ import annotations

import dataclasses

import numpy as np

from gpu_summary._backend.cuda_kernels.reduce import STATS_WORDS
from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES, THREADS
from gpu_summary._core import ladder as _ladder

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
