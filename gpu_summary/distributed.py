"""Rank-0 aggregation: every rank reduces its shard, one writer (rank 0) logs the exact merge.

``SummaryWriter(logdir, distributed=...)`` with ``"torch"`` (the default process group of
``torch.distributed``), ``"mpi"`` (``mpi4py``'s ``COMM_WORLD``), a ``torch.distributed``
process group or an ``mpi4py`` communicator. Every rank calls the same ``add_*`` methods in the
same order with its own shard; rank 0 alone creates files.

The compact results travel, never the tensors: per call, one collective takes the element-wise
minimum of ``[h, -h, min, -max]`` (h identifies the call: kind, tag, step, buckets), which gives
the global range and detects ranks that disagree (h differs, so min(h) != max(h) on every rank,
and every rank raises the same error before any data is mixed); a second sums a float64 pack of
counts, moments and non-finite counts. Counts stay exact in float64 up to 2**53.

Collectives run in call order on one aggregation thread per writer, so a device tensor's call
returns once its reduction is launched: the thread waits for the compact result (a CUDA event),
then runs the collectives. Collectives carry host buffers, over gloo (a gloo group is created
beside an NCCL default group, so the training's own NCCL traffic is never interleaved with
ours) or MPI. ``bins=n`` needs the global range before counting: the call takes a private copy
of the shard (on the device: on the stream) and the thread counts it once the range is known,
so the caller never waits. Errors found on the thread (a mismatch, a failed collective) are
raised by the next call on the writer, on every rank.

Threads: a distributed writer must be called from one thread per rank (collectives must be
issued in the same order everywhere).
"""

from __future__ import annotations

import abc
import collections
import hashlib
import queue
import threading
from collections.abc import Callable

import numpy as np

from gpu_summary._core.results import Pending

REDUCTIONS = ("mean", "sum", "min", "max", "rank0")


class MismatchError(ValueError):
    """Ranks called the writer differently (tags, steps, kinds or buckets) in the same slot."""


class AggregationFailed(RuntimeError):
    """A merged result that never came: its call's error is raised to the caller by the
    writer's next call (so the writer thread drops the record quietly)."""


def call_id(*parts: object) -> float:
    """A float64-exact identifier (< 2**48) of one call, the same on every rank."""
    digest = hashlib.blake2b("\0".join(map(str, parts)).encode(), digest_size=6).digest()
    return float(int.from_bytes(digest, "little"))


class Collective(abc.ABC):
    """Collectives on host float64 arrays over one group of ranks."""

    rank: int
    size: int

    @abc.abstractmethod
    def minimum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise minimum over the ranks (blocking)."""

    @abc.abstractmethod
    def total(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum over the ranks (blocking)."""

    @abc.abstractmethod
    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        """Every rank's ``values`` (equal shapes), in rank order (blocking)."""


class TorchCollective(Collective):
    """``torch.distributed`` over a process group; NCCL groups get a gloo group beside them
    (created collectively, here), since the buffers are host memory."""

    def __init__(self, group: object = None) -> None:
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise ValueError(
                "distributed='torch' needs torch.distributed initialised first: call "
                "torch.distributed.init_process_group(...) on every rank before SummaryWriter"
            )
        self._dist = dist
        backend = str(dist.get_backend(group)).lower()
        if "gloo" not in backend:
            ranks = None if group is None else dist.get_process_group_ranks(group)
            group = dist.new_group(ranks=ranks, backend="gloo")
        self._group = group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)

    def _reduce(self, values: np.ndarray, op: object) -> np.ndarray:
        import torch

        tensor = torch.from_numpy(np.array(values, dtype=np.float64))
        self._dist.all_reduce(tensor, op=op, group=self._group)
        return tensor.numpy()

    def minimum(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self._dist.ReduceOp.MIN)

    def total(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self._dist.ReduceOp.SUM)

    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        import torch

        tensor = torch.from_numpy(np.array(values, dtype=np.float64))
        parts = [torch.empty_like(tensor) for _ in range(self.size)]
        self._dist.all_gather(parts, tensor, group=self._group)
        return [part.numpy() for part in parts]


class MpiCollective(Collective):
    """``mpi4py`` over a communicator (``COMM_WORLD`` by default)."""

    def __init__(self, comm: object = None) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        self._comm = MPI.COMM_WORLD if comm is None else comm
        self.rank = self._comm.Get_rank()
        self.size = self._comm.Get_size()

    def _reduce(self, values: np.ndarray, op: object) -> np.ndarray:
        send = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(send)
        self._comm.Allreduce(send, out, op=op)
        return out

    def minimum(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self._mpi.MIN)

    def total(self, values: np.ndarray) -> np.ndarray:
        return self._reduce(values, self._mpi.SUM)

    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        send = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty((self.size, send.size), dtype=np.float64)
        self._comm.Allgather(send, out)
        return [row.reshape(send.shape) for row in out]


def connect(distributed: object) -> Collective:
    """The collective for ``SummaryWriter(distributed=...)``."""
    if isinstance(distributed, Collective):
        return distributed
    if distributed == "torch":
        return TorchCollective()
    if distributed == "mpi":
        try:
            return MpiCollective()
        except ImportError as exc:
            raise ValueError(
                "distributed='mpi' needs mpi4py: pip install 'gpu_summary[mpi]'"
            ) from exc
    kind = type(distributed)
    module = kind.__module__.split(".")[0]
    if module == "torch" or "ProcessGroup" in kind.__name__:
        return TorchCollective(distributed)
    if module == "mpi4py":
        return MpiCollective(distributed)
    raise ValueError(
        "distributed must be 'torch', 'mpi', a torch.distributed process group or an mpi4py "
        f"communicator, got {distributed!r}"
    )


class Merged(Pending):
    """A result that the aggregation thread delivers (rank 0's writer thread waits on it)."""

    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value = None
        self._error: BaseException | None = None

    def set(self, value: object) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def result(self) -> object:
        self._done.wait()
        if self._error is not None:
            raise AggregationFailed(str(self._error)) from self._error
        return self._value


class Aggregator:
    """Runs each call's collectives, in call order, on one thread of this rank."""

    def __init__(self, collective: Collective) -> None:
        self.collective = collective
        self.rank = collective.rank
        self.size = collective.size
        self._tasks: queue.SimpleQueue = queue.SimpleQueue()
        self._pending = 0
        self._idle = threading.Condition()
        self._errors: collections.deque[BaseException] = collections.deque()
        self._thread = threading.Thread(
            target=self._run, name=f"gpu_summary aggregation rank {self.rank}", daemon=True
        )
        self._thread.start()

    def submit(self, task: Callable[[], None]) -> None:
        """Queue ``task`` (it runs the collectives of one call) after every earlier one."""
        self.raise_error()
        with self._idle:
            self._pending += 1
        self._tasks.put(task)

    def wait(self) -> None:
        """Block until every queued task ran."""
        with self._idle:
            while self._pending:
                self._idle.wait()

    def raise_error(self) -> None:
        """Raise (once) the first error a task met."""
        if self._errors:
            error = self._errors.popleft()
            self._errors.clear()
            raise error

    def close(self) -> None:
        self.wait()
        self._tasks.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            try:
                task()
            except BaseException as exc:  # noqa: BLE001 - surfaced on the caller's next call
                self._errors.append(exc)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def check(
        self, identity: float, description: str, low: float, high: float
    ) -> tuple[float, float]:
        """The MIN collective of one call: (global min, global max) of ``[low, high]``.

        Raises:
            MismatchError: the ranks are not in the same call.
        """
        lows, highs = self.check_ranges(identity, description, [low], [high])
        return float(lows[0]), float(highs[0])

    def check_ranges(
        self, identity: float, description: str, lows: list[float], highs: list[float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`check` for several ranges at once: (global minima, global maxima)."""
        n = len(lows)
        got = self.collective.minimum(
            np.array([identity, -identity, *lows, *(-np.asarray(highs, dtype=np.float64))])
        )
        if got[0] != -got[1]:
            raise MismatchError(
                "ranks disagree: every rank must call the distributed SummaryWriter's add_* "
                "methods in the same order with the same tags, steps and buckets; in this slot "
                f"rank {self.rank} logged {description}, another rank something else"
            )
        return got[2 : 2 + n], -got[2 + n : 2 + 2 * n]
