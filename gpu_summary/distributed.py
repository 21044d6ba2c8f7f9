"""Rank-0 aggregation: every rank reduces its shard, one writer (rank 0) logs the exact merge.

``SummaryWriter(logdir, distributed=..., timeout=60)`` with ``"torch"`` (the ranks of
``torch.distributed``'s default group), ``"mpi"`` (``mpi4py``'s ``COMM_WORLD``), a
``torch.distributed`` process group or an ``mpi4py`` communicator. Every rank creates the writer
(in the same order as its other distributed writers) and calls the same merged methods in the
same order with its own shard; rank 0 alone creates files.

**Its own communicator.** The writer never issues a collective on the group it was given: it
makes one of its own at creation — a gloo group over the same ranks, made from the default
group's store and not registered with torch (so ``destroy_process_group()`` leaves it alone),
or MPI's ``Dup()`` — and runs every collective there, on one thread of its own. The training's
collectives, on any thread and any backend, never meet the writer's.

**Two collectives a step.** The compact results travel, never the tensors. Every merged call
of one step (the calls between two changes of step, in call order) goes out together, from a
bounded queue, as a fixed-size header (8 words) with the MIN pack (each histogram's range and
span of non-empty buckets; min/max scalars) riding after it, then one SUM pack (counts over
the buckets any rank's shard filled, moments, NaN/±Inf counts, PR curve weights, mean/sum
scalars): 2 collectives per step however many tags (3 on a step whose calls differ from the
last one's), where every ``add_*`` used to cost two of its own. ``bins=n`` fits too: its counts
are taken once the MIN pack gave the global range. See :mod:`gpu_summary._distributed.exchange`
for the words.

**Mismatches are errors, on every rank.** The header (a hash of the step and of every call's
kind, tag, step, bins and dtype) is compared before any pack goes out, so a skipped call,
another tag, size, dtype or ``bins`` raises :class:`MismatchError` from the next call on every
rank, naming the step and the calls that differ — never a process abort, never a wrong merge.
``close()`` sends a marker of its own: a rank closing while another still logs ends the merges
on every rank with that error.

**Faults end in errors within ``timeout``.** Each collective waits at most ``timeout`` seconds
(60 by default; the training's groups keep theirs). A rank that died, stalled or stopped
logging makes the survivors' next ``add_*``, ``flush()`` or ``close()`` raise
:class:`AggregationError`; the writer then merges nothing more (every later call raises it),
while what rank 0 wrote before stays in its file. Keep ``timeout`` above the longest time
ranks may drift apart between two logged steps.

Order and waiting: a step's merged records are written once its batch is sealed — when the
next step's first merged call comes, at ``add_anomaly`` (whose report the caller may wait
for), or at ``close()``. ``flush()`` on a distributed writer waits for the sealed steps only,
and leaves windows open, so it may be called on some ranks and not others; ``close()`` must
be called on every rank. Call a distributed writer from one thread per rank.
"""

from __future__ import annotations

import math

from gpu_summary._distributed.collective import (
    AggregationError,
    Collective,
    CollectiveFailed,
    MismatchError,
)
from gpu_summary._distributed.merge import AggregationFailed, Merged

REDUCTIONS = ("mean", "sum", "min", "max", "rank0")
DEFAULT_TIMEOUT = 60.0

__all__ = [
    "DEFAULT_TIMEOUT",
    "REDUCTIONS",
    "AggregationError",
    "AggregationFailed",
    "Collective",
    "CollectiveFailed",
    "Merged",
    "MismatchError",
    "check_timeout",
    "connect",
]


def check_timeout(timeout: object, distributed: object) -> float:
    """``SummaryWriter(timeout=...)``: seconds, > 0 (None: the default), only with
    ``distributed``.

    Raises:
        TypeError: not a number.
        ValueError: not positive and finite, or given without ``distributed``.
    """
    if timeout is None:
        return DEFAULT_TIMEOUT
    if distributed is None:
        raise ValueError("timeout bounds the collectives of a distributed writer; pass "
                         "distributed=... too, or drop timeout")  # fmt: skip
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


def connect(distributed: object, timeout: float = DEFAULT_TIMEOUT) -> Collective:
    """The writer's own communicator for ``SummaryWriter(distributed=...)`` (a
    :class:`Collective` given is used as it is).

    Raises:
        ValueError: an unknown ``distributed``, or its library is missing or not initialised.
        AggregationError: the other ranks did not all create their writer within ``timeout``.
    """
    if isinstance(distributed, Collective):
        return distributed
    if distributed == "torch":
        from gpu_summary._distributed.torch_group import TorchCollective

        return TorchCollective(None, timeout)
    if distributed == "mpi":
        try:
            from gpu_summary._distributed.mpi_comm import MpiCollective

            return MpiCollective(None, timeout)
        except ImportError as exc:
            raise ValueError(
                "distributed='mpi' needs mpi4py: pip install 'gpu_summary[mpi]'"
            ) from exc
    kind = type(distributed)
    module = kind.__module__.split(".")[0]
    if module == "torch" or "ProcessGroup" in kind.__name__:
        from gpu_summary._distributed.torch_group import TorchCollective

        return TorchCollective(distributed, timeout)
    if module == "mpi4py":
        from gpu_summary._distributed.mpi_comm import MpiCollective

        return MpiCollective(distributed, timeout)
    raise ValueError(
        "distributed must be 'torch', 'mpi', a torch.distributed process group or an mpi4py "
        f"communicator, got {distributed!r}"
    )
