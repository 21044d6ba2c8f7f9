"""Probes: statistics from inside ``torch.compile(fullgraph=True)`` code and captured CUDA
graphs, read back outside.

``writer.probe(tag)`` makes a :class:`Probe`; ``probe(x)`` returns ``x`` and adds ``x``'s ladder
counts, stats and low-precision format counts into the probe's accumulator on ``x``'s device
(``_core/probe_layout.py``). It does so through one registered torch operator (see
:func:`register`),
``gpu_summary::probe_add(values, state!, formats)``, whose fake kernel does nothing and which
declares ``state`` mutated: the compiler traces it with no graph break, keeps it (a mutation is
never dead code) and orders it after whatever produced ``values``. Its real kernel is the
tensor's backend's ``probe_add``: on the host the compiled host kernels, on a device one launch
of gs_reduce on the current stream into the static accumulator (no allocation, no sync), so a
CUDA graph captures it and every replay adds again.

The accumulator of a device is allocated on the probe's first use there. In compiled code that
first use is at trace time: :func:`_accumulator` is ``assume_constant_result``, so the compiler
calls it once with the real device and bakes the tensor it returns into the graph as a
constant — one graph, no recompile when values change, no allocation inside the graph.
Inside a CUDA graph capture a first use is refused (the allocation and the fill that empties
it would be captured too): call the probe once before capturing, as ``torch.cuda.graph``'s
warm-up does.

``writer.collect(step)`` takes every probe's accumulators (copied out and emptied on the
stream, in probe order) and queues one record per probe: the histogram of every value the probe
saw since the last collect, the non-finite count beside it, and the format counts; with
``distributed``, merged over the ranks as a one-step window.
"""

from __future__ import annotations

import threading

import numpy as np

from gpu_summary._backend import backend_for, probe_arrays
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.results import Derived, HistogramResult, Pending, TensorStats
from gpu_summary._writer import jobs
from gpu_summary._writer.step_windows import WindowedState, merged_stats
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.histogram import histogram_summary

OPERATOR = "gpu_summary::probe_add"
_SCHEMA = "(Tensor values, Tensor(a!) state, str formats) -> ()"
_registration = threading.Lock()
_library = None  # the torch.library.Library that holds the operator's registration
_torch = None  # the torch module, once the operator is registered
_ops = None  # torch.ops.gpu_summary
_accumulator_for = None  # _accumulator, marked assume_constant_result


def register() -> None:
    """Register the probe operator with torch (once per process).

    It is defined with ``torch.library.Library``: a schema whose ``state`` is mutated
    (``Tensor(a!)``), a kernel for the CPU and CUDA dispatch keys and a fake kernel — the
    registration ``torch.library.custom_op`` makes, without the Python wrapping that costs
    ``custom_op`` 15 to 35 us per call (1.5 us here; benchmarks/bench_probe.py)."""
    global _library, _torch, _ops, _accumulator_for
    with _registration:
        if _ops is not None:
            return
        import torch

        library = torch.library.Library(OPERATOR.split("::")[0], "DEF")
        library.define(f"{OPERATOR.split('::')[1]}{_SCHEMA}")
        for key in ("CPU", "CUDA"):
            library.impl(OPERATOR.split("::")[1], _add, key)

        @torch.library.register_fake(OPERATOR, lib=library)
        def _(values: torch.Tensor, state: torch.Tensor, formats: str) -> None:
            if values.is_complex():  # what the real kernel says, at trace time
                raise TypeError("the probe's tensor must hold bool, integer or floating-point "
                                f"numbers, got dtype {str(values.dtype).removeprefix('torch.')}; "
                                "log its .real, .imag or abs() instead")  # fmt: skip

        _library = library  # the registration lives as long as this object
        _accumulator_for = torch.compiler.assume_constant_result(_accumulator)
        _ops = torch.ops.gpu_summary
        _torch = torch


def _add(values: object, state: object, formats: str) -> None:
    """The operator's real kernel: ``values`` into ``state`` on their backend."""
    names = tuple(formats.split(",")) if formats else ()
    backend, array, target = probe_arrays(values, state)
    backend.probe_add(target, array, names)


def _accumulator(probe: Probe, device: str) -> bool:
    """Allocate ``probe``'s accumulator on ``device`` (empty) unless it has one; True."""
    if device in probe.states:
        return True
    import torch

    where = torch.device(device)
    with probe.lock:
        if device in probe.states:
            return True
        blocks = 0
        if where.type == "cuda":
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError(
                    f"probe {probe.tag!r} is first used on {device} inside a CUDA graph "
                    "capture; call it once on that device before capturing (torch.cuda.graph's "
                    "warm-up iterations do), so that its accumulator exists outside the graph"
                )
            from gpu_summary._backend.cuda_kernels import reduce as reduce_abi

            blocks = reduce_abi.PROBE_BLOCKS
        elif where.type != "cpu":
            raise TypeError(f"probe {probe.tag!r} got a tensor on {device}; probes read CPU "
                            "and CUDA tensors")  # fmt: skip
        empty = torch.from_numpy(probe_layout.empty(len(probe.formats), blocks))
        state = empty.to(where)  # from pageable memory: copied before this returns
        probe.states[device] = state
        probe.order.append(device)
    return True


class Probe:
    """``probe(x)``: returns ``x``; adds its statistics into this probe's accumulator on
    ``x``'s device, inside compiled code and CUDA graphs too (see the module docstring)."""

    def __init__(self, tag: str, formats: tuple[str, ...]) -> None:
        self.tag = tag
        self.formats = formats
        self.formats_argument = ",".join(formats)
        self.states: dict[str, object] = {}  # device -> the accumulator (an int64 tensor)
        self.order: list[str] = []  # devices in first-use order
        self.lock = threading.Lock()

    def __call__(self, x: object) -> object:
        """Add ``x``'s statistics to this probe; return ``x`` unchanged (the same tensor)."""
        if not isinstance(x, _torch.Tensor):
            raise TypeError(f"probe {self.tag!r} takes a torch tensor, got {type(x).__name__}; "
                            "log other arrays with add_histogram")  # fmt: skip
        device = str(x.device)
        _accumulator_for(self, device)  # at trace time in compiled code: allocated outside
        _ops.probe_add(x.detach(), self.states[device], self.formats_argument)
        return x

    def __repr__(self) -> str:
        shown = f", formats={self.formats}" if self.formats else ""
        return f"Probe({self.tag!r}{shown})"

    def take(self) -> list[Pending[np.ndarray]]:
        """Each device's accumulator copied out and emptied, in first-use order (on a device,
        launched on the current stream: the copy arrives later)."""
        taken = []
        n_formats = len(self.formats)
        with self.lock:
            devices = list(self.order)
        for device in devices:
            state = self.states[device]
            if device == "cpu":
                taken.append(numpy_backend.probe_take(state.numpy(), n_formats))
            else:
                backend, target = backend_for(state, f"probe {self.tag!r}'s accumulator")
                taken.append(backend.probe_take(target, n_formats))
        return taken


class Probes:
    """A writer's probes, by tag, in the order they were made."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_tag: dict[str, Probe] = {}

    def probe(self, tag: str, formats: tuple[str, ...]) -> Probe:
        """The probe of ``tag`` (made on first call; a later call must ask for the same)."""
        register()
        with self.lock:
            probe = self.by_tag.get(tag)
            if probe is None:
                probe = self.by_tag[tag] = Probe(tag, formats)
            elif probe.formats != formats:
                raise ValueError(f"probe {tag!r} was made with formats={probe.formats}; ask for "
                                 "the same formats, or make another tag's probe")  # fmt: skip
            return probe

    def all(self) -> list[Probe]:
        with self.lock:
            return list(self.by_tag.values())


def _combined(taken: list[Pending[np.ndarray]], n_formats: int) -> tuple:
    """``(counts then format counts, [stats])`` of a probe's devices together."""
    counts = np.zeros(_ladder.N_LIMITS + 2 * n_formats, np.int64)
    stats: list[TensorStats] = []
    for part in taken:
        ladder, part_stats, formats = probe_layout.parse(part.result(), n_formats)
        counts[: _ladder.N_LIMITS] += ladder
        counts[_ladder.N_LIMITS :] += formats.reshape(-1)
        stats.append(part_stats)
    return counts, [merged_stats(stats)]


def _scalar(tag: str, value: float) -> summary_pb2.Summary.Value:
    return summary_pb2.Summary.Value(tag=tag, simple_value=value)


def collect(state: WindowedState, probes: Probes, step: int | None, wall: float) -> None:
    """``writer.collect``: every probe's record at ``step`` (resolved per probe's tag)."""
    for probe in probes.all():
        _collect(state, probe, step, wall)


def _collect(state: WindowedState, probe: Probe, step: int | None, wall: float) -> None:
    tag, formats = probe.tag, probe.formats
    taken = probe.take()
    pending: Pending[tuple] = Derived(lambda: _combined(taken, len(formats)))
    at = state.resolve_step(tag, step)
    if state.aggregation is not None:
        pending = state.aggregation.window(pending, tag, at, 1,
                                           _ladder.N_LIMITS + 2 * len(formats))  # fmt: skip
    if state.writes_files:
        build = _builder(tag, formats, pending)
        state.add_merged(jobs.summary("probe", tag, at, wall, build, 16 * _ladder.N_LIMITS))
    callback = state.on_anomaly
    if callback is not None:
        state.add_merged(jobs.call_back(lambda: _report(tag, at, pending, callback),
                                        f"on_anomaly for probe {tag!r}"))  # fmt: skip


def _builder(tag: str, formats: tuple[str, ...], pending: Pending[tuple]) -> object:
    def build() -> summary_pb2.Summary | None:
        counts, (stats,) = pending.result()
        nonfinite = stats.nan + stats.posinf + stats.neginf
        if not stats.count and not nonfinite:
            return None  # the probe saw nothing since the last collect
        summary = summary_pb2.Summary()
        if stats.count:
            ladder = counts[: _ladder.N_LIMITS]
            result = HistogramResult(limits=_ladder.LIMITS, counts=ladder, stats=stats)
            summary = histogram_summary(tag, result, True)
        if nonfinite:
            summary.value.append(_scalar(f"{tag}/nonfinite", float(nonfinite)))
        pairs = counts[_ladder.N_LIMITS :].reshape(len(formats), 2)
        for name, (overflow, underflow) in zip(formats, pairs, strict=True):
            summary.value.append(_scalar(f"{tag}/lowp/{name}/overflow", float(overflow)))
            summary.value.append(_scalar(f"{tag}/lowp/{name}/underflow", float(underflow)))
        return summary

    return build


def _report(tag: str, step: int, pending: Pending[tuple], callback: object) -> None:
    _, (stats,) = pending.result()
    if not (stats.nan or stats.posinf or stats.neginf):
        return
    callback(AnomalyReport(tag=tag, step=step, nan=stats.nan, posinf=stats.posinf,
                           neginf=stats.neginf, below=0, above=0, count=stats.count,
                           positions=(), quantiles={}, whiskers=None,
                           heatmap=np.zeros((0, 0)), tensors=(tag,)))  # fmt: skip
