"""gpu_summary._writer.aggregation: local compact results merged into the exact global one.

Two ranks live in this process, each with its own Aggregator thread, joined by an in-memory
collective; the merged results are held against the NumPy backend's on the concatenated data.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from gpu_summary._backend import numpy as nb
from gpu_summary._core.results import Ready
from gpu_summary._writer.aggregation import Aggregation
from gpu_summary.distributed import AggregationFailed, Aggregator, Collective, MismatchError


class _Room:
    """Where the ranks of one in-process group meet for each collective."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.barrier = threading.Barrier(size, timeout=30)
        self.slots: list = [None] * size


class _ThreadCollective(Collective):
    def __init__(self, room: _Room, rank: int) -> None:
        self.room, self.rank, self.size = room, rank, room.size

    def _exchange(self, values: np.ndarray) -> list[np.ndarray]:
        self.room.slots[self.rank] = np.array(values, dtype=np.float64)
        self.room.barrier.wait()
        everything = list(self.room.slots)
        self.room.barrier.wait()  # nobody overwrites a slot before all have read
        return everything

    def minimum(self, values: np.ndarray) -> np.ndarray:
        return np.minimum.reduce(self._exchange(values))

    def total(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduce(self._exchange(values))

    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        return self._exchange(values)


@pytest.fixture
def ranks():
    room = _Room(2)
    aggregations = [Aggregation(Aggregator(_ThreadCollective(room, r))) for r in range(2)]
    yield aggregations
    for aggregation in aggregations:
        aggregation.aggregator.close()


_SHARDS = [
    np.array([0.5, -3.0, np.nan, 7.25, np.inf, 1e-13]),
    np.array([2.0, 2.0, -np.inf, 1e21, -0.0]),
]


def _merged(pendings):
    return [pending.result() for pending in pendings]


def test_ladder_histograms_sum_to_the_histogram_of_all_shards(ranks):
    pendings = [
        aggregation.histogram(nb.histogram_fixed(shard, None), "h", 3, None)
        for aggregation, shard in zip(ranks, _SHARDS, strict=True)
    ]
    expected = nb.histogram_fixed(np.concatenate(_SHARDS), None).result()
    for merged in _merged(pendings):
        np.testing.assert_array_equal(merged.counts, expected.counts)
        assert merged.stats == expected.stats


def test_even_bins_count_over_the_global_range(ranks):
    asked = []

    def local(shard):
        def count(lo, hi):
            asked.append((lo, hi))
            return nb.even_counts(shard, lo, hi, 4)

        return nb.tensor_stats(shard), count

    pendings = []
    for aggregation, shard in zip(ranks, _SHARDS, strict=True):
        stats, count = local(shard)
        pendings.append(aggregation.histogram_even(stats, count, "e", 0, 4))
    expected = nb.histogram_even(np.concatenate(_SHARDS), 4).result()
    for merged in _merged(pendings):
        np.testing.assert_array_equal(merged.counts, expected.counts)
        np.testing.assert_array_equal(merged.limits, expected.limits)
        assert (merged.stats.min, merged.stats.max) == (-3.0, 1e21)
    assert asked == [(-3.0, 1e21)] * 2  # each rank counted once, over the global range


def test_even_bins_without_any_finite_value_are_all_zero(ranks):
    shard = np.array([np.nan, np.inf])
    pendings = [
        a.histogram_even(nb.tensor_stats(shard), lambda lo, hi: None, "e", 0, 3) for a in ranks
    ]
    for merged in _merged(pendings):
        assert merged.counts.tolist() == [0, 0, 0] and merged.stats.count == 0
        assert (merged.stats.min, merged.stats.max, merged.stats.nan) == (0.0, 0.0, 2)


def test_many_histograms_merge_in_one_call(ranks):
    tensors = [[shard, shard[::-1] * 2] for shard in _SHARDS]
    pendings = [
        aggregation.histograms(nb.histograms(mine), ["a", "b"], 1)
        for aggregation, mine in zip(ranks, tensors, strict=True)
    ]
    for merged in _merged(pendings):
        for k in range(2):
            together = np.concatenate([mine[k] for mine in tensors])
            np.testing.assert_array_equal(
                merged[k].counts, nb.histogram_fixed(together, None).result().counts
            )


@pytest.mark.parametrize(
    ("reduce", "expected"), [("mean", 2.5), ("sum", 5.0), ("min", 1.0), ("max", 4.0)]
)
def test_scalars_reduce_across_ranks(ranks, reduce, expected):
    pendings = [
        aggregation.scalar(Ready(value), "s", 0, reduce)
        for aggregation, value in zip(ranks, (1.0, 4.0), strict=True)
    ]
    assert _merged(pendings) == [expected, expected]


def test_rank0_scalars_need_no_collective(ranks):
    own = Ready(7.0)
    assert ranks[0].scalar(own, "s", 0, "rank0") is own


def test_ranks_in_different_calls_fail_with_a_clear_error(ranks):
    pendings = [
        aggregation.histogram(nb.histogram_fixed(_SHARDS[0], None), tag, 0, None)
        for aggregation, tag in zip(ranks, ("left", "right"), strict=True)
    ]
    for aggregation, pending in zip(ranks, pendings, strict=True):
        with pytest.raises(AggregationFailed):
            pending.result()
        aggregation.aggregator.wait()
        with pytest.raises(MismatchError, match="same order with the same tags"):
            aggregation.aggregator.raise_error()
