"""What the exchange asks of a communicator, and the errors a distributed writer raises.

A :class:`Collective` runs element-wise MIN and SUM all-reduces and an all-gather of host
float64 arrays over a group of ranks that belongs to the writer alone. Every call returns or
raises :class:`CollectiveFailed` within the collective's timeout: a peer that died, stalled
or left ends in an error, never in a wait without end.
"""

from __future__ import annotations

import abc

import numpy as np


class MismatchError(ValueError):
    """Ranks logged different merged calls for a step (another tag, step, kind, bins, size or
    dtype, a call skipped, or a rank that closed while another still logged). The message,
    the same on every rank, names the step and the calls that differ; nothing of that step
    was merged."""


class AggregationError(RuntimeError):
    """The writer's ranks lost contact (a peer died, stalled past the writer's ``timeout`` or
    left) or a rank could not reduce its shard: the merges it names were not written."""


class CollectiveFailed(RuntimeError):
    """A collective of the writer's own communicator failed or timed out (its group is then
    unusable: messages may be in flight)."""


class Collective(abc.ABC):
    """Collectives on host float64 arrays over the writer's own group of ranks.

    Every rank calls the same collectives in the same order with arrays of equal sizes (the
    exchange's fixed-size header sees to it). Each call blocks at most ``timeout`` seconds.
    Called from one thread (the writer's exchange thread).
    """

    rank: int
    size: int
    timeout: float

    @abc.abstractmethod
    def minimum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise minimum over the ranks.

        Raises:
            CollectiveFailed: a peer is gone, or the collective timed out.
        """

    @abc.abstractmethod
    def total(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum over the ranks.

        Raises:
            CollectiveFailed: a peer is gone, or the collective timed out.
        """

    @abc.abstractmethod
    def gather(self, values: np.ndarray) -> list[np.ndarray]:
        """Every rank's ``values`` (equal sizes), in rank order.

        Raises:
            CollectiveFailed: a peer is gone, or the collective timed out.
        """

    def close(self) -> None:  # noqa: B027 - most communicators need nothing
        """Release the communicator once every rank is done with it."""
