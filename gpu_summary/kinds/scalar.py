"""``add_scalar`` and ``add_scalars`` (plugin ``scalars``), and ``export_scalars_to_json``'s
table of add_scalars' values.

``add_scalar``'s hot path (a str tag, a Python number, an int step, nothing distributed)
checks just that much and queues a ready job; every other value takes ``_log_scalar``: a
device value or an array reduced on its backend, a step window
(``gpu_summary._writer.step_windows``), a merge across ranks.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping

import numpy as np

from gpu_summary import distributed as _distributed
from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._events.jobs import Job
from gpu_summary._writer import jobs, step_windows
from gpu_summary._writer.jobs import SCALAR
from gpu_summary._writer.state import WriterState
from gpu_summary.distributed import AggregationFailed, Merged

_PLAIN_NUMBERS = (float, int)


class ScalarMethods:
    """The scalar methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_scalar(
        self,
        tag: str,
        scalar_value: object,
        global_step: int | None = None,
        walltime: float | None = None,
        new_style: bool = False,
        double_precision: bool = False,
        *,
        reduce: str | tuple[str, ...] = "mean",
        window: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log one number.

        Args:
            tag: series name, e.g. ``"loss/train"``.
            scalar_value: a Python number, or a one-element array or tensor. NaN and ±Inf are
                logged as they are; magnitudes beyond float32 become ±Inf.
            global_step: global step (int64); None: 0 (with ``count_steps``, this tag's last + 1).
                ``step=`` is the same (every ``add_*`` takes either).
            walltime: seconds since the epoch; default now.
            new_style: write a tensor summary of the scalars plugin (as torch does) instead of
                ``simple_value``; ``double_precision`` keeps it float64 there.
            reduce: with ``distributed``, how ranks' values combine: ``"mean"``, ``"sum"``,
                ``"min"``, ``"max"`` or ``"rank0"`` (no collective). With ``window``, how the
                window's values combine: ``"mean"``, ``"min"``, ``"max"``, ``"sum"``,
                ``"last"`` or a tuple of them (the first written as ``tag``, the others as
                ``tag/<name>``); NaN and ±Inf are counted, not combined.
            window: one record every ``window`` calls of this tag (at the last one's step),
                and one for the calls so far at ``flush()``/``close()``: a device value is
                added up on the device, nothing copied back between records.

        Raises:
            TypeError: a non-numeric value or a tag not a str. ValueError: more than one
                element, an unknown ``reduce``, the writer is closed.
        """
        # The hot path (a str tag, a Python number, an int step) checks just that much.
        value = scalar_value
        if step is not None:
            global_step = arguments.either_step(global_step, step)
        step = global_step
        state = self._state
        if (
            not new_style
            and type(value) in _PLAIN_NUMBERS
            and state.aggregation is None
            and state.metadata is None
            and type(tag) is str
            and tag
            and tag.isascii()  # a flag of the str: others are checked for UTF-8 below
            and walltime is None
            and (
                step is None
                or (type(step) is int and arguments.INT64_MIN <= step <= arguments.INT64_MAX)
            )
        ):
            # a float as it is (no call); an int beyond float64: ±inf
            number = value if type(value) is float else arguments.to_float(value)
            if window is None and (
                not state.windows.sizes or ("scalar", tag) not in state.windows.sizes
            ):
                if step is None:
                    step = state.resolve_step(tag, step)
                else:  # state.resolve_step's own store, without the call
                    state.steps[tag] = step
                state.events.add(Job(SCALAR, (tag, number, step, time.time())))
                return
            if window is not None and not state.events.closed:
                resolved = state.resolve_step(tag, step)
                if step_windows.add_number(
                    state, tag, number, resolved, time.time(), window, reduce
                ):
                    return
                step = resolved  # not an open window of this tag yet: the full path opens one
        _log_scalar(state, tag, value, step, walltime, reduce, new_style, double_precision, window)

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: dict,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log several numbers as lines of one chart, as torch's ``add_scalars``.

        Each value goes under ``main_tag`` into a run of its own,
        ``<log_dir>/<main_tag with "/" as "_">_<tag>`` (an event file there, flushed and closed
        with this writer), so TensorBoard draws one chart with a line per run.

        Args:
            main_tag: the chart's tag, e.g. ``"loss"``.
            tag_scalar_dict: ``{tag: value}``, each value as ``add_scalar`` takes it.
            global_step: global step of every value; None: 0 (with ``count_steps``, this main
                tag's last + 1).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a dict, a key not a str, a non-numeric value. ValueError: an
                empty dict or key, a value of more than one element, a key naming a run
                outside ``log_dir``, a run folder that cannot be made (a NUL, a name longer
                than the file system takes, a file in its place). Every key and value is
                checked before anything is logged; nothing is logged then.
        """
        state = self._state
        step = arguments.either_step(global_step, step)
        main_tag, step, wall = state.begin(main_tag, step, walltime)
        if not isinstance(tag_scalar_dict, Mapping):
            raise TypeError(
                "tag_scalar_dict must be a dict {tag: value}, got "
                f"{type(tag_scalar_dict).__name__}"
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


def _log_scalar(
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
    """add_scalar beyond its hot path: a value other than a plain number (a device value, an
    array, a NumPy scalar), ``new_style``, ``window`` or ``distributed``."""
    tag, step, wall = state.begin(tag, step, walltime)
    if window is not None:
        size = step_windows.check_window(window)
        if new_style or double_precision:
            raise ValueError("window writes its reductions as plain scalars; drop new_style and "
                             "double_precision, or log without window")  # fmt: skip
        if type(value) is int:
            value = arguments.to_float(value)
        if type(value) is float or isinstance(value, (np.floating, np.integer, np.bool_)):
            step = state.resolve_step(tag, step)  # a plain number: counted in Python
            step_windows.add_scalar(
                state, tag, step_windows.NUMBERS, float(value), step, wall, reduce, size
            )
            return
        backend, array = backend_for(value, "scalar_value")
        if getattr(array, "size", 1) != 1:
            raise ValueError(f"scalar_value must be a single number, got an array of shape "
                             f"{tuple(array.shape)}")  # fmt: skip
        step_windows.check_reductions(reduce)
        step = state.resolve_step(tag, step)
        step_windows.add_scalar(state, tag, backend, array, step, wall, reduce, size)
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
