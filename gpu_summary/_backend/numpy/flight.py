"""The NumPy backend's flight recorder ring (``gpu_summary._core.flight`` holds the layout):
the specification of the device backend's ``flight``.

Each step's statistics come from this backend's own reductions (``compiled.tensor_stats``, on
its thread pool for large tensors; the zeros counted a cache-sized chunk at a time, as a
comparison whose booleans NumPy counts, some eight times faster than ``count_nonzero`` of the
values): nothing here calls into a BLAS or OpenMP pool, nor into the tensor's own library.
"""

from __future__ import annotations

import threading

import numpy as np

from gpu_summary._backend.numpy.arrays import flat_chunks
from gpu_summary._backend.numpy.compiled import tensor_stats
from gpu_summary._core import flight as layout
from gpu_summary._core.results import Pending, Ready


class HostRing:
    """A ring of ``slots`` steps of ``tensors`` tensors in host memory (uint64 words, the
    moments viewed as float64)."""

    def __init__(self, slots: int, tensors: int) -> None:
        self.slots, self.tensors = slots, tensors
        self.words = np.full(layout.ring_words(slots, tensors), layout.NONE, np.uint64)
        self.doubles = self.words.view(np.float64)
        self.lock = threading.Lock()  # one step's records written together, read whole


def count_zeros(values: np.ndarray) -> int:
    """How many of ``values`` equal 0 (either sign; NaN does not)."""
    return sum(int(np.count_nonzero(chunk == 0)) for chunk in flat_chunks(values))


def flight_open(slots: int, tensors: int, like: np.ndarray) -> HostRing:
    """An empty ring of ``slots`` steps of ``tensors`` tensors (``like``: one of them)."""
    return HostRing(slots, tensors)


def flight_add(
    ring: HostRing, arrays: list[np.ndarray], columns: list[int], orders: list[int], step: int
) -> Pending[int]:
    """Write ``arrays``' statistics at ``step``: ``arrays[k]`` into record ``columns[k]``
    with order word ``orders[k]`` — unless the ring stopped at an earlier step holding NaN or
    ±Inf. Returns the ring's ``first_bad`` word after this step."""
    with ring.lock:
        stopped = int(ring.words[0])
        if stopped != layout.NONE and step > stopped:
            return Ready(stopped)
        slot = step % ring.slots
        bad = False
        for array, column, order in zip(arrays, columns, orders, strict=True):
            stats = tensor_stats(array).result()
            first = layout.record_offset(slot, column, ring.tensors)
            words, doubles = ring.words, ring.doubles
            words[first : first + layout.MIN] = (
                step, order, stats.count, stats.nan, stats.posinf, stats.neginf,
                count_zeros(array),
            )  # fmt: skip
            doubles[first + layout.MIN : first + layout.RECORD_WORDS] = (
                stats.min, stats.max, stats.sum, stats.sum_squares,
            )  # fmt: skip
            bad = bad or bool(stats.nan or stats.posinf or stats.neginf)
        if bad and step < int(ring.words[0]):
            ring.words[0] = step
        return Ready(int(ring.words[0]))


def flight_result(ring: HostRing) -> Pending[np.ndarray]:
    """A copy of the ring's words (uint64)."""
    with ring.lock:
        return Ready(ring.words.copy())
