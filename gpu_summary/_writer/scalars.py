"""``add_scalar`` beyond its hot path (``SummaryWriter.add_scalar`` writes a Python number
with a plain tag and step itself): device values, arrays, reductions across ranks."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from gpu_summary import distributed as _distributed
from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._writer import jobs, windows
from gpu_summary._writer.state import WriterState
from gpu_summary.distributed import AggregationFailed, Merged


def log_scalar(
    state: WriterState,
    tag: str,
    value: object,
    step: int | None = None,
    walltime: float | None = None,
    reduce: str = "mean",
    new_style: bool = False,
    double_precision: bool = False,
    window: int | None = None,
) -> None:
    """SummaryWriter.add_scalar for values other than plain numbers (or ``new_style``, or
    ``window``)."""
    tag, step, wall = state.begin(tag, step, walltime)
    if window is not None:
        size = windows.check_window(window)
        if new_style or double_precision:
            raise ValueError("window writes its reductions as plain scalars; drop new_style and "
                             "double_precision, or log without window")  # fmt: skip
        if type(value) is int:
            value = arguments.to_float(value)
        if type(value) is float or isinstance(value, (np.floating, np.integer, np.bool_)):
            step = state.resolve_step(tag, step)  # a plain number: counted in Python
            windows.add_scalar(state, tag, windows.NUMBERS, float(value), step, wall, reduce, size)
            return
        backend, array = backend_for(value, "scalar_value")
        if getattr(array, "size", 1) != 1:
            raise ValueError(f"scalar_value must be a single number, got an array of shape "
                             f"{tuple(array.shape)}")  # fmt: skip
        windows.check_reductions(reduce)
        step = state.resolve_step(tag, step)
        windows.add_scalar(state, tag, backend, array, step, wall, reduce, size)
        return
    state.windows.check_plain("scalar", tag)
    if reduce not in _distributed.REDUCTIONS:
        raise ValueError(f"reduce must be one of {list(_distributed.REDUCTIONS)}, got {reduce!r}")
    if type(value) is int:  # beyond float64 it would become an object array: ±inf instead
        value = arguments.to_float(value)
    backend, array = backend_for(value, "scalar_value")
    if getattr(array, "size", 1) != 1:
        raise ValueError(
            f"scalar_value must be a single number, got an array of shape {tuple(array.shape)}; "
            "reduce it first (e.g. .mean()) or log it with add_histogram"
        )
    step = state.resolve_step(tag, step)
    pending = backend.scalar(array)
    if state.aggregation is not None:
        pending = state.aggregation.scalar(pending, tag, step, reduce)
    if new_style:
        state.add_merged(jobs.pending_tensor_scalar(tag, pending, step, wall, double_precision))
    else:
        state.add_merged(jobs.pending_scalar(tag, pending, step, wall))


def log_scalars(
    state: WriterState,
    main_tag: object,
    tag_scalar_dict: object,
    step: int | None = None,
    walltime: float | None = None,
) -> None:
    """SummaryWriter.add_scalars: each value under ``main_tag`` in a run of its own,
    ``<log_dir>/<main_tag, "/" as "_">_<tag>``, as torch writes them (one chart in
    TensorBoard, a line per run); every value checked before any is queued."""
    main_tag, step, wall = state.begin(main_tag, step, walltime)
    if not isinstance(tag_scalar_dict, Mapping):
        raise TypeError(
            f"tag_scalar_dict must be a dict {{tag: value}}, got {type(tag_scalar_dict).__name__}"
        )
    if not tag_scalar_dict:
        raise ValueError("tag_scalar_dict is empty; give at least one {tag: value}")
    if "\0" in main_tag:
        raise ValueError(f"main_tag {main_tag!r} holds a NUL character, which a run folder's "
                         "name cannot; remove it")  # fmt: skip
    values = []
    for tag, value in tag_scalar_dict.items():
        tag = arguments.check_tag(tag, "tag_scalar_dict key")
        if "\0" in tag:
            raise ValueError(f"tag_scalar_dict key {tag!r} holds a NUL character, which a run "
                             "folder's name cannot; remove it")  # fmt: skip
        run = f"{main_tag.replace('/', '_')}_{tag}"
        if ".." in run.split("/"):
            raise ValueError(
                f"tag_scalar_dict key {tag!r} would name a run outside log_dir; drop the '..'"
            )
        folder = os.path.join(state.logdir, run)
        if folder not in state.subruns:  # made below, before any value is logged
            what = (f"main_tag {main_tag!r:.40} and tag_scalar_dict key {tag!r:.40} make the "
                    f"run folder {run!r:.60}")  # fmt: skip
            arguments.check_folder(state.logdir, run, what, state.writes_files)
        if type(value) is int:  # beyond float64: ±inf, as add_scalar
            value = arguments.to_float(value)
        backend, array = backend_for(value, "tag_scalar_dict value")
        if getattr(array, "size", 1) != 1:
            raise ValueError(
                f"tag_scalar_dict[{tag!r}] must be a single number, got an array of shape "
                f"{tuple(array.shape)}"
            )
        values.append((tag, run, backend, array))
    step = state.resolve_step("\0add_scalars\0" + main_tag, step)  # the values share a step
    # Every run's file first: one that cannot be made fails the call before any value is
    # merged (a distributed step's merges are all or nothing on every rank).
    runs = {run: state.subrun(os.path.join(state.logdir, run)) if state.writes_files else None
            for _, run, _, _ in values}  # fmt: skip
    for tag, run, backend, array in values:
        pending = backend.scalar(array)
        if state.aggregation is not None:
            pending = state.aggregation.scalar(pending, f"{main_tag}\0{run}", step, "mean")
        if state.writes_files:
            events = runs[run]
            state.add_merged(jobs.pending_scalar(main_tag, pending, step, wall), events)
            key = os.path.join(state.logdir, main_tag, tag)  # tensorboardX's key
            with state.steps_lock:
                state.exported_scalars.setdefault(key, []).append((wall, step, pending))


def export_scalars(state: WriterState, path: object) -> None:
    """SummaryWriter.export_scalars_to_json: add_scalars' values since the last export, as
    tensorboardX writes them (merged values where distributed; a merge that failed: left out;
    the values of the step whose merge has not started yet: kept for the next export)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file path, got {type(path).__name__}: {path!r}")
    if state.aggregation is not None:
        state.aggregation.exchange.wait()  # the sealed steps' merges done
    with state.steps_lock:
        everything, state.exported_scalars = state.exported_scalars, {}
    taken: dict[str, list[tuple[float, int, object]]] = {}
    later: dict[str, list[tuple[float, int, object]]] = {}
    for key, entries in everything.items():
        for entry in entries:
            pending = entry[2]
            open_step = isinstance(pending, Merged) and not pending.done()
            (later if open_step else taken).setdefault(key, []).append(entry)
    if later:
        _keep(state, later)
    table: dict[str, list[list[float]]] = {}
    for key, entries in taken.items():
        rows = table.setdefault(key, [])
        for wall, step, pending in entries:
            try:
                rows.append([wall, step, float(pending.result())])
            except AggregationFailed:
                continue
    try:
        with open(path, "w", encoding="utf-8") as out:
            json.dump(table, out)
    except OSError:
        _keep(state, taken)
        raise


def _keep(state: WriterState, entries: dict[str, list[tuple[float, int, object]]]) -> None:
    """Put ``entries`` back for a later export, ahead of what was logged since."""
    with state.steps_lock:
        for key, since in state.exported_scalars.items():
            entries.setdefault(key, []).extend(since)
        state.exported_scalars = entries
