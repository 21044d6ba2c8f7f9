"""``add_histogram`` and ``add_histograms``: reductions launched on the tensors' backends,
merged across ranks when distributed, Summaries built on the writer thread.

``add_histograms`` groups its tensors into as few launches as their backends allow: device
tensors of one device, dtype and stream in one multi-tensor launch (CUDA torch tensors read
directly, never wrapped one by one); host arrays one group per dtype.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

from gpu_summary._backend import backend_for, device_backend
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._core.results import Derived, HistogramResult, Pending
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.histogram import histogram_summary, merge_buckets

# Where each tensor's histogram is: (the pending list of its group, its position in it).
Placed = tuple[Pending[list[HistogramResult]], int]


def launch_ladder_histograms(pairs: list[tuple[str, object]]) -> list[Placed]:
    """Launch the ladder histogram of every ``(name, tensor)``, grouped; no sync.

    Raises:
        TypeError: a tensor that is not numeric, or on a device without the device backend
            (the message names ``named_tensors[name]``).
    """
    groups: dict[tuple, list[int]] = {}
    adopted: dict[int, tuple] = {}
    torch = sys.modules.get("torch")
    on_torch_devices = []
    for k, (name, tensor) in enumerate(pairs):
        if torch is not None and isinstance(tensor, torch.Tensor) and tensor.is_cuda:
            on_torch_devices.append(k)
            continue
        backend, array = backend_for(tensor, f"named_tensors[{name!r}]")
        adopted[k] = (backend, array)
        stream = getattr(getattr(array, "stream", None), "ptr", None)
        key = (backend.__name__, getattr(array, "device_id", None), str(array.dtype), stream)
        groups.setdefault(key, []).append(k)
    placed: list = [None] * len(pairs)
    if on_torch_devices:
        cuda = device_backend(pairs[on_torch_devices[0]][1], "named_tensors")
        tensors = [pairs[k][1] for k in on_torch_devices]
        for members, pending in cuda.histograms_torch(tensors):
            for position, m in enumerate(members):
                placed[on_torch_devices[m]] = (pending, position)
    for members in groups.values():
        backend = adopted[members[0]][0]
        pending = backend.histograms([adopted[k][1] for k in members])
        for position, k in enumerate(members):
            placed[k] = (pending, position)
    return placed


def log_histogram(
    state: WriterState,
    tag: str,
    values: object,
    step: int | None = None,
    bins: str | int | Sequence[float] = "tensorflow",
    walltime: float | None = None,
    max_bins: int | None = None,
) -> None:
    """SummaryWriter.add_histogram, on a writer's state."""
    tag, step, wall = state.begin(tag, step, walltime)
    mode, spec = arguments.bin_spec(bins)
    if max_bins is not None:
        max_bins = arguments.check_positive_int(
            max_bins, "max_bins", "ask for at least one bucket, e.g. max_bins=64"
        )
    backend, array = backend_for(values, "values")
    if mode == "numpy_rule":
        if backend is not numpy_backend or state.aggregation is not None:
            raise ValueError(
                f"bins={spec!r} (numpy's estimator) needs the whole tensor on one host; for a "
                "device or distributed tensor pass bins='tensorflow', a number of bins or edges"
            )
        mode, spec = "edges", numpy_backend.rule_limits(array, spec)
    if state.aggregation is not None:
        step = state.resolve_step(tag, step)
        if mode == "even":
            shard = backend.snapshot(array)  # counted once the global range is known

            def count(lo: float, hi: float, shard: object = shard) -> object:
                return backend.even_counts(shard, lo, hi, spec)

            stats = backend.tensor_stats(shard)
            pending = state.aggregation.histogram_even(stats, count, tag, step, spec)
        else:
            local = backend.histogram_fixed(array, spec)
            pending = state.aggregation.histogram(local, tag, step, spec)
    elif mode == "even":
        pending = backend.histogram_even(array, spec)
    else:
        pending = backend.histogram_fixed(array, spec)
    collapse = mode == "ladder"

    def build() -> summary_pb2.Summary:
        result = pending.result()
        if max_bins is not None:
            result = merge_buckets(result, max_bins)
        return histogram_summary(tag, result, collapse)

    state.enqueue("histogram", tag, step, wall, build)


def log_histograms(
    state: WriterState,
    named_tensors: object,
    step: int | None = None,
    prefix: str = "",
    walltime: float | None = None,
    *,
    check_nonfinite: bool = False,
) -> None:
    """SummaryWriter.add_histograms, on a writer's state."""
    state.events.check_open()
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__}")
    pairs = arguments.named_pairs(named_tensors)
    tags = [arguments.check_tag(prefix + name, "names") for name, _ in pairs]
    if state.aggregation is not None:
        state.aggregation.aggregator.raise_error()
    checked_step = None if step is None else arguments.check_step(step)
    wall = time.time() if walltime is None else arguments.check_walltime(walltime)
    placed = launch_ladder_histograms(pairs)
    steps = [state.resolve_step(tag, checked_step) for tag in tags]
    for event_step in dict.fromkeys(steps):
        chosen = [k for k, s_ in enumerate(steps) if s_ == event_step]

        def gather(chosen: list[int] = chosen) -> list:
            return [placed[k][0].result()[placed[k][1]] for k in chosen]

        histograms = Derived(gather)
        if state.aggregation is not None:  # all of them merged by one pair of collectives
            histograms = state.aggregation.histograms(
                histograms, [tags[k] for k in chosen], event_step
            )

        def build(
            chosen: list[int] = chosen, histograms: Pending = histograms
        ) -> summary_pb2.Summary:
            summary = summary_pb2.Summary()
            results = histograms.result()
            for k, histogram in zip(chosen, results, strict=True):
                summary.value.extend(histogram_summary(tags[k], histogram, True).value)
            if check_nonfinite:
                total = sum(h.stats.nan + h.stats.posinf + h.stats.neginf for h in results)
                summary.value.add(tag=f"{prefix}nonfinite", simple_value=total)
            return summary

        state.events.add(jobs.summary("histograms", tags[chosen[0]], event_step, wall, build))
        if check_nonfinite and state.on_anomaly is not None:
            chosen_tags = [tags[k] for k in chosen]
            state.events.add(
                jobs.nonfinite_call_back(chosen_tags, histograms, event_step, state.on_anomaly)
            )
