"""Histograms: one tensor, or many in one launch."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_summary._core import arguments
from gpu_summary._writer import histograms
from gpu_summary._writer.state import WriterState


class HistogramMethods:
    """The histogram methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_histogram(
        self,
        tag: str,
        values: object,
        global_step: int | None = None,
        bins: str | int | Sequence[float] = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
        *,
        window: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log the distribution of a tensor's values.

        Args:
            tag: series name.
            values: array or tensor of any shape and numeric dtype (bool, int, float); a
                masked array (``numpy.ma``) counts its unmasked values only.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            bins: ``"tensorflow"`` (default; or ``"tensorboard"``): TensorBoard's ladder of
                1551 buckets, ±1e-12 .. ±1e20 10% apart (merges exactly); numpy's
                estimators, counted as ``numpy.histogram`` of the finite values — ``"auto"``,
                ``"fd"``, ``"sqrt"``, ``"sturges"``, ``"rice"``, ``"stone"`` on any backend
                (on a device from its count, min, max, exact quartiles or exact candidate
                histograms: no sync, nothing copied whole; more than 2**20 bins are halved
                until they fit, with a RuntimeWarning), ``"scott"`` and ``"doane"`` on host
                data; an int n: n even buckets
                over [min, max]; increasing edges e_0 < ... < e_k: [e_i, e_i+1), one bucket
                below e_0 and one from e_k up.
            walltime: seconds since the epoch; default now.
            max_bins: at most this many buckets written: neighbours merged, exactly (torch's).
            window: one record every ``window`` calls of this tag, at the last one's step: the
                histogram of every value of every call (the ladder or edges only), added up on
                the tensor's backend — on a device one launch a call, one copy a window; the
                calls so far at ``flush()``/``close()``. NaN/±Inf of the window are counted and
                their first step written beside it and reported to ``on_anomaly``.

        NaN and ±Inf are counted apart; buckets, ``num`` and the sums cover finite values.

        Raises:
            TypeError: non-numeric ``values`` or ``bins`` of the wrong type (complex or date
                edges, a masked array of edges).
            ValueError: ``bins`` <= 0, unsorted or non-finite edges, a host-only estimator
                for a device tensor, an estimator with ``distributed``; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        histograms.log_histogram(self._state, tag, values, global_step, bins, walltime, max_bins,
                                 window)  # fmt: skip

    def add_histograms(
        self,
        named_tensors: object,
        global_step: int | None = None,
        prefix: str = "",
        walltime: float | None = None,
        *,
        check_nonfinite: bool = False,
        window: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log the ladder histogram of many tensors at once (e.g. every parameter or gradient).

        Args:
            named_tensors: ``{name: tensor}`` or ``(name, tensor)`` pairs, e.g.
                ``model.named_parameters()``; a None tensor (no gradient) is skipped.
            global_step: global step; None: 0 (with ``count_steps``, each tag's last + 1).
            prefix: prepended to every name to make its tag, e.g. ``"grad/"``.
            walltime: seconds since the epoch; default now.
            check_nonfinite: also log ``<prefix>nonfinite`` (NaN/±Inf over all the tensors,
                counted by the histograms) and report those holding any to ``on_anomaly``.
            window: each tensor's tag a window of ``window`` calls, as in
                :meth:`add_histogram` (one launch per tensor a step, one copy per window; its
                NaN/±Inf written beside its record and reported to ``on_anomaly``).

        Device tensors of one device and dtype are reduced in **one** kernel launch over a
        device-side table of (address, length, stride), as PyTorch's ``_foreach`` kernels, with
        one asynchronous copy back; host arrays one by one. The histograms equal per-tensor
        ``add_histogram(prefix + name, tensor, step)`` calls, written as one event per step
        (distributed: merged by one pair of collectives per call).

        Raises:
            TypeError: not a mapping or pairs, a name not a str, non-numeric data.
            ValueError: no tensor at all; an empty name; the writer is closed.
        """
        global_step = arguments.either_step(global_step, step)
        histograms.log_histograms(self._state, named_tensors, global_step, prefix, walltime,
                                  check_nonfinite=check_nonfinite, window=window)  # fmt: skip

    def add_histogram_raw(
        self,
        tag: str,
        min: float,
        max: float,
        num: float,
        sum: float,
        sum_squares: float,
        bucket_limits: Sequence[float],
        bucket_counts: Sequence[float],
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log a histogram counted elsewhere, as given (torch's ``add_histogram_raw``), its
        statistics checked at the call as ``add_histogram`` would have written them (torch
        writes whatever it is given; TensorBoard then draws NaN or nothing).

        Args:
            tag: series name.
            min, max: the values' extremes, finite, ``min <= max`` (any finite pair when
                ``num`` is 0).
            num: how many values: finite, >= 0.
            sum, sum_squares: their sum and sum of squares, finite (±inf only where ``num``
                values within [min, max] can overflow float64), ``sum_squares >= 0``; both 0
                when ``num`` is 0.
            bucket_limits: each bucket's right edge, increasing; ``bucket_counts``: one count
                per bucket (finite, >= 0; weighted counts may be fractions). Lists, arrays
                or tensors (detached; a device tensor is copied back), at most 2**20 each.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: a statistic that is not a real number, limits or counts that are not
                real numbers (or a masked array). ValueError: limits and counts of different
                lengths or none, limits not increasing, a statistic or count breaking the
                rules above. Nothing is logged then.
        """
        global_step = arguments.either_step(global_step, step)
        stats = {"min": min, "max": max, "num": num, "sum": sum, "sum_squares": sum_squares}
        histograms.log_histogram_raw(self._state, tag, stats, bucket_limits, bucket_counts,
                                     global_step, walltime)  # fmt: skip
