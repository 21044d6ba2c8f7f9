"""The writer's own gloo process group over the ranks of a ``torch.distributed`` group.

Made once at writer creation, on every rank of the group, straight from the default group's
store (under a prefix of its own) rather than through ``new_group``: torch does not register
it, so nothing the training does to its groups — ``destroy_process_group()`` with merges in
flight, collectives of its own on any thread — reaches it, and it reaches nothing of theirs.
Gloo whatever the training's backend: the writer's packs are compact results already in host
memory (rank 0 writes them), so a second NCCL communicator would cost GPU memory, SMs and
stream ordering against the user's work for messages of a few kilobytes, and NCCL cannot
time out without aborting the process. Every collective waits at most ``timeout`` seconds.
"""

from __future__ import annotations

import datetime
import hashlib

import numpy as np

from gpu_summary._distributed.collective import AggregationError, Collective, CollectiveFailed

# Groups this process made over each list of ranks: the n-th writer of a group of ranks is
# the n-th on each of them (ranks create their writers in the same order), which names its
# keys in the store.
_made: dict[tuple[int, ...], int] = {}


def _not_ready(reason: str) -> ValueError:
    return ValueError(f"distributed='torch' {reason}")


class TorchCollective(Collective):
    """A private gloo group over ``group``'s ranks (None: the default group's).

    Raises:
        ValueError: torch.distributed is not initialised, has no gloo, or this process is not
            in ``group``.
        AggregationError: the other ranks did not all create their writer within
            ``timeout`` seconds.
    """

    def __init__(self, group: object = None, timeout: float = 60.0) -> None:
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise _not_ready("needs torch.distributed initialised first: call "
                             "torch.distributed.init_process_group(...) on every rank before "
                             "SummaryWriter")  # fmt: skip
        if not dist.is_gloo_available():
            raise _not_ready("needs torch built with gloo (the writer's own group is gloo)")
        self._torch, self._dist = torch, dist
        self.timeout = float(timeout)
        world = dist.get_world_size()
        ranks = tuple(range(world)) if group is None else tuple(
            dist.get_process_group_ranks(group))  # fmt: skip
        self.rank = dist.get_rank() if group is None else dist.get_rank(group)
        if self.rank < 0:
            raise ValueError("distributed: this process is not in the process group given; "
                             "create the SummaryWriter on the group's ranks only")  # fmt: skip
        self.size = len(ranks)
        self._group = self._make_group(ranks)

    def _make_group(self, ranks: tuple[int, ...]) -> object:
        dist = self._dist
        serial = _made.get(ranks, 0)
        _made[ranks] = serial + 1
        timeout = datetime.timedelta(seconds=self.timeout)
        try:
            from torch.distributed import distributed_c10d

            store = distributed_c10d._get_default_store()
        except (ImportError, AttributeError, RuntimeError, ValueError):
            store = None
        name = hashlib.blake2b(",".join(map(str, ranks)).encode(), digest_size=8).hexdigest()
        try:
            if store is None:  # a torch without the store at hand: a registered group
                return dist.new_group(ranks=list(ranks), backend="gloo", timeout=timeout)
            prefixed = dist.PrefixStore(f"gpu_summary/{name}/{serial}/", store)
            return dist.ProcessGroupGloo(prefixed, self.rank, self.size, timeout)
        except RuntimeError as exc:
            raise AggregationError(
                f"the writer's own gloo group over {len(ranks)} ranks could not be made within "
                f"timeout={self.timeout:g} s: create the distributed SummaryWriter on every "
                f"rank, in the same order ({exc})"
            ) from exc

    def _all_reduce(self, values: np.ndarray, op: object) -> np.ndarray:
        tensor = self._torch.from_numpy(np.array(values, dtype=np.float64))
        options = self._dist.AllreduceOptions()
        options.reduceOp = op
        self._wait(self._group.allreduce([tensor], options), "all-reduce")
        return tensor.numpy()

    def _wait(self, work: object, what: str) -> None:
        try:
            work.wait(datetime.timedelta(seconds=self.timeout))
        except RuntimeError as exc:  # gloo's timeouts and closed connections alike
            raise CollectiveFailed(f"rank {self.rank}: gloo {what}: {exc}") from exc

    def minimum(self, values: np.ndarray) -> np.ndarray:
        return self._all_reduce(values, self._dist.ReduceOp.MIN)

    def total(self, values: np.ndarray) -> np.ndarray:
        return self._all_reduce(values, self._dist.ReduceOp.SUM)

    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        tensor = self._torch.from_numpy(np.array(values, dtype=np.float64))
        parts = [self._torch.empty_like(tensor) for _ in range(self.size)]
        self._wait(self._group.allgather([parts], [tensor]), "all-gather")
        return [part.numpy() for part in parts]

    def close(self) -> None:
        self._group = None  # gloo's pairs close with the last reference
