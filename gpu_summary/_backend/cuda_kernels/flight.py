"""gs_flight's ABI (``kernels/gs_reduce.cu``): the flight recorder's ring on a device, the
table one step's launch reads and its arguments. The ring's words are laid out as
``gpu_summary._core.flight`` says, the same on both backends."""

from __future__ import annotations

import dataclasses

import numpy as np

from gpu_summary._backend.cuda_kernels.reduce import MULTI_CHUNK
from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES
from gpu_summary._core import flight as layout

CHUNK = MULTI_CHUNK  # GS_CHUNK: elements per chunk, as gs_multi_ladder's
SCRATCH_WORDS = 9  # a chunk's partial: gs_reduce's 8 stats words, then its zeros


def flight_expression(dtype: str) -> str:
    """The template instantiation of gs_flight for a dtype name."""
    return f"gs_flight<{CUDA_TYPES[dtype]}>"


@dataclasses.dataclass(frozen=True)
class RingBuffer:
    """Byte offsets of a ring's device buffer, allocated once::

        [ring u64 x ring_words(slots, tensors) | chunks_done u32 x tensors, padded to 8]

    The ring starts as all one bits (``ring_bytes``), the chunk counters as zero
    (``chunks_done_bytes`` from ``chunks_done``); gs_flight leaves the counters zero."""

    slots: int
    tensors: int

    @property
    def ring_bytes(self) -> int:
        return 8 * layout.ring_words(self.slots, self.tensors)

    @property
    def chunks_done(self) -> int:
        return self.ring_bytes

    @property
    def chunks_done_bytes(self) -> int:
        return 8 * (-(-self.tensors // 2))

    @property
    def total_bytes(self) -> int:
        return self.chunks_done + self.chunks_done_bytes


@dataclasses.dataclass(frozen=True)
class StepBuffer:
    """Byte offsets of one launch's buffer (from the pool, released after the launch)::

        [chunk partials u64 x 9 x chunks | table: pointers u64 x tensors |
         lengths i64 x tensors | strides i64 x tensors | first_chunk i64 x (tensors + 1) |
         columns i64 x tensors | orders i64 x tensors]

    Nothing in it needs zeroing; the table is copied in from the host."""

    tensors: int
    chunks: int

    @property
    def table(self) -> int:
        return 8 * SCRATCH_WORDS * self.chunks

    @property
    def table_bytes(self) -> int:
        return 8 * (6 * self.tensors + 1)

    @property
    def total_bytes(self) -> int:
        return self.table + self.table_bytes


def flight_table(pointers: list[int], lengths: list[int], strides: list[int],
                 columns: list[int], orders: list[int]) -> np.ndarray:  # fmt: skip
    """The table gs_flight reads (uint64 words): gs_multi_ladder's, each tensor one chunk at
    least (an empty tensor's record is written too), then each tensor's column and order."""
    chunks = [max(1, -(-n // CHUNK)) for n in lengths]
    first = np.concatenate([[0], np.cumsum(chunks, dtype=np.int64)])
    return np.concatenate([
        np.asarray(pointers, dtype=np.uint64),
        np.asarray(lengths, dtype=np.int64).view(np.uint64),
        np.asarray(strides, dtype=np.int64).view(np.uint64),
        first.astype(np.int64).view(np.uint64),
        np.asarray(columns, dtype=np.int64).view(np.uint64),
        np.asarray(orders, dtype=np.int64).view(np.uint64),
    ])  # fmt: skip


def flight_args(ring: RingBuffer, ring_base: int, step_buffer: StepBuffer, step_base: int,
                step: int) -> tuple:  # fmt: skip
    """gs_flight's arguments: the ring at device address ``ring_base``, the launch's buffer
    at ``step_base``, and the step (its slot ``step % ring.slots``)."""
    table = step_base + step_buffer.table
    n = step_buffer.tensors
    return (
        np.uint64(table),
        np.uint64(table + 8 * n),
        np.uint64(table + 16 * n),
        np.uint64(table + 24 * n),
        np.uint64(table + 8 * (4 * n + 1)),
        np.uint64(table + 8 * (5 * n + 1)),
        np.int32(n),
        np.int64(ring.tensors),
        np.int64(step % ring.slots),
        np.int64(step),
        np.uint64(ring_base),
        np.uint64(step_base),
        np.uint64(ring_base + ring.chunks_done),
    )
