"""``add_histogram``, ``add_histograms`` and ``add_histogram_raw`` (plugin ``histograms``):
reductions launched on the tensors' backends, merged across ranks when distributed, Summaries
built on the writer thread.

``add_histograms`` launches its tensors through the dispatch
(``gpu_summary._backend.launch_ladder_histograms``), which groups them into as few launches as
their backends allow; numpy's estimators are counted by ``gpu_summary._backend.estimators``; a
``window`` hands the call to the step windows (``gpu_summary._writer.step_windows``).
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Sequence

import numpy as np

from gpu_summary._backend import (
    Placed,
    backend_for,
    check_working_copy,
    host_numbers,
    launch_ladder_histograms,
)
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.estimators import rule_histogram
from gpu_summary._core import arguments, bin_rules
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import Derived, HistogramResult, Pending, Ready
from gpu_summary._writer import jobs, low_precision, step_windows
from gpu_summary._writer.aggregation import dtype_name
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import histogram_pb2, summary_pb2
from gpu_summary.summaries.histogram import histogram_summary_bytes, merge_buckets


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
        formats: str | Sequence[str] = (),
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
            formats: low-precision formats (``"float8_e4m3fn"``, ``"float8_e5m2"``,
                ``"float16"``, ``"bfloat16"``; one name or a tuple): also log, at the same step,
                how many values would overflow each (round beyond its largest finite value)
                and underflow it (round from non-zero to zero), as the scalars
                ``<tag>/lowp/<format>/overflow`` and ``.../underflow``: exact counts, one
                more pass over the data on its backend (on a device one small launch, no
                sync). Not with ``window``.

        NaN and ±Inf are counted apart; buckets, ``num`` and the sums cover finite values.

        Raises:
            TypeError: non-numeric ``values`` or ``bins`` of the wrong type (complex or date
                edges, a masked array of edges).
            ValueError: ``bins`` <= 0, unsorted or non-finite edges, a host-only estimator
                for a device tensor, an estimator with ``distributed``; an unknown or repeated
                format, ``formats`` with ``window``; the writer is closed.
        """
        state = self._state
        step = arguments.either_step(global_step, step)
        tag, step, wall = state.begin(tag, step, walltime)
        if type(formats) is not tuple or formats:  # the default () costs nothing more
            formats = low_precision.check(formats, window)
        if not isinstance(
            bins, (str, int, np.integer, np.bool_)
        ):  # edges, as a list, array or tensor
            bins = host_numbers(bins, "bins as edges", arguments.MAX_BINS, "edges")
        mode, spec = arguments.bin_spec(bins)
        if max_bins is not None:
            max_bins = arguments.check_positive_int(
                max_bins, "max_bins", "ask for at least one bucket, e.g. max_bins=64"
            )
        if window is not None:
            step_windows.log_histogram(state, tag, values, step, wall, mode, spec, max_bins, window)
            return
        state.windows.check_plain("histogram", tag)
        backend, array = backend_for(values, "values", drop_masked=True)
        pending = None
        if mode == "numpy_rule":
            mode, spec, pending = _plan_numpy_rule(state, backend, array, spec)
        if pending is None:
            if state.aggregation is not None:
                step = state.resolve_step(tag, step)
            pending = _launch(state, tag, step, backend, array, mode, spec)
        if formats:
            step = state.resolve_step(tag, step)  # the histogram's step, its counts' too
            counts = low_precision.launch(backend, array, formats)
        _queue(state, tag, step, wall, pending, mode, spec, max_bins, array)
        if formats:
            low_precision.queue(state, [tag], step, wall, [counts], formats)

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
        formats: str | Sequence[str] = (),
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
            formats: low-precision formats whose overflow and underflow counts are logged
                for each tensor, as :meth:`add_histogram`'s (one more launch a tensor). Not
                with ``window``.

        Device tensors of one device and dtype are reduced in **one** kernel launch over a
        device-side table of (address, length, stride), as PyTorch's ``_foreach`` kernels, with
        one asynchronous copy back; host arrays one by one. The histograms equal per-tensor
        ``add_histogram(prefix + name, tensor, step)`` calls, written as one event per step
        (distributed: merged by one pair of collectives per call).

        Raises:
            TypeError: not a mapping or pairs, a name not a str, non-numeric data.
            ValueError: no tensor at all; an empty name; an unknown or repeated format,
                ``formats`` with ``window``; the writer is closed.
        """
        state = self._state
        step = arguments.either_step(global_step, step)
        state.check_open()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
        if type(formats) is not tuple or formats:
            formats = low_precision.check(formats, window)
        pairs = arguments.named_pairs(named_tensors)
        tags = [arguments.check_tag(prefix + name, "names") for name, _ in pairs]
        checked_step = None if step is None else arguments.check_step(step)
        wall = time.time() if walltime is None else arguments.check_walltime(walltime)
        if window is not None:
            step_windows.log_histograms(state, pairs, tags, checked_step, wall, window)
            return
        for tag in tags:
            state.windows.check_plain("histogram", tag)
        placed = launch_ladder_histograms(pairs, "named_tensors")
        counts = low_precision.launch_each(pairs, formats, "named_tensors") if formats else []
        steps = [state.resolve_step(tag, checked_step) for tag in tags]
        for event_step in dict.fromkeys(steps):
            chosen = [k for k, s_ in enumerate(steps) if s_ == event_step]
            _queue_step(state, event_step, wall, [tags[k] for k in chosen],
                        [placed[k] for k in chosen], [pairs[k][1] for k in chosen], prefix,
                        check_nonfinite)  # fmt: skip
            if formats:
                low_precision.queue(state, [tags[k] for k in chosen], event_step, wall,
                                    [counts[k] for k in chosen], formats)  # fmt: skip

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
            min: the values' smallest, finite, ``min <= max`` (any finite pair when ``num``
                is 0).
            max: the values' largest, finite.
            num: how many values: finite, >= 0.
            sum: their sum, finite (±inf only where ``num`` values within [min, max] can
                overflow float64); 0 when ``num`` is 0.
            sum_squares: their sum of squares, ``>= 0``, finite as ``sum``; 0 when ``num`` is 0.
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
        state = self._state
        step = arguments.either_step(global_step, step)
        stats = {"min": min, "max": max, "num": num, "sum": sum, "sum_squares": sum_squares}
        tag, step, wall = state.begin(tag, step, walltime)
        given = {}
        for name, value in stats.items():
            if not isinstance(value, (int, float, np.integer, np.floating)) and hasattr(
                value, "item"
            ):
                if int(np.prod(getattr(value, "shape", ()))) == 1:
                    value = value.item()  # a one-element tensor or array
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
                raise TypeError(f"{name} must be a number (a real one), got {type(value).__name__}")
            given[name] = arguments.to_float(value)
        limits = host_numbers(bucket_limits, "bucket_limits", arguments.MAX_BINS, "limits").reshape(
            -1
        )
        counts = host_numbers(bucket_counts, "bucket_counts", arguments.MAX_BINS, "counts").reshape(
            -1
        )
        if limits.size != counts.size:
            raise ValueError(
                f"bucket_limits has {limits.size} limits and bucket_counts {counts.size} counts; "
                "give one count per bucket, each bucket ending at its limit"
            )
        if limits.size == 0:
            raise ValueError("bucket_limits is empty; give at least one bucket")
        if np.isnan(limits).any() or (limits.size > 1 and not (np.diff(limits) > 0).all()):
            raise ValueError("bucket_limits must be increasing numbers (each bucket's right edge)")
        _check_raw(given, counts)
        histo = histogram_pb2.HistogramProto(
            min=given["min"], max=given["max"], num=given["num"], sum=given["sum"],
            sum_squares=given["sum_squares"], bucket_limit=limits.tolist(), bucket=counts.tolist(),
        )  # fmt: skip
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=histo)])
        step = state.resolve_step(tag, step)
        if state.writes_files:
            state.events.add(jobs.ready_summary(summary, step, wall))


def _plan_numpy_rule(
    state: WriterState, backend: object, array: object, rule: str
) -> tuple[str, object, Pending[HistogramResult] | None]:
    """``(mode, spec, pending)`` for numpy's estimator ``rule``: launched on the tensor's
    backend where its bins can be counted there (``rule_histogram``), or, for numpy's own
    estimates on host data, its edges (``("edges", limits, None)``), to be launched as edges.

    Raises:
        ValueError: with ``distributed`` (numpy's estimators need the whole tensor), a working
            copy that would dwarf the tensor's memory, or a rule a device cannot reproduce.
    """
    if state.aggregation is not None:
        raise ValueError(
            f"bins={rule!r} (numpy's estimator) needs the whole tensor on one process; "
            "with distributed, pass bins='tensorflow', a number of bins or edges"
        )
    host = backend is numpy_backend
    if not (host and rule in ("sqrt", "sturges", "rice")):  # these read count, min, max
        nbytes = (8 if host else int(array.dtype.itemsize)) * int(array.size)
        check_working_copy(array, nbytes, "values", f"bins={rule!r}'s copy of them")
    if rule in bin_rules.SUMMARY_RULES or (rule in bin_rules.DEVICE_RULES and not host):
        return "numpy_rule", rule, rule_histogram(backend, array, rule)
    if host:  # numpy's own estimate (stone, scott, doane)
        return "edges", numpy_backend.rule_limits(array, rule), None
    raise ValueError(
        f"bins={rule!r} rests on moments in numpy's own summation order, which only "
        f"numpy on host data reproduces; for a device tensor use one of "
        f"{list(bin_rules.DEVICE_RULES)} (exact there), 'tensorflow', an int or edges"
    )


def _launch(
    state: WriterState,
    tag: str,
    step: int | None,
    backend: object,
    array: object,
    mode: str,
    spec: object,
) -> Pending[HistogramResult]:
    """Launch the histogram of ``array`` over the ladder, edges or ``bins=n`` (``mode``,
    ``spec``) on its backend; with ``distributed``, this rank's part of the merge at ``step``
    (resolved). No sync."""
    if state.aggregation is None:
        if mode == "even":
            return backend.histogram_even(array, spec)
        return backend.histogram_fixed(array, spec)
    if mode != "even":
        local = backend.histogram_fixed(array, spec)
        return state.aggregation.histogram(local, tag, step, spec, dtype_name(array))
    check_working_copy(array, int(array.dtype.itemsize) * int(array.size), "values",
                       "bins=n's private copy of them (distributed)")  # fmt: skip
    shard = backend.snapshot(array)  # counted once the global range is known

    def count(lo: float, hi: float, shard: object = shard) -> object:
        return backend.even_counts(shard, lo, hi, spec)

    stats = backend.tensor_stats(shard)
    return state.aggregation.histogram_even(stats, count, tag, step, spec, dtype_name(array))


def _queue(
    state: WriterState,
    tag: str,
    step: int | None,
    wall: float,
    pending: Pending[HistogramResult],
    mode: str,
    spec: object,
    max_bins: int | None,
    array: object,
) -> None:
    """Queue the record of one launched histogram: its Summary is built on the writer thread
    (buckets merged down to ``max_bins``; the ladder's empty runs collapsed)."""
    collapse = mode == "ladder"

    def build() -> bytes:
        result = pending.result()
        if max_bins is not None:
            result = merge_buckets(result, max_bins)
        return histogram_summary_bytes(tag, result, collapse)

    nbytes = _result_bytes(mode, spec, pending, array)
    if state.aggregation is None:
        state.enqueue("histogram", tag, step, wall, build, nbytes=nbytes)
    else:
        state.enqueue_merged("histogram", tag, step, wall, build, nbytes=nbytes)


def _result_bytes(mode: str, spec: object, pending: Pending, array: object) -> int:
    """Host memory a queued histogram's result holds until written (counts and limits, 8
    bytes each), counted against ``max_queue_bytes``: a bins=2**20 histogram holds 16 MiB."""
    if isinstance(pending, Ready):
        buckets = len(pending.result().counts)
    elif mode == "ladder":
        buckets = _ladder.N_LIMITS
    elif mode == "even":
        buckets = int(spec)
    elif mode == "edges":
        buckets = len(spec)
    else:  # a device estimator's, known later: about 2 sqrt(n) + 1 bins (stone: 100 or more)
        size = int(getattr(array, "size", 1))
        buckets = min(arguments.MAX_BINS, 2 * math.isqrt(size) + 101)
    return 16 * buckets + 256


def _queue_step(
    state: WriterState,
    step: int,
    wall: float,
    tags: list[str],
    placed: list[Placed],
    tensors: list[object],
    prefix: str,
    check_nonfinite: bool,
) -> None:
    """Queue the record of ``add_histograms``' tensors logged at ``step`` (one Summary of
    them all, its histograms read where ``placed`` says, on the writer thread; with
    ``distributed``, all of them in one merge of the step's packs), and the ``on_anomaly``
    call back of ``check_nonfinite``."""

    def gather() -> list[HistogramResult]:
        return [pending.result()[position] for pending, position in placed]

    histograms: Pending[list[HistogramResult]] = Derived(gather)
    if state.aggregation is not None:
        dtypes = [dtype_name(tensor) for tensor in tensors]
        histograms = state.aggregation.histograms(histograms, tags, step, dtypes)

    def build() -> bytes:
        results = histograms.result()
        summary = [
            histogram_summary_bytes(tag, histogram, True)
            for tag, histogram in zip(tags, results, strict=True)
        ]
        if check_nonfinite:
            total = sum(h.stats.nan + h.stats.posinf + h.stats.neginf for h in results)
            value = summary_pb2.Summary.Value(tag=f"{prefix}nonfinite", simple_value=total)
            summary.append(summary_pb2.Summary(value=[value]).SerializeToString())
        return b"".join(summary)  # serialized Summaries concatenated: one of all the values

    nbytes = 16 * _ladder.N_LIMITS * len(tags)  # the results held until written
    state.add_merged(jobs.summary("histograms", tags[0], step, wall, build, nbytes))
    if check_nonfinite and state.on_anomaly is not None:
        state.add_merged(jobs.nonfinite_call_back(tags, histograms, step, state.on_anomaly))


def _check_raw(stats: dict[str, float], counts: np.ndarray) -> None:
    """add_histogram_raw's statistics, as a histogram can have them: ``num`` and the counts
    finite and >= 0 (fractions allowed: weighted histograms; ``num`` need not be the counts'
    total, as torch's does not ask); ``min <= max``, both finite; ``sum`` and ``sum_squares``
    finite — ±inf only where ``num`` values within [min, max] can overflow float64 — with
    ``sum_squares >= 0``, and both 0 for an empty histogram. torch writes whatever it is given;
    TensorBoard then draws NaN or nothing."""
    if not (np.isfinite(counts).all() and (counts >= 0).all()):
        raise ValueError("bucket_counts must be finite counts >= 0 (values per bucket)")
    num = stats["num"]
    if not (math.isfinite(num) and num >= 0):
        raise ValueError(f"num must be a finite count >= 0, got {num!r}: the number of values")
    low, high = stats["min"], stats["max"]
    for name, value in (("min", low), ("max", high)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if num and low > high:
        raise ValueError(f"min {low!r} is above max {high!r}; give the values' min and max")
    largest = max(abs(low), abs(high))
    with np.errstate(over="ignore"):
        bounds = {"sum": num * largest, "sum_squares": num * np.float64(largest) ** 2}
    for name, bound in bounds.items():
        value = stats[name]
        if math.isnan(value) or (math.isinf(value) and math.isfinite(bound)):
            raise ValueError(
                f"{name} must be finite (±inf only where {num:.17g} values within [min, max] "
                f"overflow float64), got {value!r}"
            )
    if stats["sum_squares"] < 0:
        raise ValueError(f"sum_squares must be >= 0, got {stats['sum_squares']!r}")
    if not num and (stats["sum"] or stats["sum_squares"]):
        raise ValueError(
            f"num is 0 but sum is {stats['sum']!r} and sum_squares {stats['sum_squares']!r}: "
            "an empty histogram's sums are 0"
        )
