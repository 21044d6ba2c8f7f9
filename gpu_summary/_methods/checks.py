"""Anomaly checks: NaN, ±Inf and out-of-bound values, found on the tensor's backend."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._core.anomaly import AnomalyHandle
from gpu_summary._writer import anomaly
from gpu_summary._writer.state import WriterState


class CheckMethods:
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
            lower, upper: optional finite bounds, ``lower <= upper``, compared in float64.
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
        global_step = arguments.either_step(global_step, step)
        return anomaly.log_anomaly(self._state, tag, values, global_step, lower, upper,
                                   max_positions,
                                   walltime)  # fmt: skip
