"""``add_text``: a str or a list of str checked at the call, its ``text`` Summary built on the
writer thread under ``<tag>/text_summary`` (torch's and tensorboardX's tag)."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.summaries.text import text_summary


class TextMethods:
    """The text method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_text(
        self,
        tag: str,
        text_string: str | Sequence[str],
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log text, rendered by TensorBoard as Markdown, under ``<tag>/text_summary`` (the tag
        torch's and tensorboardX's writers give it: the same card beside their runs).

        Args:
            tag: series name (``/text_summary`` is appended).
            text_string: a str, or a list of str (shown as a one-column table).
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        strings, _ = arguments.check_text(text_string)
        nbytes = sum(len(string) for string in strings)  # held until written (max_queue_bytes)
        # torch's and tensorboardX's tag and shape (a str is a vector of one): the same card
        shown = tag + "/text_summary"
        state.enqueue("text", tag, step, wall, lambda: text_summary(shown, strings, False), nbytes)
