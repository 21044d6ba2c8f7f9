"""Histograms: the legacy ``HistogramProto`` that TensorBoard's Histograms and Distributions
dashboards read (both the Python and the Rust loader).

TensorBoard draws bucket i from ``bucket_limit[i-1]`` (``min`` for the first) to
``bucket_limit[i]``. Only the span from the first to the last non-empty bucket is emitted: an
empty outer bucket would have no meaningful left edge (the Rust loader draws it backwards). On
the default ladder, each run of empty buckets inside the span is collapsed into one bucket
(limit: the run's last limit), as TensorFlow does, so that 1551 fixed buckets cost only as many
as the data touches. Buckets the caller chose (``bins=int`` or edges) are all kept.
"""

from __future__ import annotations

import numpy as np

from gpu_summary._core.results import HistogramResult
from gpu_summary._events.wire import histogram_proto_bytes, histogram_value_bytes
from gpu_summary.proto import histogram_pb2, summary_pb2


def histogram_proto(
    result: HistogramResult, collapse_empty_runs: bool
) -> histogram_pb2.HistogramProto:
    """The HistogramProto of a backend result.

    Args:
        result: counts over fixed limits and the stats of the finite values.
        collapse_empty_runs: collapse runs of empty buckets inside the span (default ladder).
    """
    proto = histogram_pb2.HistogramProto()
    fill_histogram(proto, result, collapse_empty_runs)
    return proto


def fill_histogram(
    proto: histogram_pb2.HistogramProto, result: HistogramResult, collapse_empty_runs: bool
) -> None:
    """Set an empty HistogramProto (a new one, or a Summary value's ``histo`` in place: no
    copy) to a backend result, as :func:`histogram_proto` describes."""
    stats = result.stats
    proto.min = stats.min
    proto.max = stats.max
    proto.num = float(stats.count)
    proto.sum = stats.sum
    proto.sum_squares = stats.sum_squares
    limits, counts = _buckets(result, collapse_empty_runs)
    proto.bucket_limit.extend(limits.tolist())
    proto.bucket.extend(counts.tolist())


def histogram_bytes(result: HistogramResult, collapse_empty_runs: bool) -> bytes:
    """:func:`histogram_proto` serialized, the same bytes, made without building the message
    (the writer thread's share of a histogram: a few microseconds instead of some 50)."""
    stats = result.stats
    numbers = (stats.min, stats.max, float(stats.count), stats.sum, stats.sum_squares)
    return histogram_proto_bytes(numbers, *_buckets(result, collapse_empty_runs))


def histogram_summary_bytes(tag: str, result: HistogramResult, collapse_empty_runs: bool) -> bytes:
    """:func:`histogram_summary` serialized (concatenated, several make one Summary)."""
    return histogram_value_bytes(tag, histogram_bytes(result, collapse_empty_runs))


def _buckets(result: HistogramResult, collapse_empty_runs: bool) -> tuple[np.ndarray, np.ndarray]:
    """The limits and counts (float64) a record holds: the span from the first to the last
    non-empty bucket, runs of empty buckets collapsed into their last on request; one empty
    bucket at 0 when no value is finite (readers expect a bucket)."""
    nonzero = np.flatnonzero(result.counts)
    if nonzero.size == 0:
        return np.zeros(1), np.zeros(1)
    first, last = int(nonzero[0]), int(nonzero[-1])
    counts = result.counts[first : last + 1]
    limits = result.limits[first : last + 1]
    if collapse_empty_runs:
        filled = counts > 0
        keep = filled.copy()
        keep[:-1] |= filled[1:]  # an empty bucket survives only as the last of its run
        counts, limits = counts[keep], limits[keep]
    return np.asarray(limits, np.float64), counts.astype(np.float64)


def histogram_summary(
    tag: str, result: HistogramResult, collapse_empty_runs: bool
) -> summary_pb2.Summary:
    """A Summary holding one histogram (see :func:`histogram_proto`), built in place."""
    summary = summary_pb2.Summary()
    fill_histogram(summary.value.add(tag=tag).histo, result, collapse_empty_runs)
    return summary


def merge_buckets(result: HistogramResult, max_bins: int) -> HistogramResult:
    """``result`` with runs of neighbouring buckets summed so that at most ``max_bins`` remain
    (torch's ``max_bins``): each run of ceil(n / max_bins) buckets becomes one whose upper limit
    is the run's last. Counts are exact; the stats are the same."""
    n = result.counts.size
    if n <= max_bins:
        return result
    run = -(-n // max_bins)
    groups = -(-n // run)
    padded = np.zeros(groups * run, dtype=np.int64)
    padded[:n] = result.counts
    counts = padded.reshape(groups, run).sum(axis=1)
    limits = result.limits[np.minimum(np.arange(1, groups + 1) * run, n) - 1]
    return HistogramResult(limits=limits, counts=counts, stats=result.stats)
