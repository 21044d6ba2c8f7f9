"""``add_hparams``: hyperparameters and metrics for the HParams dashboard, checked at the call
(``gpu_summary.hparams``). A run of its own is written whole on the caller's thread; the
writer's own run (``run_name="."``) gets its session queued, ended at close, and the metric
values logged as scalars with ``add_scalar``."""

from __future__ import annotations

import os
import time
from typing import Protocol

from gpu_summary import hparams as hp
from gpu_summary._core import arguments
from gpu_summary._events.event_file import write_event_file
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import event_pb2
from gpu_summary.summaries import hparams as hparams_summaries
from gpu_summary.summaries.scalar import scalar_summary


class ScalarAdder(Protocol):
    """``SummaryWriter.add_scalar`` as ``add_hparams`` calls it for the metric values of the
    writer's own run (the writer inherits it with its scalar methods, which this kind does not
    import)."""

    def __call__(
        self,
        tag: str,
        scalar_value: object,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None: ...


def _run_events(session: hp.Session, step: int, wall_time: float) -> list[bytes]:
    """The serialized Events of a run of its own for one ``add_hparams`` call, as torch makes
    one: the experiment, the session's start, each metric value as a scalar at ``step``, and
    the session's end (success). Written whole by the caller, not queued."""
    summaries = [
        hparams_summaries.experiment_summary(session, wall_time),
        hparams_summaries.session_start_summary(session, wall_time),
    ]
    summaries += [scalar_summary(metric.name, value) for metric, value in session.metrics]
    summaries.append(hparams_summaries.session_end_summary("success", wall_time))
    return [
        event_pb2.Event(wall_time=wall_time, step=step, summary=s).SerializeToString()
        for s in summaries
    ]


class HparamsMethods:
    """The hparams method of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState
    add_scalar: ScalarAdder

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
        state = self._state
        state.events.check_open()
        run = arguments.check_run_name(run_name)
        session = hp.torch_session(hparam_dict, metric_dict, hparam_domain_discrete)
        # the records' step and wall time (the metric values' are add_scalar's, below)
        record_step, record_walltime = state.defaults(global_step, walltime)
        record_step = 0 if record_step is None else arguments.check_step(record_step)
        wall = time.time() if record_walltime is None else arguments.check_walltime(record_walltime)
        if run == os.curdir:
            # The writer's own run: its session written once (later calls must agree), ended
            # at close; the metric values logged as add_scalar logs them, at global_step.
            if state.session.open(session):
                experiment = hparams_summaries.experiment_summary
                start = hparams_summaries.session_start_summary
                experiment_tag = hparams_summaries.EXPERIMENT_TAG
                start_tag = hparams_summaries.SESSION_START_INFO_TAG
                state.enqueue("hparams", experiment_tag, record_step, wall,
                              lambda: experiment(session, wall))  # fmt: skip
                state.enqueue("hparams", start_tag, record_step, wall,
                              lambda: start(session, wall))  # fmt: skip
                state.session.end_at_close("success")
            for metric, value in session.metrics:
                if value is not None:
                    self.add_scalar(metric.name, value, global_step, walltime)
            return
        declared = [metric.name for metric, value in session.metrics if value is None]
        if declared:
            raise ValueError(
                f"metrics {declared!r} have no value: a run of its own is written whole, so give "
                "each metric its value, or log the hparams into this writer's run with "
                "run_name='.' (then None declares a metric you log with add_scalar)"
            )
        if run is not None:  # a name that cannot be a folder is refused before anything is made
            what = f"run_name {run_name!r:.60}"
            arguments.check_folder(state.logdir, run, what, state.writes_files)
        if state.writes_files:
            # Written here, whole, before the call returns (as torch's writer closes the run's
            # own writer before it returns): the run is on disk for whoever reads or moves it
            # next.
            write_event_file(state.hparams_folder(run), _run_events(session, record_step, wall))
