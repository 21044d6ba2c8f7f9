"""The NumPy backend's precision-recall counts: the specification ``kernels/gs_pr_curve.cu``
matches.

A pair (prediction p, label l, weight w; w = 1 without weights) falls in bucket
``floor(p × (n − 1))`` of ``n`` thresholds, the product rounded to p's own precision as NumPy
(and TensorBoard's and torch's ``compute_curve``) computes it in p's dtype: exact in float64,
then rounded half to even to 11 significant bits for float16, 8 for bfloat16, 24 for float32
(float64 and integer predictions: the float64 product). The bucket gains ``l × w`` positives
and ``(1 − l) × w`` negatives (float64; soft labels as torch weighs them). Pairs with a NaN
prediction or a non-finite label or weight, and predictions outside [0, 1], are counted, not
binned.

Counts: summed in float64, exact whenever every ``l × w`` and ``(1 − l) × w`` is an integer
(0/1 or bool labels with integer or no weights) below 2**53 in total; otherwise the device's
sums differ from these by summation order only (``PR_RTOL``).
"""

from __future__ import annotations

import numpy as np

from gpu_summary._core.results import PrCounts, Ready

CHUNK = 1 << 16
# Significant bits of the narrow floats a prediction's product is rounded to.
SIGNIFICAND_BITS = {"float16": 11, "bfloat16": 8, "float32": 24}
# The smallest exponent of a quantum (a subnormal's spacing) in each of them.
MIN_QUANTUM_EXPONENT = {"float16": -24, "bfloat16": -133, "float32": -149}
# |device - host| <= PR_RTOL * sum(|terms|) for fractional labels or weights.
PR_RTOL = 1e-12


def round_significand(x: np.ndarray, dtype: str) -> np.ndarray:
    """Non-negative float64 ``x`` rounded half to even to the precision of ``dtype`` (a key of
    SIGNIFICAND_BITS; others unchanged): what p × (n − 1) is in p's arithmetic."""
    bits = SIGNIFICAND_BITS.get(dtype)
    if bits is None:
        return x
    _, exponent = np.frexp(x)  # x = m * 2**exponent, m in [0.5, 1)
    quantum = np.maximum(exponent - bits, MIN_QUANTUM_EXPONENT[dtype])
    return np.ldexp(np.rint(np.ldexp(x, -quantum)), quantum)


def _as_float64(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float64, copy=False)


def pr_counts(
    predictions: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    thresholds: int,
    prediction_dtype: str | None = None,
) -> Ready[PrCounts]:
    """Positive and negative weight per threshold bucket (see the module's docstring).

    ``predictions``, ``labels`` and ``weights`` have one size and pair up in C order;
    ``prediction_dtype`` names the predictions' original dtype when they arrive widened
    (bfloat16 as float32)."""
    dtype = prediction_dtype or predictions.dtype.name
    p_flat, l_flat = predictions.reshape(-1), labels.reshape(-1)
    w_flat = None if weights is None else weights.reshape(-1)
    # 0/1 labels without weights: integer counts (identical to float64 sums of 0s and 1s).
    binary = w_flat is None and (l_flat.dtype == np.bool_ or l_flat.dtype.kind in "iu")
    tp = np.zeros(thresholds, np.float64)
    fp = np.zeros(thresholds, np.float64)
    nan = below = above = 0
    scale = float(thresholds - 1)
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, p_flat.size, CHUNK):
            p = _as_float64(p_flat[start : start + CHUNK])
            label = l_flat[start : start + CHUNK]
            low, high = p < 0, p > 1
            below += int(np.count_nonzero(low))
            above += int(np.count_nonzero(high))
            bad = np.isnan(p)
            if label.dtype.kind == "f":
                bad |= ~np.isfinite(label)
            weight = None
            if w_flat is not None:
                weight = _as_float64(w_flat[start : start + CHUNK])
                bad |= ~np.isfinite(weight)
            bad &= ~(low | high)  # counted once, as what the prediction is first
            nan += int(np.count_nonzero(bad))
            keep = ~(bad | low | high)
            if not keep.all():
                p, label = p[keep], label[keep]
                weight = None if weight is None else weight[keep]
            bucket = np.floor(round_significand(p * scale, dtype)).astype(np.intp)
            if binary and (label.dtype == np.bool_ or ((label == 0) | (label == 1)).all()):
                positive = bucket[label != 0]
                total = np.bincount(bucket, minlength=thresholds)
                hits = np.bincount(positive, minlength=thresholds)
                tp += hits
                fp += total - hits
                continue
            l64 = _as_float64(label)
            w64 = np.ones_like(l64) if weight is None else weight
            tp += np.bincount(bucket, weights=l64 * w64, minlength=thresholds)
            fp += np.bincount(bucket, weights=(1.0 - l64) * w64, minlength=thresholds)
    return Ready(PrCounts(tp=tp, fp=fp, nan=nan, below=below, above=above))
