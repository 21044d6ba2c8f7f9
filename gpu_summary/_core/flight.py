"""The flight recorder's ring: its layout, shared by both backends, and how the host reads it.

A ring holds the last ``slots`` steps of ``tensors`` watched tensors, where they live. It is
one buffer of 64-bit words (on a device, one allocation)::

    [first_bad | record x tensors x slots]

``first_bad`` is the first step at which a tensor of this ring held NaN or ±Inf (``NONE``
until then). A record is :data:`RECORD_WORDS` words::

    step, order, count, nan, posinf, neginf, zeros (u64), min, max, sum, sum_squares (f64)

``step`` is the step the record is of (``NONE``: never written), ``order`` the tensor's place
in the order its step produced the tensors, ``count`` the finite values, ``zeros`` the values
equal to 0 (either sign), and the moments those of the finite values (``min``/``max`` 0.0
without any, as :meth:`TensorStats.of <gpu_summary._core.results.TensorStats.of>`). Step s
writes slot ``s % slots``, record ``column`` of that slot. A step after ``first_bad`` writes
nothing: the ring stops at the end of the first step holding NaN or ±Inf, so the last
``slots`` steps up to it stay readable however late the host looks. The whole buffer starts as
all one bits (``NONE`` everywhere).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

RECORD_WORDS = 11
NONE = (1 << 64) - 1  # first_bad and a record's step before anything was written
STEP, ORDER, COUNT, NAN, POSINF, NEGINF, ZEROS = range(7)
MIN, MAX, SUM, SUM_SQUARES = range(7, 11)
HEADER_WORDS = 1
MAX_SLOTS = 1000  # most steps a ring keeps (gs.watch(flight_recorder=...))


def ring_words(slots: int, tensors: int) -> int:
    """The 64-bit words of a ring of ``slots`` steps of ``tensors`` tensors."""
    return HEADER_WORDS + slots * tensors * RECORD_WORDS


def record_offset(slot: int, column: int, tensors: int) -> int:
    """The first word of record ``column`` of slot ``slot``."""
    return HEADER_WORDS + (slot * tensors + column) * RECORD_WORDS


def first_bad(word: int) -> int | None:
    """The step of a ring's ``first_bad`` word (None: no NaN/±Inf yet)."""
    word = int(word)
    return None if word == NONE else word


@dataclasses.dataclass(frozen=True)
class FlightStats:
    """One watched tensor at one step: the six statistics of the flight recorder.

    ``min``, ``max``, ``mean`` and ``rms`` (root mean square) are over the finite values
    (None without any); ``nonfinite`` counts NaN and ±Inf, ``zeros`` the values equal to 0.
    """

    step: int
    order: int
    count: int
    nan: int
    posinf: int
    neginf: int
    zeros: int
    min: float | None
    max: float | None
    mean: float | None
    rms: float | None

    @property
    def nonfinite(self) -> int:
        return self.nan + self.posinf + self.neginf


class FlightRecords:
    """A ring copied to the host (``words``: uint64, :func:`ring_words` long), read by step."""

    def __init__(self, words: np.ndarray, slots: int, tensors: int) -> None:
        self.slots, self.tensors = slots, tensors
        self.first_bad = first_bad(words[0])
        body = words[HEADER_WORDS:].reshape(slots, tensors, RECORD_WORDS)
        self._words = body
        self._doubles = body.view(np.float64)

    def at(self, step: int, column: int) -> FlightStats | None:
        """Tensor ``column``'s statistics at ``step`` (None: the ring does not hold it)."""
        words = self._words[step % self.slots, column]
        if int(words[STEP]) != step:
            return None
        doubles = self._doubles[step % self.slots, column]
        count = int(words[COUNT])
        finite = count > 0
        return FlightStats(
            step=step,
            order=int(words[ORDER]),
            count=count,
            nan=int(words[NAN]),
            posinf=int(words[POSINF]),
            neginf=int(words[NEGINF]),
            zeros=int(words[ZEROS]),
            min=float(doubles[MIN]) if finite else None,
            max=float(doubles[MAX]) if finite else None,
            mean=float(doubles[SUM]) / count if finite else None,
            rms=math.sqrt(max(float(doubles[SUM_SQUARES]), 0.0) / count) if finite else None,
        )
