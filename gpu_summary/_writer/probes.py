"""Probes: statistics from inside ``torch.compile(fullgraph=True)`` code and captured CUDA
graphs, read back outside.

``writer.probe(tag)`` makes a :class:`~gpu_summary._backend.probe_operator.Probe` (the torch
operator that adds into a static accumulator from compiled and captured code), one per tag.

``writer.collect(step)`` takes every probe's accumulators (copied out and emptied on the
stream, in probe order) and queues one record per probe: the histogram of every value the probe
saw since the last collect, the non-finite count beside it, and the format counts; with
``distributed``, merged over the ranks as a one-step window.
"""

from __future__ import annotations

import threading

import numpy as np

from gpu_summary._backend.probe_operator import Probe, register
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout
from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.formats import count_tags
from gpu_summary._core.results import Derived, HistogramResult, Pending, TensorStats
from gpu_summary._writer import jobs
from gpu_summary._writer.step_windows import WindowedState, merged_stats
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.histogram import histogram_summary


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
        tags = count_tags(tag, formats)  # overflow then underflow, as the counts lie
        for name, count in zip(tags, counts[_ladder.N_LIMITS :], strict=True):
            summary.value.append(_scalar(name, float(count)))
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
