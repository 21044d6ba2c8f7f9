"""``add_pr_curve`` (counted on the backend that holds the predictions: one launch on a
device, two numbers per threshold copied back) and ``add_pr_curve_raw`` (six rows computed
elsewhere, written as given)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from gpu_summary._backend import backend_for, host_numbers
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.cuda_kernels import pr_curve as pr_abi
from gpu_summary._backend.numpy import arrays as host_arrays
from gpu_summary._core import arguments
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.results import PrCounts
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.distributed import AggregationFailed
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import pr_curve as pr_summaries

MAX_THRESHOLDS = pr_abi.MAX_THRESHOLDS
PR_ROWS = ("true_positive_counts", "false_positive_counts", "true_negative_counts",
           "false_negative_counts", "precision", "recall")  # fmt: skip


def check_thresholds(num_thresholds: object) -> int:
    """``num_thresholds``, an int in [2, MAX_THRESHOLDS]."""
    count = arguments.check_count(num_thresholds, "num_thresholds", MAX_THRESHOLDS)
    if count < 2:
        raise ValueError(f"num_thresholds must be at least 2, got {count}")
    return count


def _prediction_dtype(predictions: object) -> str | None:
    """The predictions' dtype name where the backend would widen it (bfloat16)."""
    name = str(getattr(predictions, "dtype", ""))
    if host_arrays.is_narrow_float(name):
        if name.rpartition(".")[2] != "bfloat16":
            raise TypeError(f"predictions has dtype {name}, too narrow to place among "
                            "thresholds; convert it to float32")  # fmt: skip
        return "bfloat16"
    return None


def _same_size(array: object, size: int, argument: str) -> None:
    if array.size != size:
        raise ValueError(f"{argument} has {array.size} elements (shape {tuple(array.shape)}) "
                         f"but predictions {size}; give one per prediction")  # fmt: skip


def report_skipped(
    counts: PrCounts, tag: str, step: int, on_anomaly: Callable[[AnomalyReport], object] | None
) -> None:
    """Tell ``on_anomaly`` (or warn) that pairs were left out of a curve."""
    if not counts.skipped:
        return
    if on_anomaly is None:
        warnings.warn(f"add_pr_curve({tag!r}, step {step}): {counts.nan} pairs with a NaN "
                      f"prediction or non-finite label or weight, {counts.below} predictions "
                      f"below 0 and {counts.above} above 1 were left out of the curve",
                      RuntimeWarning, stacklevel=1)  # fmt: skip
        return
    on_anomaly(AnomalyReport(tag=tag, step=step, nan=counts.nan, posinf=0, neginf=0,
                             below=counts.below, above=counts.above,
                             count=counts.pairs - counts.skipped,
                             positions=(), quantiles={}, whiskers=None,
                             heatmap=np.zeros((0, 0)), tensors=(tag,)))  # fmt: skip


class PrCurveMethods:
    """The precision-recall curve methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_pr_curve(
        self,
        tag: str,
        labels: object,
        predictions: object,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: object = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log a precision-recall curve (TensorBoard's PR Curves dashboard).

        Args:
            tag: series name.
            labels: one per prediction, bool or 0/1 (soft labels l count l positive and
                1 − l negative, as torch's); paired with predictions in C order.
            predictions: probabilities in [0, 1], any float dtype, host or device.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            num_thresholds: thresholds i / (n − 1), 2 ≤ n ≤ 1024 (torch caps it at 127).
            weights: one weight per prediction, or None for 1.
            walltime: seconds since the epoch; default now.

        The counts are one reduction on the predictions' backend: a single kernel launch on a
        device, 2 × num_thresholds numbers copied back (no sync); NumPy on the host. Equal to
        torch's ``add_pr_curve`` (counts exact for 0/1 labels and integer weights).

        NaN predictions (and non-finite labels or weights) are counted, left out of the curve,
        and reported to ``on_anomaly`` (else a RuntimeWarning). A host prediction outside
        [0, 1] is a ValueError at the call; on a device (where checking would wait for it)
        those are left out and reported the same way.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        thresholds = check_thresholds(num_thresholds)
        prediction_dtype = _prediction_dtype(predictions)
        backend, p = backend_for(predictions, "predictions")
        if p.size == 0:
            raise ValueError("predictions is empty; a curve needs at least one prediction")
        label_backend, labels_array = backend_for(labels, "labels")
        _same_size(labels_array, p.size, "labels")
        weights_array = None
        if weights is not None:
            weight_backend, weights_array = backend_for(weights, "weights")
            _same_size(weights_array, p.size, "weights")
            if weight_backend is not backend:
                raise TypeError("weights must live where predictions do (both on the host, or "
                                "both on one device)")  # fmt: skip
        if label_backend is not backend:
            raise TypeError("labels must live where predictions do (both on the host, or both "
                            "on one device)")  # fmt: skip
        counts = backend.pr_counts(p, labels_array, weights_array, thresholds, prediction_dtype)
        if backend is numpy_backend:
            found = counts.result()
            if found.below or found.above:
                raise ValueError(
                    f"predictions must lie in [0, 1]: {found.below} are below 0 and "
                    f"{found.above} above 1; pass probabilities (e.g. torch.sigmoid(logits))"
                )
        step = state.resolve_step(tag, step)
        if state.aggregation is not None:  # every rank's counts summed: the curve of all shards
            counts = state.aggregation.pr_counts(counts, tag, step, thresholds)
        on_anomaly = state.on_anomaly
        if not state.writes_files:
            return

        def build() -> summary_pb2.Summary:
            found = counts.result()
            return pr_summaries.pr_curve_summary(tag, pr_summaries.curve(found.tp, found.fp))

        def report() -> None:
            try:
                found = counts.result()
            except AggregationFailed:
                return
            report_skipped(found, tag, step, on_anomaly)

        state.enqueue_merged("pr curve", tag, step, wall, build, nbytes=16 * thresholds)
        # A job of its own: a callback that raises never costs the curve its record.
        state.add_merged(jobs.call_back(report, f"on_anomaly for the PR curve {tag!r}"))

    def add_pr_curve_raw(
        self,
        tag: str,
        true_positive_counts: object,
        false_positive_counts: object,
        true_negative_counts: object,
        false_negative_counts: object,
        precision: object,
        recall: object,
        global_step: int | None = None,
        num_thresholds: int = 127,
        weights: object = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log a precision-recall curve computed elsewhere: six 1-D rows of one length (the
        curve's thresholds, at most 2**20, whatever ``num_thresholds`` says; ``weights`` is
        unused, as in torch's). Lists, arrays or tensors (a device row is copied back)."""
        state = self._state
        rows = (true_positive_counts, false_positive_counts, true_negative_counts,
                false_negative_counts, precision, recall)  # fmt: skip
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        check_thresholds(num_thresholds)
        data = []
        for name, row in zip(PR_ROWS, rows, strict=True):
            array = host_numbers(row, name, arguments.MAX_BINS)  # a device row: a small copy
            if array.ndim != 1 or array.size < 2:
                raise ValueError(f"{name} has shape {array.shape}; give one value per "
                                 "threshold (a 1-D array of at least 2)")  # fmt: skip
            if data and array.size != data[0].size:
                raise ValueError(f"{name} has {array.size} values but {PR_ROWS[0]} "
                                 f"{data[0].size}; give the six rows one length")  # fmt: skip
            data.append(array)
        curve = np.stack(data)
        if not state.writes_files:
            return

        def build() -> summary_pb2.Summary:
            return pr_summaries.pr_curve_summary(tag, curve)

        state.enqueue("pr curve", tag, step, wall, build, nbytes=curve.nbytes)
