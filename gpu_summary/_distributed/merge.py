"""What the exchange merges: one call's share of a step's packs (:class:`Merge`), and the
result it delivers (:class:`Merged`), which rank 0's writer thread waits on."""

from __future__ import annotations

import abc
import threading

import numpy as np

from gpu_summary._core.results import Pending


class AggregationFailed(RuntimeError):
    """A merged result that never came: its call's error is raised to the caller by the
    writer's next call (so the writer thread drops the record quietly)."""


class Merged(Pending):
    """A result the exchange thread delivers (rank 0's writer thread waits on it)."""

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

    def done(self) -> bool:
        """Whether the result (or its failure) was delivered."""
        return self._done.is_set()

    def result(self) -> object:
        self._done.wait()
        if self._error is not None:
            raise AggregationFailed(str(self._error)) from self._error
        return self._value


class Merge(abc.ABC):
    """One merged call's share of its step's packs.

    ``signature`` (kind, tag, step, bins, dtype) and ``min_words`` depend only on the call's
    arguments, so ranks that made the same call agree on them. The exchange thread calls
    :meth:`prepare` (this rank's result, waited for), then :meth:`sum_size` and :meth:`sums`
    with this call's slice of the global MIN pack, then :meth:`merge` with its slices of both
    packs; what ``merge`` returns is delivered to :attr:`merged`.
    """

    min_words = 0

    def __init__(self, signature: str, description: str) -> None:
        self.signature = signature
        self.description = description  # e.g. "add_histogram('w', step=3, bins=tensorflow)"
        self.merged = Merged()

    @abc.abstractmethod
    def prepare(self) -> np.ndarray:
        """Wait for this rank's result; its ``min_words`` MIN words (float64)."""

    @abc.abstractmethod
    def sum_size(self, mins: np.ndarray) -> int:
        """How many SUM words, from the global MIN words (the same on every rank)."""

    @abc.abstractmethod
    def sums(self, mins: np.ndarray) -> np.ndarray:
        """This rank's ``sum_size(mins)`` SUM words."""

    @abc.abstractmethod
    def merge(self, mins: np.ndarray, sums: np.ndarray) -> object:
        """The merged result, from the global MIN and SUM words."""
