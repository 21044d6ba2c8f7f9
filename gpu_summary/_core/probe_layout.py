"""The accumulator of a probe (``writer.probe``) on one device: one int64 buffer that every
backend adds into and ``writer.collect`` reads back.

Words (8 bytes each), in order::

    counts[N_LIMITS]          u64   the ladder's buckets (``gpu_summary._core.ladder``)
    count, nan, posinf, neginf u64  finite values, NaN, +Inf, -Inf
    min, max, sum, sum_squares f64  of the finite values (min = +Inf, max = -Inf when empty)
    formats[2 * n_formats]     u64  per format of ``formats=``: overflow, underflow
    scratch[...]               --   the device kernel's own (blocks_done, then the partial
                                    stats of at most ``blocks`` blocks); none on the host

The head (counts and stats) is gs_reduce's result layout (``cuda_kernels/reduce.py``): the
kernel's ``accumulate`` launch combines into it in place. An empty accumulator is
:func:`empty`; ``collect`` copies it out and writes :func:`empty` back, on the stream.
"""

from __future__ import annotations

import numpy as np

from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import TensorStats

STATS = _ladder.N_LIMITS  # word of ``count``; min at STATS + 4
STATS_WORDS = 8
FORMATS = STATS + STATS_WORDS  # word of the first format's overflow count


def scratch_words(blocks: int) -> int:
    """Words of the device kernel's scratch for a grid of at most ``blocks`` blocks."""
    return 1 + STATS_WORDS * blocks if blocks else 0


def words(n_formats: int, blocks: int = 0) -> int:
    """Length of the accumulator with ``n_formats`` formats and scratch for ``blocks``."""
    return FORMATS + 2 * n_formats + scratch_words(blocks)


def scratch(n_formats: int) -> int:
    """Word where the scratch starts (``blocks_done``; the block stats one word later)."""
    return FORMATS + 2 * n_formats


def empty(n_formats: int, blocks: int = 0) -> np.ndarray:
    """An empty accumulator: zero counts and sums, min = +Inf, max = -Inf (the kernel's
    identity for ``fmin``/``fmax``), scratch zero."""
    state = np.zeros(words(n_formats, blocks), np.int64)
    doubles = state.view(np.float64)
    doubles[STATS + 4] = np.inf
    doubles[STATS + 5] = -np.inf
    return state


def parse(raw: np.ndarray, n_formats: int) -> tuple[np.ndarray, TensorStats, np.ndarray]:
    """(int64 counts, stats, int64 format counts of shape (n_formats, 2)) of an accumulator's
    words (its scratch, if copied, is ignored)."""
    raw = np.ascontiguousarray(raw).view(np.int64)
    counts = raw[:STATS].copy()
    head = raw[STATS : STATS + STATS_WORDS]
    doubles = head.view(np.float64)
    count = int(head[0])
    low, high = (float(doubles[4]), float(doubles[5])) if count else (0.0, 0.0)
    stats = TensorStats.of(count, low, high, float(doubles[6]), float(doubles[7]),
                           int(head[1]), int(head[2]), int(head[3]))  # fmt: skip
    formats = raw[FORMATS : FORMATS + 2 * n_formats].copy().reshape(n_formats, 2)
    return counts, stats, formats
