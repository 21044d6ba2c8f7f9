"""Text, ready-made Summaries and hyperparameters."""

from __future__ import annotations

from collections.abc import Sequence

from gpu_summary._core import arguments
from gpu_summary._writer import messages
from gpu_summary._writer.state import WriterState


class TextMethods:
    """Text, Summary and hparams methods of :class:`gpu_summary.SummaryWriter`."""

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
        global_step = arguments.either_step(global_step, step)
        messages.log_text(self._state, tag, text_string, global_step, walltime)

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
        global_step = arguments.either_step(global_step, step)
        messages.log_summary(self._state, summary, global_step, walltime)

    def add_hparams(
        self,
        hparam_dict: dict,
        metric_dict: dict | None = None,
        hparam_domain_discrete: dict | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
        *,
        name: str | None = None,
        walltime: float | None = None,
        step: int | None = None,
    ) -> None:
        """Log one training run's hyperparameters and metrics for the HParams dashboard.

        As torch's: each call is a run of its own, ``<log_dir>/<run_name>`` (default: the time,
        as torch names it), holding the hyperparameters and the metric values as scalars at
        ``global_step`` — so a sweep logs each trial from one writer. That run's event file is
        written whole on the caller's thread and closed before the call returns (as torch's;
        a few hundred bytes, no device work). ``run_name="."`` puts
        the session in this writer's own run instead: written once (a later call must name the
        same values, and logs metric values), ended when the writer closes (failure if its
        ``with`` block raised), and a metric value of None declares a series you log with
        :meth:`add_scalar`.

        Args:
            hparam_dict: ``{key: value}``; a key is a str (a str, bool, number or one-element
                tensor value; None skips it; a bool is stored as torch stores it, 1.0 or 0.0),
                an :class:`~gpu_summary.HParam` (its domain checks the value, a bool stays a
                bool) or a :class:`~gpu_summary.Metric` (as in the seed's API).
            metric_dict: ``{str or Metric: value}``.
            hparam_domain_discrete: ``{key: [values]}``: the values a str key's hyperparameter
                may take (its dashboard filter); the value must be one of them.
            run_name: the run's folder below ``log_dir``; ``name=`` (tensorboardX's) is the
                same, and so is a str in ``hparam_domain_discrete``'s place (its position).
            global_step: step of the records and the metric values (default 0).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not dicts, a key that is not str/HParam/Metric, a value of the wrong
                type. ValueError: a value outside its domain, a name used twice, a run name
                leaving ``log_dir`` or that cannot be a folder there (a name longer than the
                file system takes, a file in its place), a metric without a value in a run of
                its own; with ``run_name="."``, hparams that differ from the run's. Nothing
                is logged then.
            OSError: a run of its own could not be written (a full disk); no partial record.
        """
        if isinstance(hparam_domain_discrete, str) and not isinstance(run_name, str):
            # tensorboardX's positions: (hparam_dict, metric_dict, name, global_step)
            if run_name is not None:
                global_step = arguments.either_step(global_step, run_name)
            hparam_domain_discrete, run_name = None, hparam_domain_discrete
        if name is not None:
            run_name = arguments.either_name(run_name, name)
        global_step = arguments.either_step(global_step, step)
        session = messages.log_hparams(self._state, hparam_dict, metric_dict,
                                       hparam_domain_discrete, run_name, global_step,
                                       walltime)  # fmt: skip
        for metric, value in session.metrics if session is not None else ():
            if value is not None:
                self.add_scalar(metric.name, value, global_step, walltime)  # type: ignore[attr-defined]
