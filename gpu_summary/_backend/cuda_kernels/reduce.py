"""gs_reduce.cu's ABI: its instantiations, the layout of its result buffers, its arguments
and how the bytes copied back are read (``gs_reduce`` for one tensor, ``gs_multi_ladder`` for
many)."""

from __future__ import annotations

import dataclasses

import numpy as np

from gpu_summary._backend.cuda_kernels.layout import layout_args
from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout
from gpu_summary._core.results import TensorStats

STATS_WORDS = 8  # u64 count, nan, posinf, neginf; double min, max, sum, sum_squares

# gs_reduce's MODE template argument (PROBE: LADDER accumulated into a probe's accumulator).
STATS, LADDER, EDGES, EVEN, PROBE = 0, 1, 2, 3, 4


def reduce_expression(dtype: str, mode: int) -> str:
    """The template instantiation of gs_reduce for a dtype name and mode."""
    return f"gs_reduce<{CUDA_TYPES[dtype]}, {mode}>"


def multi_expression(dtype: str) -> str:
    """The template instantiation of gs_multi_ladder for a dtype name."""
    return f"gs_multi_ladder<{CUDA_TYPES[dtype]}>"


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
    if mode in (LADDER, PROBE):
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
    if mode in (LADDER, PROBE):
        return _ladder.N_LIMITS * 12
    if mode == EDGES:
        return n_limits * 12
    return bins * 4


@dataclasses.dataclass(frozen=True)
class WindowBuffer:
    """Byte offsets of one window's device buffer: the counts of every step added in place,
    each step's stats in a slot of its own (so nothing is zeroed or copied between steps)::

        [counts u64 x n_buckets | stats u64 x 8 x size | blocks_done u64 x size |
         block partials u64 x 8 x grid | caller limits f64 x n_limits]

    The first ``zero_bytes`` must be zero before the first step; ``result_bytes(slots)`` (the
    counts and the first ``slots`` stats) are what is copied back at the window's end. Steps
    run one after another (on one stream, or ordered across streams), so they share the
    block partials."""

    n_buckets: int
    size: int
    grid: int
    n_limits: int = 0

    @property
    def stats(self) -> int:
        return 8 * self.n_buckets

    def slot_stats(self, slot: int) -> int:
        return self.stats + 8 * STATS_WORDS * slot

    def slot_done(self, slot: int) -> int:
        return self.stats + 8 * STATS_WORDS * self.size + 8 * slot

    def result_bytes(self, slots: int) -> int:
        return self.slot_stats(slots)

    @property
    def zero_bytes(self) -> int:
        return self.slot_done(self.size)

    @property
    def block_stats(self) -> int:
        return self.zero_bytes

    @property
    def limits(self) -> int:
        return self.block_stats + 8 * STATS_WORDS * self.grid

    @property
    def total_bytes(self) -> int:
        return self.limits + 8 * self.n_limits


def parse_window(raw: np.ndarray, n_buckets: int, slots: int) -> tuple[np.ndarray, list]:
    """(int64 counts, each slot's TensorStats) from a WindowBuffer's result bytes."""
    counts = raw[: 8 * n_buckets].view(np.uint64).astype(np.int64)
    step = 8 * STATS_WORDS
    stats = [parse_stats(raw[8 * n_buckets + k * step : 8 * n_buckets + (k + 1) * step])
             for k in range(slots)]  # fmt: skip
    return counts, stats


def reduce_args(
    buffer: ReduceBuffer | WindowBuffer,
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
    slot: int = 0,
) -> tuple:
    """gs_reduce's arguments, each a NumPy scalar of the parameter's exact width.

    Args:
        buffer: the layout of the result buffer at device address ``base``.
        mode: STATS, LADDER, EDGES or EVEN.
        data: device address of the lowest element; ``n`` elements in the collapsed layout
            ``shape``/``strides`` (``cuda_kernels/layout.py``; at most MAX_DIMS dimensions).
        limits: device address of ``n_limits`` caller limits (EDGES mode).
        bins: even buckets (EVEN mode).
        slot: a WindowBuffer's step whose stats slot this launch writes.
    """
    shared = in_shared_memory(mode, n_limits, bins)
    if isinstance(buffer, WindowBuffer):
        stats, done = buffer.slot_stats(slot), buffer.slot_done(slot)
    else:
        stats, done = buffer.stats, buffer.blocks_done
    return (
        *layout_args(data, n, shape, strides),
        np.uint64(limits),
        np.int32(n_limits),
        np.int32(shared and mode == EDGES),  # shared_limits
        np.int32(shared),  # shared_counts
        np.int32(bins),
        np.uint64(base),
        np.uint64(base + stats),
        np.uint64(base + buffer.block_stats),
        np.uint64(base + done),
    )


# The most blocks a PROBE launch uses: a probe's scratch holds this many block partials. One
# full wave of a ladder launch is about 5 blocks a multiprocessor (132 on an H100, 148 on a
# B200); a larger device runs the same reduction in fewer, longer-running blocks.
PROBE_BLOCKS = 1024


def probe_words(n_formats: int) -> int:
    """Length (int64 words) of a probe's accumulator on a device: ``probe_layout``'s, with
    scratch for ``PROBE_BLOCKS`` blocks; initialise it with ``probe_layout.empty(n_formats,
    PROBE_BLOCKS)``."""
    return probe_layout.words(n_formats, PROBE_BLOCKS)


def probe_args(
    base: int, n_formats: int, data: int, n: int, shape: list[int], strides: list[int]
) -> tuple:
    """gs_reduce's arguments for a PROBE launch into the accumulator at device address
    ``base`` (``probe_layout``: counts at word 0, stats at ``STATS``, ``blocks_done`` at
    ``scratch(n_formats)``, the block partials one word later). The grid must be at most
    ``PROBE_BLOCKS``; the input is ``n`` elements at ``data`` in a collapsed layout, as
    :func:`reduce_args`."""
    scratch = base + 8 * probe_layout.scratch(n_formats)
    return (
        *layout_args(data, n, shape, strides),
        np.uint64(0),  # limits: the ladder is the kernel's own
        np.int32(0),  # n_limits
        np.int32(0),  # shared_limits
        np.int32(1),  # shared_counts
        np.int32(0),  # bins
        np.uint64(base),
        np.uint64(base + 8 * probe_layout.STATS),
        np.uint64(scratch + 8),
        np.uint64(scratch),  # blocks_done: the low half of its word (little-endian)
    )


def parse_stats(raw: np.ndarray) -> TensorStats:
    """TensorStats from the 64 stats bytes gs_reduce writes."""
    words = raw.view(np.uint64)
    doubles = raw.view(np.float64)
    return TensorStats.of(words[0], doubles[4], doubles[5], doubles[6], doubles[7],
                          words[1], words[2], words[3])  # fmt: skip


def parse_result(raw: np.ndarray, n_buckets: int) -> tuple[np.ndarray, TensorStats]:
    """(int64 counts, stats) from the ``result_bytes`` copied back from a ReduceBuffer."""
    counts = raw[: 8 * n_buckets].view(np.uint64).astype(np.int64)
    return counts, parse_stats(raw[8 * n_buckets : 8 * n_buckets + 8 * STATS_WORDS])


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


def multi_args(buffer: MultiBuffer | MultiWindowBuffer, base: int, slot: int = 0) -> tuple:
    """gs_multi_ladder's arguments for a buffer at device address ``base`` (a window's:
    for its step ``slot``, whose stats and chunk counters it writes)."""
    table = base + buffer.table
    n = buffer.tensors
    if isinstance(buffer, MultiWindowBuffer):
        stats, done = buffer.slot_stats(slot), buffer.slot_done(slot)
    else:
        stats, done = buffer.stats, buffer.chunks_done
    return (
        np.uint64(table),
        np.uint64(table + 8 * n),
        np.uint64(table + 16 * n),
        np.uint64(table + 24 * n),
        np.int32(n),
        np.uint64(base),
        np.uint64(base + stats),
        np.uint64(base + buffer.chunk_stats),
        np.uint64(base + done),
    )


def parse_multi(raw: np.ndarray, tensors: int) -> list[tuple[np.ndarray, TensorStats]]:
    """(int64 ladder counts, stats) of each tensor from a MultiBuffer's result bytes (laid out
    as a one-step window's)."""
    return [(counts, stats) for counts, (stats,) in parse_multi_window(raw, tensors, 1)]


@dataclasses.dataclass(frozen=True)
class MultiWindowBuffer:
    """Byte offsets of one window of ``gs_multi_ladder`` launches over the same tensors: each
    step's counts added in place, its stats and chunk counters in a slot of their own::

        [counts u64 x tensors x LADDER | stats u64 x 8 x tensors x size |
         chunks_done u32 x tensors x size, each slot padded to 8 bytes |
         chunk stats u64 x 8 x chunks | table (one step's, restaged each step)]

    The first ``zero_bytes`` must be zero before the first step."""

    tensors: int
    size: int
    chunks: int

    @property
    def stats(self) -> int:
        return 8 * self.tensors * _ladder.N_LIMITS

    def slot_stats(self, slot: int) -> int:
        return self.stats + 8 * STATS_WORDS * self.tensors * slot

    @property
    def _done_slot_bytes(self) -> int:
        return 8 * (-(-self.tensors // 2))

    def slot_done(self, slot: int) -> int:
        return self.slot_stats(self.size) + self._done_slot_bytes * slot

    def result_bytes(self, slots: int) -> int:
        return self.slot_stats(slots)

    @property
    def zero_bytes(self) -> int:
        return self.slot_done(self.size)

    @property
    def chunk_stats(self) -> int:
        return self.zero_bytes

    @property
    def table(self) -> int:
        return self.chunk_stats + 8 * STATS_WORDS * max(self.chunks, 1)

    @property
    def total_bytes(self) -> int:
        return self.table + 8 * (4 * self.tensors + 1)


def parse_multi_window(
    raw: np.ndarray, tensors: int, slots: int
) -> list[tuple[np.ndarray, list[TensorStats]]]:
    """Each tensor's (int64 ladder counts, its stats at every step) from a window's bytes."""
    counts = raw[: 8 * tensors * _ladder.N_LIMITS].view(np.uint64).astype(np.int64)
    counts = counts.reshape(tensors, _ladder.N_LIMITS)
    base = 8 * tensors * _ladder.N_LIMITS
    words = 8 * STATS_WORDS
    out = []
    for t in range(tensors):
        stats = []
        for slot in range(slots):
            at = base + words * (tensors * slot + t)
            stats.append(parse_stats(raw[at : at + words]))
        out.append((counts[t], stats))
    return out
