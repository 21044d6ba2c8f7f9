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

CHUNK = 1 << 18
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


def _binary(labels: np.ndarray) -> bool:
    """Whether every label is 0 or 1 and an integer type (bool included)."""
    if labels.dtype == np.bool_:
        return True
    return labels.dtype.kind in "iu" and bool(labels.min() >= 0) and bool(labels.max() <= 1)


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
    (bfloat16 as float32).

    The product is NumPy's own multiply in the predictions' dtype where that dtype is theirs
    (float16, float32, float64: the rounding the module describes, tests hold the two equal),
    else computed exactly and rounded by :func:`round_significand`. 0/1 labels without
    weights are counted as integers, one ``bincount`` of ``2 × bucket + label``."""
    dtype = prediction_dtype or predictions.dtype.name
    p_flat, l_flat = predictions.reshape(-1), labels.reshape(-1)
    w_flat = None if weights is None else weights.reshape(-1)
    binary = w_flat is None and l_flat.size > 0 and _binary(l_flat)
    native = dtype == predictions.dtype.name and dtype in ("float16", "float32", "float64")
    scale = predictions.dtype.type(thresholds - 1) if native else float(thresholds - 1)
    tp = np.zeros(thresholds, np.float64)
    fp = np.zeros(thresholds, np.float64)
    nan = below = above = 0
    with np.errstate(invalid="ignore", over="ignore"):
        for start in range(0, p_flat.size, CHUNK):
            p = p_flat[start : start + CHUNK]
            label = l_flat[start : start + CHUNK]
            weight = None if w_flat is None else w_flat[start : start + CHUNK]
            inside = (p >= 0) & (p <= 1)  # a NaN is neither
            if label.dtype.kind == "f":
                inside &= np.isfinite(label)
            if weight is not None and weight.dtype.kind == "f":
                inside &= np.isfinite(weight)
            kept = int(np.count_nonzero(inside))
            if kept != p.size:
                low, high = int(np.count_nonzero(p < 0)), int(np.count_nonzero(p > 1))
                below, above = below + low, above + high
                nan += p.size - kept - low - high
                p, label = p[inside], label[inside]
                weight = None if weight is None else weight[inside]
            if native:
                scaled = p * scale
            else:
                scaled = round_significand(_as_float64(p) * scale, dtype)
            bucket = scaled.astype(np.intp)  # scaled >= 0: truncation is the floor
            if binary:
                key = bucket * 2
                key += label.astype(np.intp, copy=False)
                both = np.bincount(key, minlength=2 * thresholds).reshape(thresholds, 2)
                fp += both[:, 0]
                tp += both[:, 1]
                continue
            l64 = _as_float64(label)
            w64 = np.ones_like(l64) if weight is None else _as_float64(weight)
            tp += np.bincount(bucket, weights=l64 * w64, minlength=thresholds)
            fp += np.bincount(bucket, weights=(1.0 - l64) * w64, minlength=thresholds)
    return Ready(PrCounts(tp=tp, fp=fp, nan=nan, below=below, above=above, pairs=p_flat.size))
