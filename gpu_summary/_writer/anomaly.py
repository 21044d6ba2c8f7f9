"""``add_anomaly``: one reduction counts, locates and summarises what is wrong in a tensor;
the report reaches the Summary, the handle and ``on_anomaly`` without a sync."""

from __future__ import annotations

from gpu_summary._backend import backend_for, check_working_copy
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import arguments
from gpu_summary._core import ladder as _ladder
from gpu_summary._writer import jobs
from gpu_summary._writer.aggregation import dtype_name
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.anomaly import anomaly_summary


def log_anomaly(
    state: WriterState,
    tag: str,
    values: object,
    step: int | None = None,
    lower: float | None = None,
    upper: float | None = None,
    max_positions: int = 100,
    walltime: float | None = None,
) -> _anomaly.AnomalyHandle:
    """SummaryWriter.add_anomaly, on a writer's state; returns the handle."""
    tag, step, wall = state.begin(tag, step, walltime)
    lower = arguments.check_bound(lower, "lower")
    upper = arguments.check_bound(upper, "upper")
    if lower is not None and upper is not None and lower > upper:
        raise ValueError(f"lower ({lower}) must not exceed upper ({upper}); swap them")
    max_positions = arguments.check_count(max_positions, "max_positions", _anomaly.MAX_POSITIONS)
    backend, array = backend_for(values, "values")
    if int(getattr(array, "size", 1)) == 0:
        raise ValueError("values is empty; there is nothing to check")
    if backend is numpy_backend:  # the host's report keeps its finite values, as float64
        check_working_copy(array, 8 * array.size, "values", "add_anomaly's copy of them")
    pending = backend.anomaly(array, lower, upper, max_positions, _anomaly.HEATMAP_CELLS)
    step = state.resolve_step(tag, step)
    if state.aggregation is not None:
        pending = state.aggregation.anomaly(pending, tag, step, lower, upper, max_positions,
                                            dtype_name(array))  # fmt: skip
    handle = _anomaly.AnomalyHandle(pending, tag, step, lower, upper)

    def build() -> summary_pb2.Summary:
        return anomaly_summary(*handle.summary_parts(), lower, upper)

    held = 16 * max_positions + 24 * _anomaly.HEATMAP_CELLS**2 + 16 * _ladder.N_LIMITS
    state.enqueue("anomaly", tag, step, wall, build, nbytes=held)
    if state.on_anomaly is not None:
        state.events.add(jobs.anomaly_call_back(handle, state.on_anomaly))
    return handle
