"""``gs.watch``: log a whole torch model every step, without a host sync.

``watch(model, writer, log="gradients", every=1, anomaly=True)`` installs hooks:

- gradients: a post-accumulate-grad hook on every trainable parameter notes that a backward
  pass is running and queues one callback at its end (the autograd engine's
  ``queue_callback``, as DistributedDataParallel does); that callback logs every gradient with
  one ``add_histograms`` call (``gradients/<name>``), every ``every``-th backward pass;
- parameters: a forward pre-hook on the model logs every parameter (``parameters/<name>``)
  before every ``every``-th forward pass, i.e. as the last optimiser step left them.

With ``anomaly=True`` each logging also writes ``gradients/nonfinite`` (or
``parameters/nonfinite``), the number of NaN/±Inf over the model, and calls the writer's
``on_anomaly`` with a report whose ``tag`` is the first tensor (in ``named_parameters()``
order) holding one and whose ``tensors`` lists them all. Steps count the backward (forward)
passes seen, from 0. ``unwatch()`` (or ``Watch.remove()``) removes every hook.

With ``flight_recorder=K`` the same hooks also keep, at every pass whatever ``every`` is, the
last K steps of each watched tensor's min, max, mean, root mean square, NaN/±Inf count and
zero count where the tensors live, without copying them to the host
(``gpu_summary._writer.flight_recorder``). When a tensor first holds NaN or ±Inf, the writer
logs a table of them under ``flight_recorder``, at that step, naming the first offending
tensor in the order the step produced them (parameters before the forward pass, then the
gradients in the order backward accumulated them), and reports it to ``on_anomaly``. With
gradients watched, the recorder's steps count backward passes: the parameters it keeps before
a forward pass belong to the step of the next backward pass, whatever forward passes without
one (evaluation) come between.
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING

from gpu_summary._core import arguments
from gpu_summary._writer import flight_recorder as _flight
from gpu_summary._writer import low_precision, step_windows

if TYPE_CHECKING:
    from gpu_summary.writer import SummaryWriter

LOGS = ("gradients", "parameters", "all")
_watches: dict[int, list[Watch]] = {}
_lock = threading.Lock()


class Watch:
    """The hooks ``watch`` installed on one model; ``remove()`` takes them all out.

    Attributes:
        flight: the flight recorder (``flight_recorder=K``), or None.
    """

    def __init__(
        self,
        model: object,
        writer: SummaryWriter,
        log: str,
        every: int,
        anomaly: bool,
        window: int | None = None,
        flight_recorder: int | None = None,
        *,
        formats: object = (),
    ) -> None:
        try:
            import torch
        except ImportError as exc:
            raise TypeError("gs.watch needs PyTorch: model must be a torch.nn.Module") from exc
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if log not in LOGS:
            raise ValueError(f"log must be one of {list(LOGS)}, got {log!r}")
        self.every = arguments.check_positive_int(every, "every", "log every step: every=1")
        self.model, self.writer, self.anomaly = model, writer, bool(anomaly)
        self.window = None if window is None else step_windows.check_window(window)
        slots = None if flight_recorder is None else _flight.check_slots(flight_recorder)
        self.formats = low_precision.check(formats, window)
        self.backward_passes = 0
        self.forward_passes = 0
        self._queued = False
        self._pending: list[bool] = [True]  # the queued callback's ``ran``
        self._engine = torch.autograd.Variable._execution_engine
        self._handles: list = []
        named = list(model.named_parameters())
        if log in ("gradients", "all"):
            self._trainable = [(name, p) for name, p in named if p.requires_grad]
            if not hasattr(torch.Tensor, "register_post_accumulate_grad_hook"):
                raise TypeError("gs.watch(log='gradients') needs PyTorch >= 2.1")
            for _, parameter in self._trainable:
                self._handles.append(parameter.register_post_accumulate_grad_hook(self._noted))
        if log in ("parameters", "all"):
            self._parameters = named
            self._handles.append(model.register_forward_pre_hook(self._before_forward))
        self.flight: _flight.FlightRecorder | None = None
        if slots is not None:
            try:
                self._start_flight_recorder(slots, log)
            except BaseException:
                self.remove()  # no hook left behind
                raise
        with _lock:
            _watches.setdefault(id(model), []).append(self)

    def _start_flight_recorder(self, slots: int, log: str) -> None:
        """The recorder's columns: the parameters, then the gradients, in
        ``named_parameters()`` order; a step's orders: the parameters in that order, then the
        gradients in the order backward produced them."""
        tags = []
        if log in ("parameters", "all"):
            tags += [f"parameters/{name}" for name, _ in self._parameters]
        self._gradient_base = len(tags)
        self._gradient_columns: dict[int, int] = {}
        if log in ("gradients", "all"):
            for name, parameter in self._trainable:
                self._gradient_columns[id(parameter)] = len(tags)
                tags.append(f"gradients/{name}")
        self._produced: list = []  # this backward pass's parameters, as their grads came
        # With gradients watched, a step is a backward pass: the parameters recorded before a
        # forward pass are those of the next backward pass's step, however many forward passes
        # (evaluation, accumulation) come between two backward passes.
        ending = "gradients" if self._gradient_columns else "parameters"
        state = getattr(self.writer, "_state", None)
        if state is None:
            raise TypeError("flight_recorder needs a gpu_summary.SummaryWriter, got "
                            f"{type(self.writer).__name__}")  # fmt: skip
        self.flight = _flight.FlightRecorder(state, slots, tags, ending)

    def _record_gradients(self, step: int) -> None:
        produced, self._produced = self._produced, []
        seen: dict[int, object] = {}
        for parameter in produced:  # a parameter whose hook ran twice counts once, first
            seen.setdefault(id(parameter), parameter)
        entries = [(self._gradient_columns[key], self._gradient_base + k, parameter.grad)
                   for k, (key, parameter) in enumerate(seen.items())
                   if parameter.grad is not None]  # fmt: skip
        self.flight.record("gradients", step, entries)

    def _noted(self, parameter: object) -> None:
        if self.flight is not None:
            self._produced.append(parameter)
        if not self._queued:
            self._queued = True
            callback = _EndOfBackward(self._after_backward)
            self._pending = callback.ran  # not the callback: the engine must hold it alone
            # A backward pass that raises drops its callbacks unrun: the next pass queues again.
            weakref.finalize(callback, self._dropped, callback.ran).atexit = False
            self._engine.queue_callback(callback)

    def _dropped(self, ran: list[bool]) -> None:
        if not ran[0] and ran is self._pending:
            self._queued, self._produced = False, []  # the raised pass's gradients go unlogged

    def _after_backward(self) -> None:
        self._queued = False
        step = self.backward_passes
        self.backward_passes += 1
        if self.flight is not None:
            self._record_gradients(step)
        if step % self.every:
            return
        grads = [(name, p.grad) for name, p in self._trainable if p.grad is not None]
        if grads:
            self.writer.add_histograms(grads, step, prefix="gradients/",
                                       check_nonfinite=self.anomaly and self.window is None,
                                       window=self.window, formats=self.formats)  # fmt: skip

    def _before_forward(self, module: object, args: object) -> None:
        step = self.forward_passes
        self.forward_passes += 1
        if self.flight is not None:
            entries = [(k, k, p.detach()) for k, (_, p) in enumerate(self._parameters)]
            by_backward = self.flight.ending == "gradients"
            self.flight.record("parameters", self.backward_passes if by_backward else step, entries)
        if step % self.every:
            return
        tensors = [(name, p.detach()) for name, p in self._parameters]
        self.writer.add_histograms(tensors, step, prefix="parameters/",
                                   check_nonfinite=self.anomaly and self.window is None,
                                   window=self.window, formats=self.formats)  # fmt: skip

    def remove(self) -> None:
        """Remove every hook of this watch (idempotent)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        if self.flight is not None:
            self.flight.detach()
        with _lock:
            watches = _watches.get(id(self.model), [])
            if self in watches:
                watches.remove(self)
            if not watches:
                _watches.pop(id(self.model), None)


class _EndOfBackward:
    """The callback queued at the end of one backward pass; ``ran`` says whether it ran."""

    __slots__ = ("__weakref__", "_run", "ran")

    def __init__(self, run: object) -> None:
        self._run, self.ran = run, [False]

    def __call__(self) -> None:
        self.ran[0] = True
        self._run()


def watch(
    model: object,
    writer: SummaryWriter,
    log: str = "gradients",
    every: int = 1,
    anomaly: bool = True,
    window: int | None = None,
    flight_recorder: int | None = None,
    *,
    formats: str | tuple[str, ...] = (),
) -> Watch:
    """Log ``model``'s gradients and/or parameters to ``writer`` (see the module docstring).

    Args:
        model: a ``torch.nn.Module``.
        writer: a :class:`~gpu_summary.SummaryWriter`.
        log: ``"gradients"`` (after each backward pass), ``"parameters"`` (before each
            forward pass) or ``"all"``.
        every: log every ``every``-th pass.
        anomaly: also count NaN/±Inf per tensor and report them through ``on_anomaly``.
        window: one record per tensor every ``window`` logged passes, of every value of every
            pass (``add_histograms(window=...)``; with ``every=1`` no step is missed); a
            window's NaN/±Inf and its first step are written beside it and reported.
        flight_recorder: None (off), or K: keep the last K steps (1 to 1000) of every watched
            tensor's min, max, mean, rms, NaN/±Inf count and zero count, at every pass
            whatever ``every`` is, where the tensors live (a ring on the tensors' device:
            one launch per dtype and a copy of one word back a step, never waited for by
            the training). When a tensor first holds NaN or ±Inf, the writer thread logs one text
            table under ``flight_recorder`` (``flight_recorder/text_summary``, as
            ``add_text``) at that step: the first offending tensor in the order the step
            produced them, then each tensor's K steps up to and including that step; and
            calls ``on_anomaly`` with a report whose ``tag`` is ``"flight_recorder"`` and
            whose ``tensors`` are the step's offenders, the first one first. One table per
            watch; after it the recorder stops. See the docs' "Flight recorder" page.
        formats: low-precision formats (``"float8_e4m3fn"``, ``"float8_e5m2"``, ``"float16"``,
            ``"bfloat16"``) whose overflow and underflow counts are logged for every tensor
            (``add_histograms(formats=...)``: ``gradients/<name>/lowp/<format>/overflow``,
            ...). Not with ``window``.

    Returns:
        The :class:`Watch`; ``unwatch(model)`` or ``watch.remove()`` removes its hooks.

    Raises:
        TypeError: ``model`` is not a torch module (or PyTorch is missing / older than 2.1);
            ``flight_recorder`` is not an int, or ``writer`` not gpu_summary's with it.
        ValueError: an unknown ``log``; ``every`` < 1; ``flight_recorder`` outside 1..1000;
            an unknown or repeated format, ``formats`` with ``window``.
    """
    return Watch(model, writer, log, every, anomaly, window, flight_recorder, formats=formats)


def unwatch(model: object = None) -> None:
    """Remove the hooks of every ``watch`` on ``model`` (every model when None)."""
    with _lock:
        targets = [
            w for key, ws in _watches.items() for w in ws if model is None or key == id(model)
        ]
    for target in targets:
        target.remove()
