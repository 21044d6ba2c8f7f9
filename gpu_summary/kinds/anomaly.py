"""``add_anomaly``: one reduction counts, locates and summarises what is wrong in a tensor;
the report reaches the Summary, the handle and ``on_anomaly`` without a sync."""

from __future__ import annotations

from collections.abc import Callable

from gpu_summary._backend import backend_for, check_working_copy
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import arguments
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.anomaly import AnomalyHandle, AnomalyReport
from gpu_summary._events.jobs import Job, JobKind
from gpu_summary._writer.aggregation import dtype_name
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.anomaly import anomaly_summary


def _call_back_anomaly(handle: AnomalyHandle, callback: Callable[[AnomalyReport], object]) -> None:
    found = handle.result()
    if found:
        callback(found)


_ANOMALY_CALL_BACK = JobKind("on_anomaly call back", _call_back_anomaly)


def anomaly_call_back(handle: AnomalyHandle, callback: Callable[[AnomalyReport], object]) -> Job:
    """``callback(report)`` when ``add_anomaly`` found anything; writes nothing."""
    return Job(_ANOMALY_CALL_BACK, (handle, callback), 0, f"on_anomaly for tag {handle.tag!r}")


class AnomalyMethods:
    """The anomaly check of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_anomaly(
        self,
        tag: str,
        values: object,
        global_step: int | None = None,
        lower: float | None = None,
        upper: float | None = None,
        max_positions: int = 100,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> AnomalyHandle:
        """Check a tensor for NaN, ±Inf and values out of bounds, and log what was found.

        One reduction (on the tensor's device, never syncing the caller) counts NaN, ±Inf and
        finite values below ``lower`` / above ``upper``, keeps the first ``max_positions``
        offending positions (C order), the exact quantiles 0, 5, 10, 25, 50, 75, 90, 95, 100 %
        of the finite values (``numpy.quantile``'s) and a heat map; logged under
        ``<tag>/anomaly/...`` and ``<tag>/quantile/...`` (``gpu_summary.summaries.anomaly``).

        Args:
            tag: the tensor's name, e.g. ``"grad/layer1.weight"``.
            values: array or tensor of any shape and numeric dtype.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            lower: optional finite lower bound, ``lower <= upper``, compared in float64.
            upper: optional finite upper bound, compared in float64.
            max_positions: most offending positions reported (0 .. 100000).
            walltime: seconds since the epoch; default now.

        Returns:
            An :class:`~gpu_summary.AnomalyHandle`: ``.result()`` waits for the
            :class:`~gpu_summary.AnomalyReport` (``on_anomaly`` gets it without waiting).

        Raises:
            TypeError: non-numeric ``values`` or bounds.
            ValueError: NaN or infinite bounds, ``lower > upper``, ``max_positions`` out of
                range, an empty tensor, a zero-stride view of billions of values on the host
                (its report keeps a float64 copy of the finite values); the writer is closed.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        lower = arguments.check_bound(lower, "lower")
        upper = arguments.check_bound(upper, "upper")
        if lower is not None and upper is not None and lower > upper:
            raise ValueError(f"lower ({lower}) must not exceed upper ({upper}); swap them")
        max_positions = arguments.check_count(
            max_positions, "max_positions", _anomaly.MAX_POSITIONS
        )
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
            state.events.add(anomaly_call_back(handle, state.on_anomaly))
        return handle
