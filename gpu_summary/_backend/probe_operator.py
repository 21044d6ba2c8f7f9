"""The probe operator: ``probe(x)`` inside ``torch.compile(fullgraph=True)`` code and captured
CUDA graphs adds ``x``'s ladder counts, stats and low-precision format counts into a static
accumulator on ``x``'s device (``_core/probe_layout.py``); ``writer.collect``
(``gpu_summary._writer.probes``) takes them out.

It does so through one registered torch operator (see :func:`register`),
``gpu_summary::probe_add(values, state!, formats)``, whose fake kernel does nothing and which
declares ``state`` mutated: the compiler traces it with no graph break, keeps it (a mutation is
never dead code) and orders it after whatever produced ``values``. Its real kernel is the
tensor's backend's ``probe_add``: on the host the compiled host kernels, on a device one launch
of gs_reduce on the current stream into the static accumulator (no allocation, no sync), so a
CUDA graph captures it and every replay adds again.

The accumulator of a device is allocated on the probe's first use there. In compiled code that
first use is at trace time: :func:`_accumulator` is ``assume_constant_result``, so the compiler
calls it once, with the real device, before it reads the accumulator from the probe: one graph,
the tensor one of its inputs (which it mutates), no recompile when values change, no allocation
inside the graph. Inside a CUDA graph capture a first use is refused (the allocation and the
fill that empties it would be captured too): call the probe once before capturing, as
``torch.cuda.graph``'s warm-up does.
"""

from __future__ import annotations

import os
import threading
import weakref

import numpy as np

from gpu_summary._backend import backend_for, probe_arrays
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import probe_layout
from gpu_summary._core.results import Pending

OPERATOR = "gpu_summary::probe_add"
_SCHEMA = "(Tensor values, Tensor(a!) state, str formats) -> ()"
_registration = threading.Lock()
_library = None  # the torch.library.Library that holds the operator's registration
_torch = None  # the torch module, once the operator is registered
_ops = None  # torch.ops.gpu_summary
_accumulator_for = None  # _accumulator, marked assume_constant_result


def register() -> None:
    """Register the probe operator with torch (once per process).

    It is defined with ``torch.library.Library``: a schema whose ``state`` is mutated
    (``Tensor(a!)``), a kernel for the CPU and CUDA dispatch keys and a fake kernel — the
    registration ``torch.library.custom_op`` makes, without the Python wrapping that costs
    ``custom_op`` 15 to 35 us per call (1.5 us here; benchmarks/bench_probe.py)."""
    global _library, _torch, _ops, _accumulator_for
    with _registration:
        if _ops is not None:
            return
        try:
            import torch
        except ImportError as exc:
            raise TypeError("writer.probe needs PyTorch (a probe is a torch operator); log "
                            "other arrays with add_histogram") from exc  # fmt: skip

        library = torch.library.Library(OPERATOR.split("::")[0], "DEF")
        library.define(f"{OPERATOR.split('::')[1]}{_SCHEMA}")
        for key in ("CPU", "CUDA"):
            library.impl(OPERATOR.split("::")[1], _add, key)

        @torch.library.register_fake(OPERATOR, lib=library)
        def _(values: torch.Tensor, state: torch.Tensor, formats: str) -> None:
            if values.is_complex():  # what the real kernel says, at trace time
                raise TypeError("the probe's tensor must hold bool, integer or floating-point "
                                f"numbers, got dtype {str(values.dtype).removeprefix('torch.')}; "
                                "log its .real, .imag or abs() instead")  # fmt: skip

        if hasattr(torch.library, "register_vmap"):
            torch.library.register_vmap(OPERATOR, _batched, lib=library)
        _library = library  # the registration lives as long as this object
        _accumulator_for = torch.compiler.assume_constant_result(_accumulator)
        _ops = torch.ops.gpu_summary
        _torch = torch


def _batched(info: object, in_dims: tuple, values: object, state: object,
             formats: str) -> tuple[None, None]:  # fmt: skip
    """The operator under ``torch.vmap`` on a batched tensor: every sample's values, as a
    loop over the samples would add them. (A tensor that is not batched never reaches this
    rule: vmap computes with it once, and the probe counts it once.)"""
    _ops.probe_add(values, state, formats)
    return None, None


def _add(values: object, state: object, formats: str) -> None:
    """The operator's real kernel: ``values`` into ``state`` on their backend."""
    names = tuple(formats.split(",")) if formats else ()
    backend, array, target = probe_arrays(values, state)
    backend.probe_add(target, array, names)


def _accumulator(probe: Probe, device: str) -> bool:
    """Allocate ``probe``'s accumulator on ``device`` (empty) unless it has one; True."""
    if device in probe.states:
        return True
    import torch
    from torch.utils._python_dispatch import _disable_current_modes

    where = torch.device(device)
    with probe.lock:
        if device in probe.states:
            return True
        blocks = 0
        if where.type == "cuda":
            if torch.cuda.is_current_stream_capturing():
                raise RuntimeError(
                    f"probe {probe.tag!r} is first used on {device} inside a CUDA graph "
                    "capture; call it once on that device before capturing (torch.cuda.graph's "
                    "warm-up iterations do), so that its accumulator exists outside the graph"
                )
            from gpu_summary._backend.cuda_kernels import reduce as reduce_abi

            blocks = reduce_abi.PROBE_BLOCKS
        elif where.type != "cpu":
            raise TypeError(f"probe {probe.tag!r} got a tensor on {device}; probes read CPU "
                            "and CUDA tensors")  # fmt: skip
        # A plain tensor, whatever modes the first call runs under: not an inference tensor
        # (compiled code could not add into it outside inference_mode), not the fake tensor
        # that torch.export's tracing would make, keep here, and feed its graph a copy of.
        with _disable_current_modes(), torch.inference_mode(False):
            empty = torch.from_numpy(probe_layout.empty(len(probe.formats), blocks))
            state = empty.to(where)  # from pageable memory: copied before this returns
        # Its address never changes: inductor's CUDA graphs (mode="reduce-overhead") may then
        # record a graph that adds into it, as into a parameter, instead of skipping the graph
        # for mutating an input.
        torch._dynamo.mark_static_address(state)
        probe.states[device] = state
        probe.order.append(device)
    return True


class Probe:
    """``probe(x)``: returns ``x``; adds its statistics into this probe's accumulator on
    ``x``'s device, inside compiled code and CUDA graphs too (see the module docstring)."""

    def __init__(self, tag: str, formats: tuple[str, ...]) -> None:
        _probes.add(self)
        self.tag = tag
        self.formats = formats
        self.formats_argument = ",".join(formats)
        self.states: dict[str, object] = {}  # device -> the accumulator (an int64 tensor)
        self.order: list[str] = []  # devices in first-use order
        self.lock = threading.Lock()

    def __call__(self, x: object) -> object:
        """Add ``x``'s statistics to this probe; return ``x`` unchanged (the same tensor)."""
        if not isinstance(x, _torch.Tensor):
            raise TypeError(f"probe {self.tag!r} takes a torch tensor, got {type(x).__name__}; "
                            "log other arrays with add_histogram")  # fmt: skip
        if x.layout != _torch.strided or x.is_nested:  # the operator has no kernel for them
            raise TypeError(f"probe {self.tag!r} reads dense tensors, got a "
                            f"{'nested' if x.is_nested else str(x.layout).removeprefix('torch.')} "
                            "one; pass its values (.values(), or .to_dense())")  # fmt: skip
        device = str(x.device)
        _accumulator_for(self, device)  # at trace time in compiled code: allocated outside
        _ops.probe_add(x.detach(), self.states[device], self.formats_argument)
        return x

    def __copy__(self) -> Probe:
        """The probe itself, as ``logging.Logger`` does: a copy of a model that holds a probe
        (``copy.deepcopy``, ``torch.optim.swa_utils.AveragedModel``) adds into the same
        accumulators, which its writer collects."""
        return self

    def __deepcopy__(self, memo: dict) -> Probe:
        return self

    def __reduce__(self) -> tuple:
        raise TypeError(f"probe {self.tag!r} cannot be sent to another process (pickled): its "
                        "accumulators are its writer's; make the probe in that process, from "
                        "that process's writer, or drop it from what you save (state_dict() "
                        "holds no probe)")  # fmt: skip

    def __repr__(self) -> str:
        shown = f", formats={self.formats}" if self.formats else ""
        return f"Probe({self.tag!r}{shown})"

    def take(self) -> list[Pending[np.ndarray]]:
        """Each device's accumulator copied out and emptied, in first-use order (on a device,
        launched on the current stream: the copy arrives later)."""
        taken = []
        n_formats = len(self.formats)
        with self.lock:
            devices = list(self.order)
        for device in devices:
            state = self.states[device]
            if device == "cpu":
                taken.append(numpy_backend.probe_take(state.numpy(), n_formats))
            else:
                backend, target = backend_for(state, f"probe {self.tag!r}'s accumulator")
                taken.append(backend.probe_take(target, n_formats))
        return taken


_probes: weakref.WeakSet[Probe] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child starts its probes empty: what the parent added is the parent's to
    collect. Host accumulators are emptied in place (compiled graphs hold them); device ones
    are dropped (CUDA does not survive fork); every lock is new (another thread of the parent
    may have held one)."""
    for probe in list(_probes):
        probe.lock = threading.Lock()
        for device in list(probe.states):
            if device == "cpu":
                state = probe.states[device].numpy()
                state[:] = probe_layout.empty(len(probe.formats))
            else:
                del probe.states[device]
                probe.order.remove(device)


os.register_at_fork(after_in_child=_after_fork_in_child)
