"""``add_scalar`` beyond its hot path (``SummaryWriter.add_scalar`` writes a Python number
with a plain tag and step itself): device values, arrays, reductions across ranks."""

from __future__ import annotations

from gpu_summary import distributed as _distributed
from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState


def log_scalar(
    state: WriterState,
    tag: str,
    value: object,
    step: int | None = None,
    walltime: float | None = None,
    reduce: str = "mean",
    new_style: bool = False,
    double_precision: bool = False,
) -> None:
    """SummaryWriter.add_scalar for values other than plain numbers (or ``new_style``)."""
    tag, step, wall = state.begin(tag, step, walltime)
    if reduce not in _distributed.REDUCTIONS:
        raise ValueError(f"reduce must be one of {list(_distributed.REDUCTIONS)}, got {reduce!r}")
    if type(value) is int:  # beyond float64 it would become an object array: ±inf instead
        value = arguments.to_float(value)
    backend, array = backend_for(value, "scalar_value")
    if getattr(array, "size", 1) != 1:
        raise ValueError(
            f"scalar_value must be a single number, got an array of shape {tuple(array.shape)}; "
            "reduce it first (e.g. .mean()) or log it with add_histogram"
        )
    step = state.resolve_step(tag, step)
    pending = backend.scalar(array)
    if state.aggregation is not None:
        pending = state.aggregation.scalar(pending, tag, step, reduce)
    if new_style:
        state.events.add(jobs.pending_tensor_scalar(tag, pending, step, wall, double_precision))
    else:
        state.events.add(jobs.pending_scalar(tag, pending, step, wall))
