"""The merges a distributed SummaryWriter runs: local compact results -> the exact global one.

Each method takes the local reduction the caller's thread launched (a pending result), adds
its :class:`~gpu_summary._distributed.exchange.Merge` to the step's batch on the writer's
:class:`~gpu_summary._distributed.exchange.Exchange`, and returns the pending merged result
that every rank receives (rank 0 writes it). The words each kind puts in the two packs:

=============================  ====================================  =============================
call                           MIN pack                              SUM pack
=============================  ====================================  =============================
histogram (ladder, edges)      min, -max, first and -last non-empty  counts of the buckets between
                               bucket                                every rank's first and last,
                                                                     6 moments and counts
histogram ``bins=n``           min, -max                             n counts, 6
``add_histograms``             4 per tensor                          as a histogram, per tensor
scalar mean / sum              —                                     the value
scalar min / max               the value (negated for max), -NaN     —
PR curve                       —                                     2 per threshold, 4 counts
window of K steps              2 per step (+2: the span)             span counts, 6 per step
anomaly report                 4, each rank's kept count (1 a rank)  span counts, 8, first
                               and -ndim                             positions (3 + ndim each)
=============================  ====================================  =============================

Counts travel as float64: exact up to 2**53.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Callable

import numpy as np

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core.results import (
    AnomalyResult,
    Derived,
    HistogramResult,
    Pending,
    PrCounts,
    TensorStats,
)
from gpu_summary._distributed.exchange import Exchange
from gpu_summary._distributed.merge import Merge, Merged

_STATS_WORDS = 6  # count, sum, sum_squares, nan, posinf, neginf


def _stats_words(stats: TensorStats) -> list[float]:
    return [stats.count, stats.sum, stats.sum_squares, stats.nan, stats.posinf, stats.neginf]


def _merged_stats(words: np.ndarray, lo: float, hi: float) -> TensorStats:
    return TensorStats.of(words[0], lo, hi, words[1], words[2], words[3], words[4], words[5])


def _range_words(stats: TensorStats) -> list[float]:
    """``[min, -max]`` of a shard's finite values; ``[inf, inf]`` when it has none."""
    return [stats.min, -stats.max] if stats.count else [math.inf, math.inf]


def _span_words(counts: np.ndarray) -> list[float]:
    """``[first, -last]`` non-empty bucket; ``[size, 1]`` (an empty span) when none is."""
    filled = np.flatnonzero(counts)
    return [float(filled[0]), -float(filled[-1])] if filled.size else [float(counts.size), 1.0]


def _span(words: np.ndarray) -> slice:
    """The global span from the MIN of :func:`_span_words` (empty: ``slice(0, 0)``)."""
    first, last = int(words[0]), int(-words[1])
    return slice(first, last + 1) if first <= last else slice(0, 0)


def _span_size(words: np.ndarray) -> int:
    span = _span(words)
    return span.stop - span.start


def _unspan(words: np.ndarray, span: slice, size: int) -> np.ndarray:
    counts = np.zeros(size, dtype=np.int64)
    counts[span] = words
    return counts


def dtype_name(array: object) -> str:
    """The dtype of a backend's array, as the header compares it (``float32``, ...)."""
    name = getattr(array, "dtype_name", None)
    if not isinstance(name, str):
        name = str(getattr(array, "dtype", type(array).__name__))
    return name.rpartition(".")[2]  # torch.float32 -> float32


class HistogramsMerge(Merge):
    """Fixed-bucket histograms (the ladder or edges): ranges by MIN, counts by SUM over the
    buckets between the first and last any rank filled."""

    def __init__(self, local: Pending[list[HistogramResult]], count: int, signature: str,
                 description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self.min_words = 4 * count
        self._local = local
        self._results: list[HistogramResult] = []

    def prepare(self) -> np.ndarray:
        self._results = list(self._local.result())
        words: list[float] = []
        for result in self._results:
            words += _range_words(result.stats) + _span_words(result.counts)
        return np.array(words)

    def sum_size(self, mins: np.ndarray) -> int:
        return sum(_span_size(mins[4 * k + 2 : 4 * k + 4]) + _STATS_WORDS
                   for k in range(len(self._results)))  # fmt: skip

    def sums(self, mins: np.ndarray) -> np.ndarray:
        parts = []
        for k, result in enumerate(self._results):
            parts.append(result.counts[_span(mins[4 * k + 2 : 4 * k + 4])].astype(np.float64))
            parts.append(np.array(_stats_words(result.stats)))
        return np.concatenate(parts) if parts else np.zeros(0)

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> list[HistogramResult]:
        out, offset = [], 0
        for k, result in enumerate(self._results):
            lo, hi = float(mins[4 * k]), -float(mins[4 * k + 1])
            span = _span(mins[4 * k + 2 : 4 * k + 4])
            width = span.stop - span.start
            counts = _unspan(sums[offset : offset + width], span, result.counts.size)
            stats = _merged_stats(sums[offset + width : offset + width + _STATS_WORDS], lo, hi)
            out.append(HistogramResult(limits=result.limits, counts=counts, stats=stats))
            offset += width + _STATS_WORDS
        return out


class EvenHistogramMerge(Merge):
    """``bins`` even buckets over the global range: counted once the MIN pack gave it (over a
    private snapshot of the shard, on the exchange thread)."""

    min_words = 2

    def __init__(self, stats: Pending[TensorStats], count: Callable[[float, float], Pending],
                 bins: int, signature: str, description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._pending, self._count, self._bins = stats, count, bins
        self._stats: TensorStats | None = None

    def prepare(self) -> np.ndarray:
        self._stats = self._pending.result()
        return np.array(_range_words(self._stats))

    def sum_size(self, mins: np.ndarray) -> int:
        return self._bins + _STATS_WORDS

    def sums(self, mins: np.ndarray) -> np.ndarray:
        lo, hi = float(mins[0]), -float(mins[1])
        counts = np.zeros(self._bins)
        if lo <= hi and self._stats.count:
            counts = np.asarray(self._count(lo, hi).result(), dtype=np.float64)
        return np.concatenate([counts, _stats_words(self._stats)])

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> HistogramResult:
        lo, hi = float(mins[0]), -float(mins[1])
        if lo <= hi:
            edges = numpy_backend.even_edges(lo, hi, self._bins)
        else:  # no finite value on any rank
            edges = numpy_backend.even_edges(0.0, 1.0, self._bins)
        stats = _merged_stats(sums[self._bins :], lo, hi)
        counts = sums[: self._bins].astype(np.int64)
        return HistogramResult(limits=edges[1:], counts=counts, stats=stats)


class ScalarMerge(Merge):
    """One number from every rank: ``mean`` and ``sum`` by SUM; ``min`` and ``max`` by MIN
    (NaN on any rank gives NaN, as NumPy's min and max of the values would)."""

    def __init__(self, pending: Pending[float], reduce: str, size: int, signature: str,
                 description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._pending, self._reduce, self._size = pending, reduce, size
        self.min_words = 2 if reduce in ("min", "max") else 0
        self._value = math.nan

    def prepare(self) -> np.ndarray:
        self._value = float(self._pending.result())
        if not self.min_words:
            return np.zeros(0)
        nan = math.isnan(self._value)
        value = self._value if self._reduce == "min" else -self._value
        return np.array([math.inf if nan else value, -float(nan)])

    def sum_size(self, mins: np.ndarray) -> int:
        return 0 if self.min_words else 1

    def sums(self, mins: np.ndarray) -> np.ndarray:
        return np.zeros(0) if self.min_words else np.array([self._value])

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> float:
        if self.min_words:
            if mins[1] < 0:
                return math.nan
            return float(mins[0]) if self._reduce == "min" else -float(mins[0])
        total = float(sums[0])
        return total / self._size if self._reduce == "mean" else total


class PrMerge(Merge):
    """Precision-recall bucket weights and left-out counts, summed (exact for integer
    weights: float64 sums of integers)."""

    def __init__(self, pending: Pending[PrCounts], thresholds: int, signature: str,
                 description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._pending, self._thresholds = pending, thresholds
        self._result: PrCounts | None = None

    def prepare(self) -> np.ndarray:
        self._result = self._pending.result()
        return np.zeros(0)

    def sum_size(self, mins: np.ndarray) -> int:
        return 2 * self._thresholds + 4

    def sums(self, mins: np.ndarray) -> np.ndarray:
        r = self._result
        return np.concatenate([r.tp, r.fp, [r.nan, r.below, r.above, r.pairs]])

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> PrCounts:
        n = self._thresholds
        nan, below, above, pairs = (int(v) for v in sums[2 * n :])
        return PrCounts(tp=sums[:n], fp=sums[n : 2 * n], nan=nan, below=below, above=above,
                        pairs=pairs)  # fmt: skip


class WindowMerge(Merge):
    """A window's ``(counts or None, [stats of each step])``, summed over the ranks step by
    step (the ranks' calls are in lockstep)."""

    def __init__(self, local: Pending[tuple], slots: int, buckets: int, signature: str,
                 description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._local, self._slots, self._buckets = local, slots, buckets
        self.min_words = 2 * slots + (2 if buckets else 0)
        self._counts: np.ndarray | None = None
        self._stats: list[TensorStats] = []

    def prepare(self) -> np.ndarray:
        self._counts, stats = self._local.result()
        self._stats = list(stats)
        words: list[float] = []
        for s in self._stats:
            words += _range_words(s)
        if self._buckets:
            words += _span_words(self._counts)
        return np.array(words)

    def sum_size(self, mins: np.ndarray) -> int:
        span = _span_size(mins[2 * self._slots :]) if self._buckets else 0
        return span + _STATS_WORDS * self._slots

    def sums(self, mins: np.ndarray) -> np.ndarray:
        parts = [np.array(_stats_words(s)) for s in self._stats]
        if self._buckets:
            span = _span(mins[2 * self._slots :])
            parts.insert(0, self._counts[span].astype(np.float64))
        return np.concatenate(parts)

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> tuple:
        counts, offset = None, 0
        if self._buckets:
            span = _span(mins[2 * self._slots :])
            offset = span.stop - span.start
            counts = _unspan(sums[:offset], span, self._counts.size)
        per_step = sums[offset:].reshape(self._slots, _STATS_WORDS)
        stats = [_merged_stats(per_step[k], float(mins[2 * k]), -float(mins[2 * k + 1]))
                 for k in range(self._slots)]  # fmt: skip
        return counts, stats


class AnomalyMerge(Merge):
    """An anomaly report of every shard: counts and moments summed, the histogram merged,
    the first ``max_positions`` positions in rank order gathered (each rank writes its own
    into the SUM pack at the offset the others' kept counts give, -0.0 elsewhere, so the sum
    is exact); quantiles and heat map stay rank 0's shard's."""

    def __init__(self, pending: Pending[AnomalyResult], max_positions: int, rank: int,
                 size: int, signature: str, description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._pending, self._most, self._rank, self._size = pending, max_positions, rank, size
        self.min_words = 4 + size + 1  # range, span, each rank's kept count, -ndim
        self._local: AnomalyResult | None = None

    def prepare(self) -> np.ndarray:
        local = self._local = self._pending.result()
        kept = np.full(self._size, math.inf)
        kept[self._rank] = local.positions.size
        return np.concatenate([_range_words(local.stats), _span_words(local.histogram.counts),
                               kept, [-float(len(local.shape))]])  # fmt: skip

    def _layout(self, mins: np.ndarray) -> tuple[slice, int, int, np.ndarray]:
        """(bucket span, positions kept, words a position, each rank's first slot)."""
        kept = mins[4 : 4 + self._size].astype(np.int64)
        starts = np.concatenate([[0], np.cumsum(kept)[:-1]])
        return _span(mins[2:4]), int(min(kept.sum(), self._most)), 3 + int(-mins[-1]), starts

    def sum_size(self, mins: np.ndarray) -> int:
        span, taken, width, _ = self._layout(mins)
        return (span.stop - span.start) + 2 + _STATS_WORDS + taken * width

    def sums(self, mins: np.ndarray) -> np.ndarray:
        local = self._local
        span, taken, width, starts = self._layout(mins)
        slots = np.full((taken, width), -0.0)  # x + -0.0 == x for every x, -0.0 included
        start = int(starts[self._rank])
        mine = max(0, min(local.positions.size, taken - start))
        if mine:
            ndim = len(local.shape)
            rows = slots[start : start + mine]
            rows[:, 0] = self._rank
            rows[:, 1] = local.positions[:mine]
            rows[:, 2] = local.position_values[:mine]
            rows[:, 3 : 3 + ndim] = local.shape
        head = [local.below, local.above, *_stats_words(local.stats)]
        counts = local.histogram.counts[span].astype(np.float64)
        return np.concatenate([counts, head, slots.reshape(-1)])

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> AnomalyResult:
        local = self._local
        span, taken, width, _ = self._layout(mins)
        size = span.stop - span.start
        lo, hi = float(mins[0]), -float(mins[1])
        stats = _merged_stats(sums[size + 2 : size + 2 + _STATS_WORDS], lo, hi)
        counts = _unspan(sums[:size], span, local.histogram.counts.size)
        slots = sums[size + 2 + _STATS_WORDS :].reshape(taken, width)
        ranks = slots[:, 0].astype(np.int64)
        shapes: list[tuple[int, ...]] = [() for _ in range(self._size)]
        ndims = np.zeros(self._size, dtype=np.int64)
        for row, rank in zip(slots, ranks, strict=True):
            shape = tuple(int(n) for n in row[3:] if n)
            if ndims[rank] == 0:
                shapes[rank], ndims[rank] = shape, 1
        return dataclasses.replace(
            local,
            stats=stats,
            histogram=HistogramResult(local.histogram.limits, counts, stats),
            below=int(sums[size]),
            above=int(sums[size + 1]),
            positions=slots[:, 1].astype(np.int64),
            position_values=slots[:, 2].copy(),
            position_ranks=ranks,
            rank_shapes=tuple(shapes),
            order_count=local.stats.count,
        )


@dataclasses.dataclass
class Aggregation:
    """A distributed writer's merges over one exchange."""

    exchange: Exchange

    @property
    def rank(self) -> int:
        return self.exchange.rank

    def _add(self, merge: Merge, step: int) -> Merged:
        self.exchange.add(merge, step)
        return merge.merged

    def histogram(self, local: Pending[HistogramResult], tag: str, step: int,
                  limits: np.ndarray | None, dtype: str) -> Pending[HistogramResult]:  # fmt: skip
        """Every rank's ``local`` histogram over the same fixed ``limits`` (None: the
        ladder), summed."""
        bins = _bins(limits)
        signature = f"histogram\x1f{tag}\x1f{step}\x1f{bins}\x1f{dtype}"
        description = f"add_histogram({tag!r}, step={step}, bins={bins}, {dtype})"
        merged = self._add(HistogramsMerge(Derived(lambda: [local.result()]), 1, signature,
                                           description), step)  # fmt: skip
        return Derived(lambda: merged.result()[0])

    def histogram_even(self, stats: Pending[TensorStats],
                       count: Callable[[float, float], Pending[np.ndarray]], tag: str, step: int,
                       bins: int, dtype: str) -> Pending[HistogramResult]:  # fmt: skip
        """``bins`` even buckets over the global [min, max]: ``stats`` is this rank's shard's,
        ``count(lo, hi)`` launches its counts once the global range is known."""
        signature = f"histogram\x1f{tag}\x1f{step}\x1feven {bins}\x1f{dtype}"
        description = f"add_histogram({tag!r}, step={step}, bins={bins}, {dtype})"
        return self._add(EvenHistogramMerge(stats, count, bins, signature, description), step)

    def histograms(self, local: Pending[list[HistogramResult]], tags: list[str], step: int,
                   dtypes: list[str]) -> Merged:  # fmt: skip
        """Many ladder histograms (``local`` holds this rank's, in ``tags`` order) in one
        merge; a Merged list."""
        signature = "\x1e".join(f"histograms\x1f{t}\x1f{step}\x1f{d}"
                                for t, d in zip(tags, dtypes, strict=True))  # fmt: skip
        shown = ", ".join(f"{t!r} {d}" for t, d in zip(tags[:4], dtypes, strict=False))
        more = f" and {len(tags) - 4} more" if len(tags) > 4 else ""
        description = f"add_histograms({shown}{more}, step={step})"
        return self._add(HistogramsMerge(local, len(tags), signature, description), step)

    def scalar(self, pending: Pending[float], tag: str, step: int, reduce: str) -> Pending[float]:
        """One number from every rank, reduced (``mean``, ``sum``, ``min``, ``max``); for
        ``rank0``, this rank's own (no collective)."""
        if reduce == "rank0":
            return pending
        signature = f"scalar\x1f{tag}\x1f{step}\x1f{reduce}"
        description = f"add_scalar({tag!r}, step={step}, reduce={reduce!r})"
        merge = ScalarMerge(pending, reduce, self.exchange.size, signature, description)
        return self._add(merge, step)

    def pr_counts(self, local: Pending[PrCounts], tag: str, step: int,
                  thresholds: int) -> Pending[PrCounts]:  # fmt: skip
        """Every rank's precision-recall bucket weights and left-out counts, summed."""
        signature = f"pr_curve\x1f{tag}\x1f{step}\x1f{thresholds}"
        description = f"add_pr_curve({tag!r}, step={step}, num_thresholds={thresholds})"
        return self._add(PrMerge(local, thresholds, signature, description), step)

    def window(self, local: Pending[tuple], tag: str, step: int, slots: int, buckets: int,
               limits: np.ndarray | None = None) -> Pending[tuple]:  # fmt: skip
        """A window's ``(counts or None, [stats of each step])`` summed over the ranks
        (``buckets`` 0: a scalar's; ``limits`` None: the ladder's)."""
        kind = "histogram" if buckets else "scalar"
        bins = _bins(limits) if buckets else "-"
        signature = f"window\x1f{tag}\x1f{step}\x1f{slots}\x1f{bins}"
        shown = f", bins={bins}" if buckets else ""
        description = f"the {kind} window of {tag!r} ending at step {step} ({slots} steps{shown})"
        return self._add(WindowMerge(local, slots, buckets, signature, description), step)

    def anomaly(self, pending: Pending[AnomalyResult], tag: str, step: int,
                lower: float | None, upper: float | None, max_positions: int,
                dtype: str) -> Pending[AnomalyResult]:  # fmt: skip
        """The anomaly report of every shard (see :class:`AnomalyMerge`). Seals the step's
        batch, so that the caller may wait for the report."""
        signature = (
            f"anomaly\x1f{tag}\x1f{step}\x1f{lower}\x1f{upper}\x1f{max_positions}\x1f{dtype}"
        )
        description = f"add_anomaly({tag!r}, step={step}, {dtype})"
        exchange = self.exchange
        merge = AnomalyMerge(pending, max_positions, exchange.rank, exchange.size, signature,
                             description)  # fmt: skip
        merged = self._add(merge, step)
        exchange.seal()
        return merged


def _bins(limits: np.ndarray | None) -> str:
    """Fixed buckets as the header compares them: the ladder, or the edges by size and hash."""
    if limits is None:
        return "tensorflow"
    data = np.ascontiguousarray(limits, np.float64).tobytes()
    return f"{limits.size} edges {hashlib.blake2b(data, digest_size=4).hexdigest()}"
