"""Precision-recall curves and the Custom Scalars layout."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_summary._core import arguments
from gpu_summary._writer import curves
from gpu_summary._writer.state import WriterState


class ChartMethods:
    """The PR-curve and custom-scalars methods of :class:`gpu_summary.SummaryWriter`."""

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
        global_step = arguments.either_step(global_step, step)
        curves.log_pr_curve(self._state, tag, labels, predictions, global_step, num_thresholds,
                            weights, walltime)  # fmt: skip

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
        global_step = arguments.either_step(global_step, step)
        rows = (true_positive_counts, false_positive_counts, true_negative_counts,
                false_negative_counts, precision, recall)  # fmt: skip
        curves.log_pr_curve_raw(self._state, tag, rows, global_step, num_thresholds, walltime)

    def add_custom_scalars(self, layout: dict) -> None:
        """Lay out the Custom Scalars dashboard.

        Args:
            layout: ``{category: {chart title: ["Multiline", [tag regexes]] or
                ["Margin", [value tag, lower tag, upper tag]]}}``.

        Unlike torch's, calls add up: each merges into this run's layout (a chart of the same
        title in a category is replaced) and the whole layout is written again.

        Raises:
            TypeError: a malformed layout. ValueError: an unknown kind, a Margin chart without
                three tags, a tag that is not a regular expression.
        """
        curves.log_custom_scalars(self._state, layout)

    def add_custom_scalars_multilinechart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart of every scalar tag matching ``tags`` (regular expressions)."""
        curves.log_custom_scalars(self._state, {category: {title: ["Multiline", list(tags)]}})

    def add_custom_scalars_marginchart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart of a value with a band: ``tags`` = [value, lower, upper]."""
        curves.log_custom_scalars(self._state, {category: {title: ["Margin", list(tags)]}})
