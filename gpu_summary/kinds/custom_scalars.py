"""The Custom Scalars layout: ``add_custom_scalars`` and its two chart helpers. Each call's
layout is checked, merged into the run's (a chart of the same title replaced) and the whole
layout written again."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from gpu_summary._writer.state import WriterState
from gpu_summary.summaries import custom_scalars as layout_summaries

CHART_KINDS = ("Multiline", "Margin")


def check_layout(layout: object) -> dict[str, dict[str, tuple[str, list[str]]]]:
    """``add_custom_scalars``' layout checked: ``{category: {chart: [kind, tags]}}`` with
    kind "Multiline" (tags: regular expressions) or "Margin" (tags: value, lower, upper)."""
    if not isinstance(layout, dict) or not layout:
        raise TypeError("layout must be a non-empty dict {category: {chart title: "
                        "['Multiline' or 'Margin', [tags]]}}")  # fmt: skip
    checked: dict[str, dict[str, tuple[str, list[str]]]] = {}
    for category, charts in layout.items():
        where = f"layout[{category!r}]"
        if not isinstance(category, str):
            raise TypeError(f"layout's category names must be str, got {category!r}")
        if not isinstance(charts, dict) or not charts:
            raise TypeError(f"{where} must be a non-empty dict {{chart title: [kind, tags]}}")
        checked[category] = {}
        for title, spec in charts.items():
            here = f"{where}[{title!r}]"
            if not isinstance(title, str):
                raise TypeError(f"{where}'s chart titles must be str, got {title!r}")
            if not isinstance(spec, (list, tuple)) or len(spec) != 2:
                raise TypeError(f"{here} must be [kind, tags], e.g. ['Multiline', ['loss/.*']]")
            kind, tags = spec
            if kind not in CHART_KINDS:
                raise ValueError(f"{here}'s kind must be 'Multiline' or 'Margin', got {kind!r}")
            if isinstance(tags, str) or not isinstance(tags, (list, tuple)) or not tags \
                    or not all(isinstance(t, str) and t for t in tags):  # fmt: skip
                raise TypeError(f"{here}'s tags must be a non-empty list of tag names, got "
                                f"{tags!r}")  # fmt: skip
            if kind == "Margin" and len(tags) != 3:
                raise ValueError(f"{here} is a Margin chart: give 3 tags (value, lower, upper), "
                                 f"got {len(tags)}")  # fmt: skip
            if kind == "Multiline":
                for pattern in tags:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(
                            f"{here}: tag {pattern!r} is not a regular "
                            f"expression ({exc}); escape it with re.escape"
                        ) from None
            checked[category][title] = (kind, list(tags))
    return checked


def _log_layout(state: WriterState, layout: object) -> None:
    """A layout merged into the run's (a category's charts added, a chart of the same title
    replaced), and the whole layout written again."""
    state.check_open()
    checked = check_layout(layout)
    with state.steps_lock:
        for category, charts in checked.items():
            state.custom_layout.setdefault(category, {}).update(charts)
        merged = {category: dict(charts) for category, charts in state.custom_layout.items()}
        version = state.custom_layout_writes
        state.custom_layout_writes += 1
    if not state.writes_files:
        return
    message = layout_summaries.layout_message(merged)
    state.enqueue("custom scalars layout", layout_summaries.CONFIG_TAG, version, time.time(),
                  lambda: layout_summaries.layout_summary(message))  # fmt: skip


class CustomScalarsMethods:
    """The Custom Scalars layout methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_custom_scalars(self, layout: dict) -> None:
        """Lay out the Custom Scalars dashboard.

        Args:
            layout: ``{category: {chart title: ["Multiline", [tag regexes]] or
                ["Margin", [value tag, lower tag, upper tag]]}}``.

        Unlike torch's, calls add up: each merges into this run's layout (a chart of the same
        title in a category is replaced) and the whole layout is written again.

        Raises:
            TypeError: a malformed layout. ValueError: an unknown kind, a Margin chart without
                three tags, a tag that is not a regular expression.
        """
        _log_layout(self._state, layout)

    def add_custom_scalars_multilinechart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart of every scalar tag matching ``tags`` (regular expressions)."""
        _log_layout(self._state, {category: {title: ["Multiline", list(tags)]}})

    def add_custom_scalars_marginchart(
        self, tags: Sequence[str], category: str = "default", title: str = "untitled"
    ) -> None:
        """One chart of a value with a band: ``tags`` = [value, lower, upper]."""
        _log_layout(self._state, {category: {title: ["Margin", list(tags)]}})
