"""The writer's own MPI communicator: a duplicate of the one given (``COMM_WORLD`` by default).

Made once at writer creation (``Idup``, a collective on the parent, on every rank, waited for
like the others), so the writer's messages never match the training's, whatever thread either
runs on. MPI's collectives cannot time out, so each is non-blocking (``Iallreduce``,
``Iallgather``) and polled until done or until ``timeout`` seconds passed: spinning briefly,
then sleeping in growing steps (at most 0.5 ms), which also drives MPI's progress. A collective
that timed out is left pending and the communicator is not used again.
"""

from __future__ import annotations

import time

import numpy as np

from gpu_summary._distributed.collective import AggregationError, Collective, CollectiveFailed

_SPINS = 200  # Test() calls before the first sleep
_LONGEST_SLEEP = 5e-4  # a wake-up every 0.5 ms at most while the other ranks come


class MpiCollective(Collective):
    """A duplicate of ``comm`` (None: ``COMM_WORLD``) for one writer.

    Raises:
        ValueError: MPI was initialised without MPI_THREAD_MULTIPLE (the writer's thread
            calls MPI while the training's may).
        AggregationError: the other ranks did not all create their writer within
            ``timeout`` seconds.
    """

    def __init__(self, comm: object = None, timeout: float = 60.0) -> None:
        from mpi4py import MPI

        if MPI.Query_thread() < MPI.THREAD_MULTIPLE:
            raise ValueError(
                "distributed='mpi' needs MPI initialised with MPI_THREAD_MULTIPLE (the writer's "
                "thread calls MPI beside the training's): keep mpi4py's default "
                "mpi4py.rc.thread_level = 'multiple'"
            )
        self._mpi = MPI
        self.timeout = float(timeout)
        parent = MPI.COMM_WORLD if comm is None else comm
        self.rank = parent.Get_rank()
        self._comm, request = parent.Idup()  # a collective: bounded like the others
        try:
            self._wait(request, "communicator duplication")
        except CollectiveFailed as exc:
            raise AggregationError(
                f"the writer's own MPI communicator could not be made within timeout="
                f"{self.timeout:g} s: create the distributed SummaryWriter on every rank, in "
                f"the same order ({exc}). MPI cannot cancel the duplication still pending on "
                "the communicator given: end the job rather than use it again"
            ) from exc
        self.size = self._comm.Get_size()

    def _wait(self, request: object, what: str) -> None:
        deadline = time.monotonic() + self.timeout
        spins, delay = 0, 1e-5
        try:
            while not request.Test():
                if spins < _SPINS:
                    spins += 1
                    continue
                if time.monotonic() > deadline:
                    raise CollectiveFailed(
                        f"rank {self.rank}: MPI {what} not answered by every rank within "
                        f"{self.timeout:g} s"
                    )
                time.sleep(delay)
                delay = min(delay * 2, _LONGEST_SLEEP)
        except self._mpi.Exception as exc:
            raise CollectiveFailed(f"rank {self.rank}: MPI {what}: {exc}") from exc

    def _all_reduce(self, values: np.ndarray, op: object) -> np.ndarray:
        send = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty_like(send)
        self._wait(self._comm.Iallreduce(send, out, op=op), "all-reduce")
        return out

    def minimum(self, values: np.ndarray) -> np.ndarray:
        return self._all_reduce(values, self._mpi.MIN)

    def total(self, values: np.ndarray) -> np.ndarray:
        return self._all_reduce(values, self._mpi.SUM)

    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        send = np.ascontiguousarray(values, dtype=np.float64)
        out = np.empty((self.size, send.size), dtype=np.float64)
        self._wait(self._comm.Iallgather(send, out), "all-gather")
        return [row.reshape(send.shape) for row in out]

    def close(self) -> None:
        self._comm.Free()  # every rank closed: no message of ours is left in flight
