"""The merges a distributed SummaryWriter runs: local compact results -> the exact global one.

Each method takes the local reduction the caller's thread launched (a pending result), queues
the call's collectives on the writer's :class:`~gpu_summary.distributed.Aggregator`
and returns a pending merged result that every rank receives (rank 0 writes it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core.results import (
    AnomalyResult,
    HistogramResult,
    Pending,
    PrCounts,
    TensorStats,
)
from gpu_summary.distributed import Aggregator, Merged, call_id

_STATS_WORDS = 6  # count, sum, sum_squares, nan, posinf, neginf
_MAX_NDIM = 64  # NumPy's most dimensions: room for any shard's shape


def _stats_pack(stats: TensorStats) -> list[float]:
    return [stats.count, stats.sum, stats.sum_squares, stats.nan, stats.posinf, stats.neginf]


def _merged_stats(pack: np.ndarray, lo: float, hi: float) -> TensorStats:
    return TensorStats.of(pack[0], lo, hi, pack[1], pack[2], pack[3], pack[4], pack[5])


def _range(stats: TensorStats) -> tuple[float, float]:
    """This shard's [min, max] of finite values, (+inf, -inf) when it has none."""
    return (stats.min, stats.max) if stats.count else (math.inf, -math.inf)


@dataclasses.dataclass
class Aggregation:
    """A distributed writer's merges over one aggregator."""

    aggregator: Aggregator

    @property
    def rank(self) -> int:
        return self.aggregator.rank

    def _sum_histogram(
        self, local: HistogramResult, lo: float, hi: float, limits: np.ndarray
    ) -> HistogramResult:
        pack = np.concatenate([local.counts.astype(np.float64), _stats_pack(local.stats)])
        total = self.aggregator.collective.total(pack)
        counts = total[: local.counts.size].astype(np.int64)
        return HistogramResult(
            limits=limits, counts=counts, stats=_merged_stats(total[local.counts.size :], lo, hi)
        )

    def histogram(
        self, local: Pending[HistogramResult], tag: str, step: int, limits: np.ndarray | None
    ) -> Pending[HistogramResult]:
        """Every rank's ``local`` histogram over the same fixed ``limits`` (None: the ladder),
        summed."""
        mode, key = ("ladder", None) if limits is None else ("edges", call_id(*limits.tolist()))
        identity = call_id("histogram", tag, step, mode, key)
        description = f"add_histogram({tag!r}, step={step}, bins={mode} {key})"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            result = local.result()
            lo, hi = aggregator.check(identity, description, *_range(result.stats))
            merged.set(self._sum_histogram(result, lo, hi, result.limits))

        aggregator.submit(_delivering(task, merged))
        return merged

    def pr_counts(
        self, local: Pending[PrCounts], tag: str, step: int, thresholds: int
    ) -> Pending[PrCounts]:
        """Every rank's precision-recall bucket weights and left-out counts, summed (exact
        for integer weights: float64 sums of integers)."""
        identity = call_id("pr_curve", tag, step, thresholds)
        description = f"add_pr_curve({tag!r}, step={step}, num_thresholds={thresholds})"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            result = local.result()
            aggregator.check(identity, description, 0.0, 0.0)
            counts = [result.nan, result.below, result.above, result.pairs]
            total = aggregator.collective.total(np.concatenate([result.tp, result.fp, counts]))
            n = thresholds
            nan, below, above, pairs = (int(v) for v in total[2 * n :])
            merged.set(PrCounts(tp=total[:n], fp=total[n : 2 * n], nan=nan, below=below,
                                above=above, pairs=pairs))  # fmt: skip

        aggregator.submit(_delivering(task, merged))
        return merged

    def window(
        self, local: Pending[tuple], tag: str, step: int, slots: int, n_buckets: int
    ) -> Pending[tuple]:
        """A window's ``(counts or None, [stats of each step])`` summed over the ranks, step by
        step (the ranks' calls are in lockstep): one MIN collective of every step's range and
        one SUM of the counts and every step's moments, once per window."""
        identity = call_id("window", tag, step, slots, n_buckets)
        description = f"the window of {tag!r} ending at step {step} ({slots} steps)"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            counts, stats = local.result()
            ranges = [_range(s) for s in stats]
            lows, highs = aggregator.check_ranges(
                identity, description, [r[0] for r in ranges], [r[1] for r in ranges]
            )
            packs = [np.zeros(0) if counts is None else counts.astype(np.float64)]
            packs += [np.asarray(_stats_pack(s), np.float64) for s in stats]
            total = aggregator.collective.total(np.concatenate(packs))
            n = 0 if counts is None else counts.size
            per_step = total[n:].reshape(slots, _STATS_WORDS)
            merged.set((
                None if counts is None else total[:n].astype(np.int64),
                [_merged_stats(per_step[k], lows[k], highs[k]) for k in range(slots)],
            ))  # fmt: skip

        aggregator.submit(_delivering(task, merged))
        return merged

    def histogram_even(
        self,
        stats: Pending[TensorStats],
        count: Callable[[float, float], Pending[np.ndarray]],
        tag: str,
        step: int,
        bins: int,
    ) -> Pending[HistogramResult]:
        """``bins`` even buckets over the global [min, max]: ``stats`` is this rank's shard's,
        ``count(lo, hi)`` launches its counts once the global range is known (on the
        aggregation thread, over a private snapshot of the shard)."""
        identity = call_id("histogram", tag, step, "even", bins)
        description = f"add_histogram({tag!r}, step={step}, bins=even {bins})"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            local_stats = stats.result()
            lo, hi = aggregator.check(identity, description, *_range(local_stats))
            if lo <= hi:
                edges = numpy_backend.even_edges(lo, hi, bins)
                counts = np.zeros(bins, dtype=np.int64)
                if local_stats.count:
                    counts = count(lo, hi).result()
            else:  # no finite value on any rank
                edges = numpy_backend.even_edges(0.0, 1.0, bins)
                counts = np.zeros(bins, dtype=np.int64)
            local = HistogramResult(limits=edges[1:], counts=counts, stats=local_stats)
            merged.set(self._sum_histogram(local, lo, hi, edges[1:]))

        aggregator.submit(_delivering(task, merged))
        return merged

    def histograms(
        self, local: Pending[list[HistogramResult]], tags: list[str], step: int
    ) -> Merged:
        """Many ladder histograms (``local`` holds this rank's, in ``tags`` order) merged with
        one MIN collective of every range and one SUM of every pack; a Merged list."""
        identity = call_id("histograms", step, *tags)
        description = f"add_histograms({len(tags)} tensors from {tags[0]!r}, step={step})"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            results = local.result()
            ranges = [_range(result.stats) for result in results]
            lows, highs = aggregator.check_ranges(
                identity, description, [lo for lo, _ in ranges], [hi for _, hi in ranges]
            )
            packs = [
                np.concatenate([r.counts.astype(np.float64), _stats_pack(r.stats)]) for r in results
            ]
            total = aggregator.collective.total(np.concatenate(packs))
            out, offset = [], 0
            for k, result in enumerate(results):
                size = result.counts.size
                counts = total[offset : offset + size].astype(np.int64)
                pack = total[offset + size : offset + size + _STATS_WORDS]
                stats = _merged_stats(pack, float(lows[k]), float(highs[k]))
                out.append(HistogramResult(limits=result.limits, counts=counts, stats=stats))
                offset += size + _STATS_WORDS
            merged.set(out)

        aggregator.submit(_delivering(task, merged))
        return merged

    def scalar(self, pending: Pending[float], tag: str, step: int, reduce: str) -> Pending[float]:
        """One number from every rank, reduced (``mean``, ``sum``, ``min``, ``max``); for
        ``rank0``, this rank's own (no collective)."""
        if reduce == "rank0":
            return pending
        identity = call_id("scalar", tag, step, reduce)
        description = f"add_scalar({tag!r}, step={step}, reduce={reduce!r})"
        merged = Merged()
        aggregator = self.aggregator

        def task() -> None:
            value = float(pending.result())
            lo, hi = aggregator.check(identity, description, value, value)
            if reduce == "min":
                merged.set(lo)
            elif reduce == "max":
                merged.set(hi)
            else:
                total = float(aggregator.collective.total(np.array([value]))[0])
                merged.set(total / aggregator.size if reduce == "mean" else total)

        aggregator.submit(_delivering(task, merged))
        return merged

    def anomaly(
        self,
        pending: Pending[AnomalyResult],
        tag: str,
        step: int,
        lower: float | None,
        upper: float | None,
        max_positions: int,
    ) -> Pending[AnomalyResult]:
        """The anomaly report of every shard: counts and moments summed, positions gathered
        (tagged with their rank, in rank order, the first ``max_positions``), the histogram
        merged; quantiles and heat map stay rank 0's shard's."""
        identity = call_id("anomaly", tag, step, lower, upper, max_positions)
        description = f"add_anomaly({tag!r}, step={step})"
        merged = Merged()
        aggregator = self.aggregator
        collective = aggregator.collective

        def task() -> None:
            local = pending.result()
            local_histogram = local.histogram
            lo, hi = aggregator.check(identity, description, *_range(local.stats))
            pack = np.concatenate(
                [
                    [local.below, local.above],
                    _stats_pack(local.stats),
                    local_histogram.counts.astype(np.float64),
                ]
            )
            total = collective.total(pack)
            stats = _merged_stats(total[2 : 2 + _STATS_WORDS], lo, hi)
            counts = total[2 + _STATS_WORDS :].astype(np.int64)
            # [kept, ndim, shape padded to 64 dims, flat indices, values]
            head = 2 + _MAX_NDIM
            positions = np.zeros(head + 2 * max_positions)
            kept = local.positions.size
            positions[:2] = kept, len(local.shape)
            positions[2 : 2 + len(local.shape)] = local.shape
            positions[head : head + kept] = local.positions
            positions[head + max_positions : head + max_positions + kept] = local.position_values
            gathered = collective.gather(positions)
            flat, values, ranks, shapes = [], [], [], []
            for rank, part in enumerate(gathered):
                k, ndim = int(part[0]), int(part[1])
                shapes.append(tuple(int(n) for n in part[2 : 2 + ndim]))
                flat.append(part[head : head + k].astype(np.int64))
                values.append(part[head + max_positions : head + max_positions + k])
                ranks.append(np.full(k, rank, dtype=np.int64))
            keep = slice(0, max_positions)
            merged.set(
                dataclasses.replace(
                    local,
                    stats=stats,
                    histogram=HistogramResult(local_histogram.limits, counts, stats),
                    below=int(total[0]),
                    above=int(total[1]),
                    positions=np.concatenate(flat)[keep],
                    position_values=np.concatenate(values)[keep],
                    position_ranks=np.concatenate(ranks)[keep],
                    rank_shapes=tuple(shapes),
                    order_count=local.stats.count,
                )
            )

        aggregator.submit(_delivering(task, merged))
        return merged


def _delivering(task: Callable[[], None], merged: Merged) -> Callable[[], None]:
    """``task`` that fails ``merged`` when it raises (so nobody waits on it forever)."""

    def run() -> None:
        try:
            task()
        except BaseException as exc:
            merged.fail(exc)
            raise

    return run
