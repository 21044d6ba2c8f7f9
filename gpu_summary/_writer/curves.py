"""``add_pr_curve`` (counted on the backend that holds the predictions: one launch on a
device, two numbers per threshold copied back), ``add_pr_curve_raw``, and the Custom Scalars
layout (``add_custom_scalars`` and its two chart helpers)."""

from __future__ import annotations

import re
import time
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
from gpu_summary.summaries import custom_scalars as layout_summaries
from gpu_summary.summaries import pr_curve as pr_summaries

MAX_THRESHOLDS = pr_abi.MAX_THRESHOLDS
CHART_KINDS = ("Multiline", "Margin")


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


def log_pr_curve(
    state: WriterState,
    tag: object,
    labels: object,
    predictions: object,
    step: object,
    num_thresholds: object,
    weights: object,
    walltime: object,
) -> None:
    """SummaryWriter.add_pr_curve, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
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
        raise TypeError("labels must live where predictions do (both on the host, or both on "
                        "one device)")  # fmt: skip
    counts = backend.pr_counts(p, labels_array, weights_array, thresholds, prediction_dtype)
    if backend is numpy_backend:
        found = counts.result()
        if found.below or found.above:
            raise ValueError(
                f"predictions must lie in [0, 1]: {found.below} are below 0 and {found.above} "
                "above 1; pass probabilities (e.g. torch.sigmoid(logits))"
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


PR_ROWS = ("true_positive_counts", "false_positive_counts", "true_negative_counts",
           "false_negative_counts", "precision", "recall")  # fmt: skip


def log_pr_curve_raw(
    state: WriterState,
    tag: object,
    rows: tuple[object, ...],
    step: object,
    num_thresholds: object,
    walltime: object,
) -> None:
    """SummaryWriter.add_pr_curve_raw: six rows of one length, written as given (the curve
    has as many thresholds as the rows have entries)."""
    tag, step, wall = state.begin(tag, step, walltime)
    check_thresholds(num_thresholds)
    data = []
    for name, row in zip(PR_ROWS, rows, strict=True):
        array = host_numbers(row, name, arguments.MAX_BINS)  # a device row: a small copy
        if array.ndim != 1 or array.size < 2:
            raise ValueError(f"{name} has shape {array.shape}; give one value per threshold "
                             "(a 1-D array of at least 2)")  # fmt: skip
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


def check_layout(layout: object) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """``add_custom_scalars``' layout checked: ``{category: {chart: [kind, tags]}}`` with
    kind "Multiline" (tags: regular expressions) or "Margin" (tags: value, lower, upper)."""
    if not isinstance(layout, dict) or not layout:
        raise TypeError("layout must be a non-empty dict {category: {chart title: "
                        "['Multiline' or 'Margin', [tags]]}}")  # fmt: skip
    checked: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for category, charts in layout.items():
        where = f"layout[{category!r}]"
        if not isinstance(category, str):
            raise TypeError(f"layout's category names must be str, got {category!r}")
        if not isinstance(charts, dict) or not charts:
            raise TypeError(f"{where} must be a non-empty dict {{chart title: [kind, tags]}}")
        checked[category] = {}
        for title, spec in charts.items():
            here = f"{where}[{title!r}]"
            if not isinstance(title, str):
                raise TypeError(f"{where}'s chart titles must be str, got {title!r}")
            if not isinstance(spec, (list, tuple)) or len(spec) != 2:
                raise TypeError(f"{here} must be [kind, tags], e.g. ['Multiline', ['loss/.*']]")
            kind, tags = spec
            if kind not in CHART_KINDS:
                raise ValueError(f"{here}'s kind must be 'Multiline' or 'Margin', got {kind!r}")
            if isinstance(tags, str) or not isinstance(tags, (list, tuple)) or not tags \
                    or not all(isinstance(t, str) and t for t in tags):  # fmt: skip
                raise TypeError(f"{here}'s tags must be a non-empty list of tag names, got "
                                f"{tags!r}")  # fmt: skip
            if kind == "Margin" and len(tags) != 3:
                raise ValueError(f"{here} is a Margin chart: give 3 tags (value, lower, upper), "
                                 f"got {len(tags)}")  # fmt: skip
            if kind == "Multiline":
                for pattern in tags:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(
                            f"{here}: tag {pattern!r} is not a regular "
                            f"expression ({exc}); escape it with re.escape"
                        ) from None
            checked[category][title] = (kind, list(tags))
    return checked


def log_custom_scalars(state: WriterState, layout: object) -> None:
    """SummaryWriter.add_custom_scalars: merged into the run's layout (a category's charts
    added, a chart of the same title replaced), and the whole layout written again."""
    state.check_open()
    checked = check_layout(layout)
    with state.steps_lock:
        for category, charts in checked.items():
            state.custom_layout.setdefault(category, {}).update(charts)
        merged = {category: dict(charts) for category, charts in state.custom_layout.items()}
        version = state.custom_layout_writes
        state.custom_layout_writes += 1
    if not state.writes_files:
        return
    message = layout_summaries.layout_message(merged)
    state.enqueue("custom scalars layout", layout_summaries.CONFIG_TAG, version, time.time(),
                  lambda: layout_summaries.layout_summary(message))  # fmt: skip
