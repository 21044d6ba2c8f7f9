"""gpu_summary._writer.aggregation over gpu_summary._distributed.exchange: local compact results
merged into the exact global one, a step's calls in one header and two packs.

The ranks live in this process, each with its own Exchange thread, joined by an in-memory
collective that counts its calls; the merged results are held against the NumPy backend's on
the concatenated data.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from gpu_summary._backend import numpy as nb
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core.results import Derived, Ready
from gpu_summary._distributed import disagreement
from gpu_summary._distributed.exchange import Exchange
from gpu_summary._writer.aggregation import Aggregation
from gpu_summary.distributed import (
    AggregationError,
    AggregationFailed,
    Collective,
    CollectiveFailed,
    MismatchError,
)


class _Room:
    """Where the ranks of one in-process group meet for each collective."""

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self.barrier = threading.Barrier(size, timeout=timeout)
        self.slots: list = [None] * size
        self.calls: list[tuple[str, int]] = []  # (collective, words) as rank 0 made them


class _ThreadCollective(Collective):
    def __init__(self, room: _Room, rank: int) -> None:
        self.room, self.rank, self.size = room, rank, room.size
        self.timeout = room.timeout

    def _exchange(self, name: str, values: np.ndarray) -> list[np.ndarray]:
        if self.rank == 0:
            self.room.calls.append((name, int(np.size(values))))
        self.room.slots[self.rank] = np.array(values, dtype=np.float64)
        try:
            self.room.barrier.wait()
            everything = list(self.room.slots)
            self.room.barrier.wait()  # nobody overwrites a slot before all have read
        except threading.BrokenBarrierError:
            raise CollectiveFailed(f"rank {self.rank}: a peer did not come") from None
        sizes = {part.size for part in everything}
        assert len(sizes) == 1, f"a {name} of unequal sizes {sizes}: gloo would abort"
        return everything

    def minimum(self, values):
        return np.minimum.reduce(self._exchange("min", values))

    def total(self, values):
        return np.add.reduce(self._exchange("sum", values))

    def gather(self, values):
        return self._exchange("gather", values)


def _group(size: int, timeout: float = 30.0) -> tuple[_Room, list[Aggregation]]:
    room = _Room(size, timeout)
    return room, [Aggregation(Exchange(_ThreadCollective(room, r))) for r in range(size)]


@pytest.fixture
def ranks():
    room, aggregations = _group(2)
    aggregations[0].room = room
    yield aggregations
    _close_all(aggregations)


_SHARDS = [
    np.array([0.5, -3.0, np.nan, 7.25, np.inf, 1e-13]),
    np.array([2.0, 2.0, -np.inf, 1e21, -0.0]),
]


def _sealed(ranks, pendings):
    for aggregation in ranks:
        aggregation.exchange.seal()
    return [pending.result() for pending in pendings]


def _histograms(ranks, shards, step, limits=None):
    """Each rank's merged histogram of its shard (``limits`` None: the ladder)."""
    return [
        aggregation.histogram(nb.histogram_fixed(shard, limits), "h", step, limits, "float64")
        for aggregation, shard in zip(ranks, shards, strict=True)
    ]


def test_ladder_histograms_sum_to_the_histogram_of_all_shards(ranks):
    pendings = _histograms(ranks, _SHARDS, 3)
    expected = nb.histogram_fixed(np.concatenate(_SHARDS), None).result()
    for merged in _sealed(ranks, pendings):
        np.testing.assert_array_equal(merged.counts, expected.counts)
        assert merged.stats == expected.stats


def test_only_the_buckets_some_rank_filled_travel(ranks):
    shards = [np.array([1.0, 1.5]), np.array([2.0, 3.0])]
    pendings = _histograms(ranks, shards, 0)
    expected = nb.histogram_fixed(np.concatenate(shards), None).result()
    for merged in _sealed(ranks, pendings):
        np.testing.assert_array_equal(merged.counts, expected.counts)
    filled = np.flatnonzero(expected.counts)
    # header, MIN pack (range and span), SUM pack ([failed], the span, 6 moments and counts)
    span = ("sum", 1 + filled[-1] - filled[0] + 1 + 6)
    assert ranks[0].room.calls == [("min", 8), ("min", 4), span]
    # The next step logs the same calls: its MIN pack rides with its header.
    _sealed(ranks, _histograms(ranks, shards, 1))
    assert ranks[0].room.calls[3:] == [("min", 8 + 4), span]


def test_edges_and_empty_shards_merge_exactly(ranks):
    limits = np.array([-2.0, 0.0, 0.5, 3.0, np.finfo(np.float64).max])
    shards = [np.array([np.nan]), np.array([-1.0, 0.25, 2.0, 9.0])]
    pendings = _histograms(ranks, shards, 0, limits)
    expected = nb.histogram_fixed(np.concatenate(shards), limits).result()
    for merged in _sealed(ranks, pendings):
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
        pendings.append(aggregation.histogram_even(stats, count, "e", 0, 4, "float64"))
    expected = nb.histogram_even(np.concatenate(_SHARDS), 4).result()
    for merged in _sealed(ranks, pendings):
        np.testing.assert_array_equal(merged.counts, expected.counts)
        np.testing.assert_array_equal(merged.limits, expected.limits)
        assert (merged.stats.min, merged.stats.max) == (-3.0, 1e21)
    assert asked == [(-3.0, 1e21)] * 2  # each rank counted once, over the global range
    assert [name for name, _ in ranks[0].room.calls] == ["min", "min", "sum"]  # no third pass


def test_even_bins_without_any_finite_value_are_all_zero(ranks):
    shard = np.array([np.nan, np.inf])
    pendings = [
        a.histogram_even(nb.tensor_stats(shard), lambda lo, hi: None, "e", 0, 3, "float64")
        for a in ranks
    ]
    for merged in _sealed(ranks, pendings):
        assert merged.counts.tolist() == [0, 0, 0] and merged.stats.count == 0
        assert (merged.stats.min, merged.stats.max, merged.stats.nan) == (0.0, 0.0, 2)


def test_many_histograms_merge_in_one_call(ranks):
    tensors = [[shard, shard[::-1] * 2] for shard in _SHARDS]
    pendings = [
        aggregation.histograms(nb.histograms(mine), ["a", "b"], 1, ["float64"] * 2)
        for aggregation, mine in zip(ranks, tensors, strict=True)
    ]
    for merged in _sealed(ranks, pendings):
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
    assert _sealed(ranks, pendings) == [expected, expected]


@pytest.mark.parametrize("reduce", ["mean", "sum", "min", "max"])
def test_a_nan_on_any_rank_is_the_scalar_s_nan(ranks, reduce):
    pendings = [
        aggregation.scalar(Ready(value), "s", 0, reduce)
        for aggregation, value in zip(ranks, (1.0, math.nan), strict=True)
    ]
    assert all(math.isnan(v) for v in _sealed(ranks, pendings))


def test_rank0_scalars_need_no_collective(ranks):
    own = Ready(7.0)
    assert ranks[0].scalar(own, "s", 0, "rank0") is own


def test_a_step_costs_three_collectives_at_most_however_many_tags(ranks):
    pendings = []
    for aggregation, shard in zip(ranks, _SHARDS, strict=True):
        for k in range(20):
            pendings.append(aggregation.histogram(nb.histogram_fixed(shard * (k + 1), None),
                                                  f"h{k}", 5, None, "float64"))  # fmt: skip
        for k in range(5):
            pendings.append(aggregation.scalar(Ready(float(k)), f"s{k}", 5, "mean"))
        pendings.append(aggregation.scalar(Ready(1.0), "worst", 5, "max"))
    # The next step's first call seals step 5 on each rank.
    nxt = [aggregation.scalar(Ready(1.0), "s0", 6, "mean") for aggregation in ranks]
    for pending in pendings:
        pending.result()
    assert [name for name, _ in ranks[0].room.calls] == ["min", "min", "sum"]
    assert _sealed(ranks, nxt) == [1.0, 1.0]
    assert len(ranks[0].room.calls) == 5  # step 6: a header and a SUM pack, no MIN words


def _found(shard):
    return nb.anomaly(shard, -1.0, None, 3, _anomaly.HEATMAP_CELLS)


def test_anomaly_positions_gather_in_rank_order(ranks):
    shards = [np.array([[1.0, np.nan], [np.inf, 2.0]]), np.array([-5.0, 0.0, np.nan])]
    pendings = [
        aggregation.anomaly(_found(shard), "a", 0, -1.0, None, 3, "float64")
        for aggregation, shard in zip(ranks, shards, strict=True)
    ]  # add_anomaly seals its step: no seal needed to wait for the report
    for merged in (pending.result() for pending in pendings):
        report = _anomaly.report(merged, "a", 0, -1.0, None)
        assert [(p.rank, p.index, p.kind) for p in report.positions] == [
            (0, (0, 1), "nan"), (0, (1, 0), "posinf"), (1, (0,), "below")]  # fmt: skip
        assert (report.nan, report.posinf, report.below, report.count) == (2, 1, 1, 4)
        assert merged.histogram.counts.sum() == 4


def test_ranks_in_different_calls_all_raise_naming_the_calls(ranks):
    pendings = [
        aggregation.histogram(nb.histogram_fixed(_SHARDS[0], None), tag, 0, None, "float32")
        for aggregation, tag in zip(ranks, ("left", "right"), strict=True)
    ]
    for pending in _sealed_failures(ranks, pendings):
        assert isinstance(pending, AggregationFailed)
    for aggregation in ranks:
        aggregation.exchange.wait()
        with pytest.raises(MismatchError) as raised:
            aggregation.exchange.raise_error()
        message = str(raised.value)
        assert message.startswith("ranks disagree at step 0")
        assert (
            "add_histogram('left', step=0, bins=tensorflow, float32) logged by rank 0 only"
            in message
        )
        assert "'right'" in message and "rank 1 only" in message
    # The next step merges again.
    again = [aggregation.scalar(Ready(2.0), "s", 1, "sum") for aggregation in ranks]
    assert _sealed(ranks, again) == [4.0, 4.0]


def _sealed_failures(ranks, pendings):
    for aggregation in ranks:
        aggregation.exchange.seal()
    out = []
    for pending in pendings:
        try:
            pending.result()
        except AggregationFailed as exc:
            out.append(exc)
    return out


@pytest.mark.parametrize(
    "second",
    [
        {"dtype": "float16"},
        {"step": 1},
        {"limits": np.array([0.0, 1.0, np.finfo(np.float64).max])},
        {"skip": True},
    ],
    ids=["dtype", "step", "bins", "skipped"],
)
def test_every_kind_of_difference_is_a_mismatch_on_every_rank(second):
    _room, ranks = _group(2)
    for rank, aggregation in enumerate(ranks):
        options = second if rank == 1 else {}
        aggregation.scalar(Ready(1.0), "loss", 0, "mean")
        if not options.get("skip"):
            limits = options.get("limits")
            aggregation.histogram(nb.histogram_fixed(_SHARDS[0], limits), "w",
                                  options.get("step", 0), limits,
                                  options.get("dtype", "float32"))  # fmt: skip
    for error in _close_all(ranks, expect_errors=True):  # each rank's first error
        assert isinstance(error, MismatchError) and "'w'" in str(error)
        assert str(error).startswith("ranks disagree at step 0")


def test_a_skipped_step_costs_that_step_only():
    _room, ranks = _group(2)
    merged = {}
    for rank, aggregation in enumerate(ranks):
        for step in range(4):
            if rank == 1 and step == 1:
                continue  # rank 1 skips step 1
            merged[rank, step] = aggregation.scalar(Ready(float(step)), "s", step, "sum")
    errors = _close_all(ranks, expect_errors=True)
    for error in errors:
        assert str(error).startswith("ranks disagree about the step: rank 0 at step 1, rank 1 "
                                     "at step 2")  # fmt: skip
    with pytest.raises(AggregationFailed):
        merged[0, 1].result()
    assert [merged[rank, step].result() for rank in (0, 1) for step in (0, 2, 3)] == [
        0.0, 4.0, 6.0] * 2  # fmt: skip


def test_a_rank_whose_reduction_failed_fails_the_step_everywhere(ranks):
    def broken():
        raise RuntimeError("device lost")

    pendings = [
        ranks[0].histogram(nb.histogram_fixed(_SHARDS[0], None), "h", 0, None, "float64"),
        ranks[1].histogram(Derived(broken), "h", 0, None, "float64"),
    ]
    assert len(_sealed_failures(ranks, pendings)) == 2
    for aggregation in ranks:
        aggregation.exchange.wait()
        with pytest.raises(AggregationError, match=r"rank 1 could not reduce.*device lost"):
            aggregation.exchange.raise_error()
    again = [aggregation.scalar(Ready(1.0), "s", 1, "mean") for aggregation in ranks]
    assert _sealed(ranks, again) == [1.0, 1.0]


def test_a_rank_closing_while_another_logs_ends_both(ranks):
    left = ranks[1].scalar(Ready(1.0), "s", 7, "mean")
    closer = threading.Thread(target=ranks[0].exchange.close)
    closer.start()
    ranks[1].exchange.seal()
    closer.join(30)
    assert not closer.is_alive()
    with pytest.raises(AggregationFailed):
        left.result()
    for aggregation in ranks:
        aggregation.exchange.wait()
        with pytest.raises(
            MismatchError,
            match=r"rank 0 closed the distributed writer while "
            r"rank 1 logged step 7: add_scalar\('s'",
        ):
            aggregation.exchange.raise_error()
    with pytest.raises(AggregationError, match="merges nothing more"):
        ranks[1].exchange.raise_error()  # every later call, until close()
    ranks[1].exchange.close()  # no collective left to wait for
    late = ranks[1].scalar(Ready(1.0), "s", 8, "mean")
    ranks[1].exchange.seal()
    with pytest.raises(AggregationFailed):
        late.result()


def test_a_rank_that_never_comes_is_an_error_within_the_timeout():
    _room, ranks = _group(2, timeout=0.5)
    pending = ranks[0].scalar(Ready(1.0), "s", 0, "mean")
    ranks[0].exchange.seal()  # rank 1 stalls: never logs
    with pytest.raises(AggregationFailed):
        pending.result()
    with pytest.raises(AggregationError, match="lost contact"):
        ranks[0].exchange.raise_error()
    later = ranks[0].scalar(Ready(1.0), "s", 1, "mean")  # fails at once, no collective
    ranks[0].exchange.seal()
    with pytest.raises(AggregationFailed):
        later.result()
    ranks[0].exchange.close()


def test_the_queue_of_sealed_steps_is_bounded():
    _room, ranks = _group(2, timeout=5.0)
    exchange = ranks[0].exchange
    exchange._max_pending = 2
    blocked = threading.Event()

    def log_steps():
        for step in range(6):
            ranks[0].scalar(Ready(1.0), "s", step, "sum")
        blocked.set()

    producer = threading.Thread(target=log_steps, daemon=True)
    producer.start()
    producer.join(1.0)
    assert not blocked.is_set()  # waiting for room: rank 1 has not come
    for step in range(6):
        ranks[1].scalar(Ready(2.0), "s", step, "sum")
    producer.join(30)
    assert blocked.is_set()
    _close_all(ranks)


def _close_all(ranks, expect_errors=False):
    """close() on every rank at once, as the ranks of a job do; what each raised."""
    errors = [None] * len(ranks)

    def close(rank, exchange):
        try:
            exchange.close()
            exchange.raise_error()
        except BaseException as exc:  # noqa: BLE001 - returned
            errors[rank] = exc

    threads = [threading.Thread(target=close, args=(r, a.exchange)) for r, a in enumerate(ranks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    if not expect_errors:
        assert errors == [None] * len(ranks)
    return errors


def test_the_mismatch_message_names_ranks_steps_and_calls():
    reports = [
        {"rank": 0, "step": 3, "closed": False, "calls": ["a", "b"], "error": None},
        {"rank": 1, "step": 3, "closed": False, "calls": ["a"], "error": None},
        {"rank": 2, "step": 3, "closed": False, "calls": ["a", "b"], "error": None},
    ]
    assert disagreement.explain(reports).startswith(
        "ranks disagree at step 3: b not logged by rank 1; nothing of that batch was merged"
    )
    reports[1]["calls"] = ["b", "a"]
    assert "the same calls in another order" in disagreement.explain(reports)
    reports[1]["step"], reports[1]["calls"] = 4, ["a", "b"]
    assert disagreement.explain(reports).startswith(
        "ranks disagree about the step: ranks 0, 2 at step 3, rank 1 at step 4 (a step "
        "skipped, or steps counted differently); ranks 0, 2 dropped their batch, unmerged, "
        "and the others merge step 4 with their next one"
    )
    assert disagreement.ranks_text([0, 1, 2, 3, 7, 9, 10]) == "ranks 0-3, 7, 9-10"


@pytest.mark.parametrize("size", [1, 2])
def test_a_reduction_that_failed_on_every_rank_merges_nothing(size):
    def broken():
        raise RuntimeError("device lost")

    _room, ranks = _group(size)
    pendings = [a.scalar(Derived(broken), "s", 0, "mean") for a in ranks]
    pendings += [a.anomaly(Derived(broken), "a", 0, None, None, 3, "float32") for a in ranks]
    assert len(_sealed_failures(ranks, pendings)) == 2 * size
    for aggregation in ranks:
        aggregation.exchange.wait()
        with pytest.raises(AggregationError, match=r"could not reduce its shard.*device lost"):
            aggregation.exchange.raise_error()
    again = [a.scalar(Ready(2.0), "s", 1, "sum") for a in ranks]
    assert _sealed(ranks, again) == [2.0 * size] * size
    _close_all(ranks)


def test_a_huge_error_message_still_reaches_every_rank():
    def broken():
        raise RuntimeError("x" * 100_000)

    _room, ranks = _group(2, timeout=10.0)
    pendings = [
        ranks[0].scalar(Ready(1.0), "s", 0, "mean"),
        ranks[1].scalar(Derived(broken), "s", 0, "mean"),
    ]
    assert len(_sealed_failures(ranks, pendings)) == 2
    for error in _close_all(ranks, expect_errors=True):
        assert isinstance(error, AggregationError) and "rank 1 could not reduce" in str(error)
        assert len(str(error)) < 2000


def test_close_sends_its_marker_even_when_a_held_job_raises():
    _room, ranks = _group(2, timeout=20.0)
    for aggregation in ranks:
        aggregation.scalar(Ready(1.0), "s", 0, "mean")

    def full_disk():
        raise OSError(28, "No space left on device")

    ranks[0].exchange.hold(full_disk)
    errors = _close_all(ranks, expect_errors=True)
    assert isinstance(errors[0], OSError) and errors[1] is None  # rank 1 waited no timeout


def test_windows_of_other_edges_do_not_merge():
    _room, ranks = _group(2)
    for aggregation, top in zip(ranks, (2.0, 200.0), strict=True):
        limits = np.array([0.0, 1.0, top, np.finfo(np.float64).max])
        local = Ready((np.zeros(4, np.int64), [nb.tensor_stats(np.ones(3)).result()] * 2))
        aggregation.window(local, "w", 1, 2, 4, limits)
    for error in _close_all(ranks, expect_errors=True):
        assert isinstance(error, MismatchError) and "histogram window of 'w'" in str(error)


def test_distributed_writers_left_open_close_at_exit_in_creation_order(tmp_path):
    from gpu_summary import SummaryWriter
    from gpu_summary._writer import state as writer_state

    writers = [SummaryWriter(tmp_path / str(k), distributed=_ThreadCollective(_Room(1, 5.0), 0))
               for k in range(5)]  # fmt: skip
    opened = [w._state for w in writers]
    assert [s for s in writer_state._distributed_open if s in opened] == opened
    writer_state._close_distributed_at_exit()
    assert all(w.closed for w in writers)
    assert not any(s in writer_state._distributed_open for s in opened)
