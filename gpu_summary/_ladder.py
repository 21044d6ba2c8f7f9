"""TensorBoard's default histogram bucket limits, and the closed form that finds a bucket.

The limits are TensorFlow's (``tensorflow/core/lib/histogram/histogram.cc``): v = 1e-12,
multiplied by 1.1 while v < 1e20, giving 774 positive limits ``v_0 .. v_773``; then DBL_MAX;
the same mirrored below zero; and 0::

    L = [-DBL_MAX, -v_773, ..., -v_0, 0, v_0, ..., v_773, DBL_MAX]      (1551 limits)

A finite x is counted in bucket i, the first with ``L[i] > x``; x = DBL_MAX, which no limit
exceeds, is counted in the last bucket. Because the limits are fixed, histograms of different
shards or steps merge exactly by adding counts.

Finding i without a binary search: for |x| > 0, ``t = log(|x| / 1e-12) / log(1.1)`` is the
(real) position of |x| on the ladder, so ``j = floor(t) + N + 3`` is the bucket of a positive x
and ``2N + 3 - j`` that of a negative one (N = 774), up to rounding. Rounding can only matter
when x lies within a few ulps of a limit, so one exact comparison against the float64 limits on
each side fixes the estimate. The CUDA kernels compute the same estimate and the same
correction, so both backends agree bit for bit.
"""

from __future__ import annotations

import math
import sys

import numpy as np

DBL_MAX = sys.float_info.max


def _positive_limits() -> list[float]:
    limits = []
    v = 1.0e-12
    while v < 1.0e20:
        limits.append(v)
        v *= 1.1  # repeated multiplication in double, exactly as TensorFlow builds them
    return limits


_POSITIVE = _positive_limits()
N_POSITIVE = len(_POSITIVE)  # 774
LIMITS = np.array(
    [-DBL_MAX, *(-v for v in reversed(_POSITIVE)), 0.0, *_POSITIVE, DBL_MAX], dtype=np.float64
)
LIMITS.setflags(write=False)
N_LIMITS = LIMITS.size  # 1551
ZERO_INDEX = N_POSITIVE + 1  # LIMITS[ZERO_INDEX] == 0.0
LAST_INDEX = N_LIMITS - 1

# t = log(|x|) * INV_LOG_RATIO + LOG_OFFSET
INV_LOG_RATIO = 1.0 / math.log(1.1)
LOG_OFFSET = -math.log(1.0e-12) / math.log(1.1)


def bucket_index_reference(x: np.ndarray) -> np.ndarray:
    """The definition, by binary search: for each finite x, the first i with LIMITS[i] > x.

    Slow; the independent oracle for tests of the closed form.
    """
    idx = np.searchsorted(LIMITS, np.asarray(x, dtype=np.float64), side="right")
    return np.minimum(idx, LAST_INDEX)
