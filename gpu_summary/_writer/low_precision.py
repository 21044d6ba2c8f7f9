"""``formats=`` of ``add_histogram``, ``add_histograms`` and ``gs.watch``: each tensor's
low-precision overflow and underflow counts (``gpu_summary._core.formats``).

The counts are launched on the tensor's backend on the caller's thread, beside its histogram
(on a device: one small kernel a tensor, and one copy back for a call's tensors of a device;
no sync), and written by the writer thread as scalars ``<tag>/lowp/<format>/overflow`` and
``<tag>/lowp/<format>/underflow`` at the histogram's step, one Event for a call's tensors.
With ``distributed`` each rank's counts are summed (one merge a call): the counts of the
whole tensor, exactly. ``window=`` is refused with ``formats``: a window writes one record
per K steps, and these counts are per step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import formats as _formats
from gpu_summary._core.results import Derived, Pending
from gpu_summary._distributed.merge import Merge
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2


def check(formats: object, window: object = None) -> tuple[str, ...]:
    """``formats`` checked (``_core.formats.check_formats``), refused beside a ``window``.

    Raises:
        TypeError: not a format name or a sequence of them.
        ValueError: an unknown or repeated name; formats with ``window``.
    """
    names = _formats.check_formats(formats)
    if names and window is not None:
        raise ValueError(
            "formats= counts each step's values and window= writes one record per window: "
            "they do not combine; log the counts without window (e.g. every K-th step), or "
            "drop formats"
        )
    return names


def launch(backend: object, array: object, formats: tuple[str, ...]) -> Pending[np.ndarray]:
    """The counts of one tensor, launched on its backend (no sync)."""
    return backend.format_counts(array, formats)


def launch_each(
    pairs: Sequence[tuple[str, object]], formats: tuple[str, ...], argument: str
) -> list[Pending[np.ndarray]]:
    """The counts of each ``(name, tensor)``, in order: host arrays one by one, device
    tensors of one device together (a launch each, one copy back). No sync."""
    pending: list = [None] * len(pairs)
    groups: dict[int, list[tuple[int, object]]] = {}
    device = None
    for k, (name, tensor) in enumerate(pairs):
        backend, array = backend_for(tensor, f"{argument}[{name!r}]", drop_masked=True)
        if backend is numpy_backend:
            pending[k] = backend.format_counts(array, formats)
        else:
            device = backend
            groups.setdefault(array.device_id, []).append((k, array))
    for members in groups.values():
        together = device.format_counts_many([array for _, array in members], formats)
        for position, (k, _) in enumerate(members):
            pending[k] = Derived(lambda t=together, at=position: t.result()[at])
    return pending


class CountsMerge(Merge):
    """The counts of a call's tensors, summed over the ranks (float64 words: exact up to
    2**53 values)."""

    def __init__(self, local: list[Pending[np.ndarray]], size: int, signature: str,
                 description: str) -> None:  # fmt: skip
        super().__init__(signature, description)
        self._local, self._size = local, size
        self._counts = np.zeros(0)

    def prepare(self) -> np.ndarray:
        self._counts = np.concatenate([p.result().ravel() for p in self._local])
        return np.zeros(0)

    def sum_size(self, mins: np.ndarray) -> int:
        return self._size

    def sums(self, mins: np.ndarray) -> np.ndarray:
        return self._counts.astype(np.float64)

    def merge(self, mins: np.ndarray, sums: np.ndarray) -> np.ndarray:
        return sums.astype(np.int64)


def queue(
    state: WriterState,
    tags: list[str],
    step: int,
    wall: float,
    counts: list[Pending[np.ndarray]],
    formats: tuple[str, ...],
) -> None:
    """Queue the counts of the tensors logged as ``tags`` at ``step`` (resolved): one Event of
    their scalars, built on the writer thread (merged across ranks first, when distributed)."""
    names = [name for tag in tags for name in _formats.count_tags(tag, formats)]
    if state.aggregation is not None:
        signature = "\x1e".join(f"formats\x1f{t}\x1f{step}\x1f{','.join(formats)}" for t in tags)
        description = f"the formats={list(formats)} counts of {tags[0]!r} at step {step}"
        merge = CountsMerge(counts, len(names), signature, description)
        state.aggregation.exchange.add(merge, step)
        merged = merge.merged

        def values() -> np.ndarray:
            return merged.result()
    else:

        def values() -> np.ndarray:
            return np.concatenate([p.result().ravel() for p in counts])

    def build() -> summary_pb2.Summary:
        found = values()
        return summary_pb2.Summary(value=[
            summary_pb2.Summary.Value(tag=name, simple_value=float(count))
            for name, count in zip(names, found, strict=True)
        ])  # fmt: skip

    state.add_merged(jobs.summary("formats counts", tags[0], step, wall, build, 16 * len(names)))
