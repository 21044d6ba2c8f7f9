"""NumPy's histogram bin estimators from a tensor's summary numbers, so that a backend can
count ``numpy.histogram(finite, bins=rule)`` without the values ever leaving it.

``numpy.histogram_bin_edges(x, bins=rule)`` makes ``n`` even bins over ``[x.min(), x.max()]``
(±0.5 when they are equal), ``n = ceil((max - min) / width)``, ``width`` the rule's estimate
(one bin when it is 0). For ``sqrt``, ``sturges`` and ``rice`` the width depends on the count,
min and max alone; ``auto`` also on the quartiles (its Freedman-Diaconis part), which the
backends compute exactly. These four give at most about ``2 * sqrt(count) + 1`` bins, so a
bin count known only once a device has run can never be refused. ``fd`` (unbounded),
``scott``, ``doane`` (moments in NumPy's summation order) and ``stone`` (a histogram per
candidate) are computed by NumPy itself, on host data only.

The arithmetic repeats NumPy's operation for operation in float64 (``x`` the finite values as
float64, as the NumPy backend histograms them), so the bin count is NumPy's bit for bit; where
``max - min`` overflows float64 (numpy fails there) it is computed at half scale.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

# The estimators a backend computes from (count, min, max[, quartiles]).
SUMMARY_RULES = ("auto", "fd", "sqrt", "sturges", "rice")
# ... and from even histograms of the values (one per candidate bin count).
DEVICE_RULES = (*SUMMARY_RULES, "stone")
# Those of them that need the quartiles 0.25 and 0.75 (numpy.percentile's, linear).
NEEDS_QUARTILES = ("auto", "fd")


def bin_count(
    rule: str, count: int, lo: float, hi: float, q25: float = 0.0, q75: float = 0.0
) -> int:
    """NumPy's number of bins for ``rule`` over ``count`` finite values spanning [lo, hi]
    whose quartiles are ``q25`` and ``q75`` (used by ``"auto"`` only)."""
    if rule not in SUMMARY_RULES:
        raise ValueError(f"bin_count takes one of {list(SUMMARY_RULES)}, got {rule!r}")
    if count == 0:
        return 1  # numpy: no values, one bin
    with np.errstate(over="ignore"):
        ptp = np.subtract(np.float64(hi), np.float64(lo))
    if not np.isfinite(ptp):  # numpy overflows here; the count is scale-free: half scale
        return bin_count(rule, count, lo / 2, hi / 2, q25 / 2, q75 / 2)
    sqrt_width = ptp / np.sqrt(count)
    sturges_width = ptp / (np.log2(count) + 1.0)
    if rule == "sqrt":
        width = sqrt_width
    elif rule == "sturges":
        width = sturges_width
    elif rule == "rice":
        width = ptp / (2.0 * count ** (1.0 / 3))
    else:  # Freedman-Diaconis; auto keeps it from going below half the sqrt width, or Sturges
        width = 2.0 * np.subtract(np.float64(q75), np.float64(q25)) * count ** (-1.0 / 3.0)
        if rule == "auto":
            width = min(max(width, sqrt_width / 2), sturges_width)
    if not width:
        return 1
    first, last = (lo - 0.5, hi + 0.5) if lo == hi else (lo, hi)
    return int(np.ceil(np.subtract(np.float64(last), np.float64(first)) / width))


def stone_bin_count(
    count: int, lo: float, hi: float, counts_for: Callable[[int], np.ndarray]
) -> int:
    """NumPy's number of bins for ``"stone"`` over ``count`` finite values spanning [lo, hi]:
    the candidate 1 .. max(100, sqrt(count)) minimising Stone's loss, each candidate's counts
    ``counts_for(nbins)`` (the even histogram over [lo, hi]) — the loss computed from them by
    the very NumPy operations ``numpy.histogram_bin_edges`` uses, so the choice is NumPy's.
    Warns, as NumPy does, when the choice is the largest candidate."""
    with np.errstate(over="ignore"):
        ptp = np.subtract(np.float64(hi), np.float64(lo))
    if not np.isfinite(ptp):  # numpy overflows here; every loss scales alike: half scale
        lo, hi = lo / 2, hi / 2
        ptp = np.subtract(np.float64(hi), np.float64(lo))
    if count <= 1 or ptp == 0:
        return 1

    def loss(nbins: int) -> float:
        width = ptp / nbins
        p_k = np.asarray(counts_for(nbins), dtype=np.int64) / count
        return (2 - (count + 1) * p_k.dot(p_k)) / width

    upper = max(100, int(np.sqrt(count)))
    nbins = min(range(1, upper + 1), key=loss)
    if nbins == upper:
        warnings.warn("The number of bins estimated may be suboptimal.", RuntimeWarning,
                      stacklevel=3)  # fmt: skip
    return int(np.ceil(np.subtract(np.float64(hi), np.float64(lo)) / (ptp / nbins)))
