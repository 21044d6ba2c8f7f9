"""Scalars: one number per call, the hot path kept short."""

from __future__ import annotations

import time

from gpu_summary._core import arguments
from gpu_summary._events.jobs import Job
from gpu_summary._writer import scalars, windows
from gpu_summary._writer.jobs import SCALAR
from gpu_summary._writer.state import WriterState

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
            number = arguments.to_float(value)  # an int beyond float64: ±inf
            if window is None and (
                not state.windows.sizes or ("scalar", tag) not in state.windows.sizes
            ):
                step = state.resolve_step(tag, step)
                state.events.add(Job(SCALAR, (tag, number, step, time.time())))
                return
            if window is not None and not state.events.closed:
                resolved = state.resolve_step(tag, step)
                if windows.add_number(state, tag, number, resolved, time.time(), window, reduce):
                    return
                step = resolved  # not an open window of this tag yet: the full path opens one
        scalars.log_scalar(
            state, tag, value, step, walltime, reduce, new_style, double_precision, window
        )

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
        global_step = arguments.either_step(global_step, step)
        scalars.log_scalars(self._state, main_tag, tag_scalar_dict, global_step, walltime)
