"""``add_summary``: a ready-made ``Summary`` message written as one event (no builder of ours:
the caller made it). The writer's file writer (``file_writer.add_summary``, through which
Lightning logs its hparams) writes the same way, so how it is checked and written lives below,
in ``gpu_summary._writer.file_writer.write_summary``."""

from __future__ import annotations

from gpu_summary._core import arguments
from gpu_summary._writer.file_writer import write_summary
from gpu_summary._writer.state import WriterState


class MessageMethods:
    """The ready-made Summary method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_summary(
        self,
        summary: object,
        global_step: int | None = None,
        walltime: float | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Write a ready-made ``Summary`` message as one event (the seed's ``summary.pb``).

        Args:
            summary: a ``Summary`` of any protobuf package (read by its wire format); one
                holding ``_hparams_/session_start_info`` opens an hparams session.
            global_step: global step; None: 0 (with ``count_steps``, its first tag's last + 1).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a Summary. ValueError: no values, or a value with an empty tag.
        """
        write_summary(self._state, summary, arguments.either_step(global_step, step), walltime)
