"""``window=K``: a histogram or scalar of every step, one record per K steps.

Each windowed call adds its values into an accumulator on the tensor's backend (on a device:
one launch into the window's buffer, nothing zeroed, copied or recorded per step; on the host:
NumPy's counts added up). At the K-th call for a tag — or, for a window still open, at
``flush()`` and ``close()`` — the window's result is copied back once and written as one
record at its last step: the histogram of every value of every step (counts and min/max
exact, moments within the backends' tolerance), or the scalar reductions of the steps'
values. NaN and ±Inf of the window are counted; the first step holding one is written beside
the record (``<tag>/window/nonfinite``, ``<tag>/window/first_nonfinite_step``) and reported
to ``on_anomaly``. ``add_histograms``' device tensors of one device and dtype share one
window (a group): one multi-tensor launch a step, one copy at the end, a record per tensor.
With ``distributed``, each record is merged across the ranks once per window.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.results import Derived, HistogramResult, Pending, Ready, TensorStats
from gpu_summary._events.jobs import Job
from gpu_summary._writer import jobs
from gpu_summary._writer.aggregation import Aggregation
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.histogram import histogram_summary, merge_buckets

# add_scalar(window=K)'s reductions of the window's values.
SCALAR_REDUCTIONS = ("mean", "min", "max", "sum", "last")
MAX_WINDOW = 1 << 20  # steps a window may span


@dataclasses.dataclass
class OpenWindow:
    """A window between its first and last step."""

    kind: str  # "histogram", "scalar" or "group" (add_histograms' tensors on one device)
    size: int
    backend: object
    accumulator: object
    limits: np.ndarray | None = None  # histogram: the buckets (None: the ladder)
    max_bins: int | None = None
    reductions: tuple[str, ...] = ()
    reduce_argument: object = None  # as add_scalar was given it (the hot path compares it)
    tags: tuple[str, ...] = ()  # a group of add_histograms: its tensors' tags, in order
    steps: list[int] = dataclasses.field(default_factory=list)
    wall: float = 0.0


class Windows:
    """A writer's windows: the open ones and the size each windowed tag was given."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open: dict[tuple[str, str], OpenWindow] = {}
        self.sizes: dict[tuple[str, str], int] = {}

    def check_plain(self, kind: str, tag: str) -> None:
        """Raise ValueError if ``tag`` was logged with a window (a plain call would write a
        second series of other meaning under the same tag)."""
        size = self.sizes.get((kind, tag))
        if size is not None:
            raise ValueError(f"{kind} {tag!r} is logged with window={size}; keep window={size} "
                             "on every call of this tag, or log the plain values under "
                             "another tag")  # fmt: skip


@runtime_checkable
class WindowedState(Protocol):
    """What the windows need of a writer's state (``gpu_summary._writer.state.WriterState``,
    which imports this module): its windows, its merge across ranks, whether it writes files,
    its ``on_anomaly`` call back, its steps and its queue."""

    windows: Windows
    aggregation: Aggregation | None
    writes_files: bool
    on_anomaly: Callable[[AnomalyReport], object] | None

    def resolve_step(self, tag: str, step: int | None) -> int: ...

    def add_merged(self, job: Job) -> None: ...


def check_window(window: object) -> int:
    """``window``, an int in [1, MAX_WINDOW]."""
    size = arguments.check_count(window, "window", MAX_WINDOW)
    if size < 1:
        raise ValueError("window must be at least 1 (the number of steps a record covers)")
    return size


def check_reductions(reduce: object) -> tuple[str, ...]:
    """``add_scalar(window=K)``'s ``reduce``: one of SCALAR_REDUCTIONS or a tuple of them."""
    names = (reduce,) if isinstance(reduce, str) else reduce
    if (
        not isinstance(names, (tuple, list))
        or not names
        or not all(isinstance(n, str) and n in SCALAR_REDUCTIONS for n in names)
    ):
        raise ValueError(f"with window, reduce must be one of {list(SCALAR_REDUCTIONS)} or a tuple "
                         f"of them, got {reduce!r}")  # fmt: skip
    if len(set(names)) != len(names):
        raise ValueError(f"reduce names a reduction twice: {reduce!r}")
    return tuple(names)


class NumberWindow:
    """The backend of a window of plain numbers (Python or NumPy scalars on the host): each
    step's stats made in Python, without an array (the same TensorStats NumPy would give)."""

    @staticmethod
    def window_open(limits: object, size: int, like: object, histogram: bool) -> list:
        return []

    @staticmethod
    def window_add(window: list, value: float, slot: int) -> None:
        window.append(value)

    @staticmethod
    def window_result(window: list, slots: int) -> Ready:
        return Ready((None, np.array(window[:slots], np.float64)))


def _number_stats(value: float) -> TensorStats:
    if math.isfinite(value):
        return TensorStats.of(1, value, value, value, value * value, 0, 0, 0)
    if math.isnan(value):
        return TensorStats.of(0, 0.0, 0.0, 0.0, 0.0, 1, 0, 0)
    return TensorStats.of(0, 0.0, 0.0, 0.0, 0.0, 0, value > 0, value < 0)


NUMBERS = NumberWindow()


def _add(state: WindowedState, key: tuple[str, str], make: OpenWindow, backend: object,
         array: object, step: int, wall: float) -> OpenWindow | None:  # fmt: skip
    """Add one step to the window of ``key`` (opened from ``make`` when none is); the window,
    if this step completed it."""
    windows = state.windows
    kind, tag = key
    with windows.lock:
        known = windows.sizes.get(key)
        if known is not None and known != make.size:
            raise ValueError(f"{kind} {tag!r} is logged with window={known}; a window keeps its "
                             f"size (got window={make.size})")  # fmt: skip
        current = windows.open.get(key)
        if current is not None:
            same = current.backend is backend and current.reductions == make.reductions and (
                (current.limits is None and make.limits is None)
                or (current.limits is not None and make.limits is not None
                    and np.array_equal(current.limits, make.limits))
            )  # fmt: skip
            if not same:
                raise ValueError(f"{kind} {tag!r}: every step of a window needs the same bins "
                                 "(or reduce) and the same device; finish the window first "
                                 "(flush()) or use another tag")  # fmt: skip
        else:
            make.accumulator = backend.window_open(make.limits, make.size, array,
                                                   kind == "histogram")  # fmt: skip
            current = windows.open[key] = make
        backend.window_add(current.accumulator, array, len(current.steps))
        windows.sizes[key] = make.size
        current.steps.append(step)
        current.wall = wall
        if len(current.steps) < current.size:
            return None
        del windows.open[key]
        return current


def add_histogram(state: WindowedState, tag: str, backend: object, array: object, step: int,
                  wall: float, mode: str, spec: object, max_bins: int | None,
                  size: int) -> None:  # fmt: skip
    """One step of ``add_histogram(..., window=size)``."""
    if mode not in ("ladder", "edges"):
        raise ValueError("window needs buckets that stay put: bins='tensorflow' or edges (each "
                         "step's counts are added to the window's); bins=n and numpy's "
                         "estimators follow each step's range")  # fmt: skip
    make = OpenWindow("histogram", size, backend, None, limits=spec, max_bins=max_bins)
    done = _add(state, ("histogram", tag), make, backend, array, step, wall)
    if done is not None:
        _write(state, tag, done)


def log_histogram(state: WindowedState, tag: str, values: object, step: int | None, wall: float,
                  mode: str, spec: object, max_bins: int | None,
                  window: object) -> None:  # fmt: skip
    """``add_histogram(..., window=window)``, its tag, step, wall time and bins checked."""
    size = check_window(window)
    backend, array = backend_for(values, "values", drop_masked=True)
    step = state.resolve_step(tag, step)
    add_histogram(state, tag, backend, array, step, wall, mode, spec, max_bins, size)


def log_histograms(state: WindowedState, pairs: list[tuple[str, object]], tags: list[str],
                   step: int | None, wall: float, window: object) -> None:  # fmt: skip
    """``add_histograms(..., window=window)``, its tags, step and wall time checked: each
    tensor a window of its own tag (its NaN/±Inf reported); device tensors all of one device
    and dtype share one window, one multi-tensor launch a step."""
    size = check_window(window)
    adopted = [
        backend_for(tensor, f"named_tensors[{name!r}]", drop_masked=True) for name, tensor in pairs
    ]
    first_backend, first = adopted[0]
    if first_backend is not numpy_backend and len(adopted) > 1 and all(
        backend is first_backend and array.device_id == first.device_id
        and array.dtype_name == first.dtype_name for backend, array in adopted
    ):  # fmt: skip
        resolved = [state.resolve_step(tag, step) for tag in tags]
        add_histogram_group(state, tags, first_backend, [a for _, a in adopted], resolved, wall,
                            size)  # fmt: skip
        return
    for tag, (backend, array) in zip(tags, adopted, strict=True):
        add_histogram(state, tag, backend, array, state.resolve_step(tag, step), wall, "ladder",
                      None, None, size)  # fmt: skip


def add_number(state: WindowedState, tag: str, value: float, step: int, wall: float, size: object,
               reduce: object) -> bool:  # fmt: skip
    """The hot path of ``add_scalar(window=...)`` for a plain number: one more step of an open
    window of ``tag`` with this size and reduce; False (nothing done) when there is none."""
    windows = state.windows
    with windows.lock:
        current = windows.open.get(("scalar", tag))
        if (current is None or current.size != size or current.backend is not NUMBERS
                or current.reduce_argument != reduce):  # fmt: skip
            return False
        current.accumulator.append(value)
        current.steps.append(step)
        current.wall = wall
        if len(current.steps) < current.size:
            return True
        del windows.open[("scalar", tag)]
    _write(state, tag, current)
    return True


def add_scalar(state: WindowedState, tag: str, backend: object, array: object, step: int,
               wall: float, reduce: object, size: int) -> None:  # fmt: skip
    """One step of ``add_scalar(..., window=size, reduce=...)``."""
    reductions = check_reductions(reduce)
    make = OpenWindow("scalar", size, backend, None, reductions=reductions,
                      reduce_argument=reduce)  # fmt: skip
    done = _add(state, ("scalar", tag), make, backend, array, step, wall)
    if done is not None:
        _write(state, tag, done)


def add_histogram_group(state: WindowedState, tags: list[str], backend: object, arrays: list,
                        steps: list[int], wall: float, size: int) -> None:  # fmt: skip
    """One step of ``add_histograms(..., window=size)`` for device tensors of one device and
    dtype: one multi-tensor launch into the group's window, one copy per window."""
    key = ("histograms", "\0".join(tags))
    windows = state.windows
    with windows.lock:
        for tag in tags:
            known = windows.sizes.get(("histogram", tag))
            if known is not None and known != size:
                raise ValueError(f"histogram {tag!r} is logged with window={known}; a window "
                                 f"keeps its size (got window={size})")  # fmt: skip
            if ("histogram", tag) in windows.open:
                raise ValueError(f"histogram {tag!r} is in a window of add_histogram; finish "
                                 "it (flush()) before windowing it in add_histograms")  # fmt: skip
        current = windows.open.get(key)
        if current is None:
            accumulator = backend.multi_window_open(size, arrays)
            current = windows.open[key] = OpenWindow("group", size, backend, accumulator,
                                                     tags=tuple(tags))  # fmt: skip
        backend.multi_window_add(current.accumulator, arrays, len(current.steps))
        for tag in tags:
            windows.sizes[("histogram", tag)] = size
        current.steps.append(tuple(steps))
        current.wall = wall
        if len(current.steps) < current.size:
            return
        del windows.open[key]
    _write(state, None, current)


def flush(state: WindowedState) -> None:
    """Write every window still open (partial: the steps so far), before a flush or close."""
    with state.windows.lock:
        opened = list(state.windows.open.items())
        state.windows.open.clear()
    for (_, tag), window in opened:
        _write(state, tag, window)


def merged_stats(stats: list[TensorStats]) -> TensorStats:
    """The stats of the steps' values together (sums in step order)."""
    finite = [s for s in stats if s.count]
    return TensorStats.of(
        sum(s.count for s in stats),
        min((s.min for s in finite), default=0.0),
        max((s.max for s in finite), default=0.0),
        sum(s.sum for s in stats),
        sum(s.sum_squares for s in stats),
        sum(s.nan for s in stats),
        sum(s.posinf for s in stats),
        sum(s.neginf for s in stats),
    )


@dataclasses.dataclass
class Steps:
    """A window's steps together: their stats, the index of the first step holding NaN or
    ±Inf (None: none did), and the last step's value (scalars)."""

    whole: TensorStats
    first_bad: int | None
    last: float

    @property
    def nonfinite(self) -> int:
        return self.whole.nan + self.whole.posinf + self.whole.neginf


def summarize(stats: list[TensorStats] | np.ndarray) -> Steps:
    """:class:`Steps` from each step's stats, or from plain numbers' values (one per step)."""
    if isinstance(stats, np.ndarray):
        finite = np.isfinite(stats)
        good = stats[finite]
        whole = TensorStats.of(good.size, good.min() if good.size else 0.0,
                               good.max() if good.size else 0.0, good.sum(),
                               np.square(good).sum(), np.count_nonzero(np.isnan(stats)),
                               np.count_nonzero(stats == np.inf),
                               np.count_nonzero(stats == -np.inf))  # fmt: skip
        first = None if finite.all() else int(np.argmin(finite))
        return Steps(whole, first, float(stats[-1]))
    first = next((k for k, s in enumerate(stats) if s.nan or s.posinf or s.neginf), None)
    last = stats[-1]
    if last.count:
        value = last.sum / last.count  # merged across ranks: their mean
    else:
        value = math.nan if last.nan else (math.inf if last.posinf else -math.inf)
    return Steps(merged_stats(stats), first, value)


def _scalar_value(tag: str, value: float) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, simple_value=value)


def _reduced(name: str, steps: Steps) -> float:
    whole = steps.whole
    if name == "last":
        return steps.last
    if not whole.count:
        return math.nan
    return {"mean": whole.sum / whole.count, "min": whole.min, "max": whole.max,
            "sum": whole.sum}[name]  # fmt: skip


def _write(state: WindowedState, tag: str | None, window: OpenWindow) -> None:
    """Queue the record of a finished (or flushed) window, at its last step (a group of
    ``add_histograms``: a record per tensor, from the one copy of the group)."""
    if window.kind == "group":
        group = window.backend.multi_window_result(window.accumulator, len(window.steps))
        for k, name in enumerate(window.tags):
            pending = Derived(lambda k=k: group.result()[k])
            steps = [row[k] for row in window.steps]
            _record(state, name, window, pending, steps)
        return
    steps = list(window.steps)
    _record(state, tag, window, window.backend.window_result(window.accumulator, len(steps)),
            steps)  # fmt: skip


def _record(state: WindowedState, tag: str, window: OpenWindow, pending: Pending,
            steps: list[int]) -> None:  # fmt: skip
    """Queue one tag's record from its window's pending ``(counts, stats of each step)``."""
    last = steps[-1]
    kind = "scalar" if window.kind == "scalar" else "histogram"
    if state.aggregation is not None:  # every rank's steps merged, once per window
        local = pending
        if window.backend is NUMBERS:  # each rank's numbers as per-step stats, to be summed
            values = pending
            local = Derived(lambda: (None, [_number_stats(v) for v in values.result()[1]]))
        buckets = 0 if kind == "scalar" else (
            _ladder.N_LIMITS if window.limits is None else window.limits.size)  # fmt: skip
        pending = state.aggregation.window(local, tag, last, len(steps), buckets, window.limits)
    if not state.writes_files:
        return

    def extras(together: Steps) -> list[summary_pb2.Summary.Value]:
        if together.first_bad is None:
            return []
        first = steps[together.first_bad]
        return [_scalar_value(f"{tag}/window/nonfinite", float(together.nonfinite)),
                _scalar_value(f"{tag}/window/first_nonfinite_step", float(first))]  # fmt: skip

    if kind == "histogram":
        limits = _ladder.LIMITS if window.limits is None else window.limits
        max_bins = window.max_bins

        def build() -> summary_pb2.Summary:
            counts, stats = pending.result()
            together = summarize(stats)
            result = HistogramResult(limits=limits, counts=counts, stats=together.whole)
            if max_bins is not None:
                result = merge_buckets(result, max_bins)
            summary = histogram_summary(tag, result, window.limits is None)
            summary.value.extend(extras(together))
            return summary

        nbytes = 16 * limits.size
    else:
        reductions = window.reductions

        def build() -> summary_pb2.Summary:
            together = summarize(pending.result()[1])
            values = [_scalar_value(tag if k == 0 else f"{tag}/{name}", _reduced(name, together))
                      for k, name in enumerate(reductions)]  # fmt: skip
            return summary_pb2.Summary(value=values + extras(together))

        nbytes = 64 * len(steps)
    state.add_merged(jobs.summary(f"{kind} window", tag, last, window.wall, build, nbytes))
    callback = state.on_anomaly
    if callback is not None:
        state.add_merged(jobs.call_back(lambda: _report(tag, pending, steps, callback),
                                        f"on_anomaly for the window of {tag!r}"))  # fmt: skip


def _report(tag: str, pending: Pending, steps: list[int], callback: object) -> None:
    together = summarize(pending.result()[1])
    if together.first_bad is None:
        return
    whole = together.whole
    callback(AnomalyReport(tag=tag, step=steps[together.first_bad], nan=whole.nan,
                           posinf=whole.posinf, neginf=whole.neginf, below=0, above=0,
                           count=whole.count, positions=(), quantiles={}, whiskers=None,
                           heatmap=np.zeros((0, 0)), tensors=(tag,)))  # fmt: skip
