"""gs_pr_curve.cu's ABI: its instantiations, buffer and arguments."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.cuda_kernels.sources import CUDA_TYPES

TYPE_CODES = {name: code for code, name in enumerate(CUDA_TYPES)}
SKIPPED_WORDS = 3  # nan, below, above
# Most thresholds a curve may have: a block's buckets (16 bytes each) stay at 16 KB of shared
# memory, well inside the default 48 KB.
MAX_THRESHOLDS = 1024
# (significant bits, smallest quantum exponent) a prediction's product is rounded to
ROUNDING = {"float16": (11, -24), "bfloat16": (8, -133), "float32": (24, -149)}
NO_ROUNDING = (53, 0)


def pr_expression(dtype: str) -> str:
    """The template instantiation of gs_pr_counts for a prediction dtype name."""
    return f"gs_pr_counts<{CUDA_TYPES[dtype]}>"


def buffer_bytes(thresholds: int) -> int:
    """Bytes of the result buffer: 2 × thresholds doubles, then the skipped counts."""
    return 16 * thresholds + 8 * SKIPPED_WORDS


def shared_bytes(thresholds: int) -> int:
    """Dynamic shared memory of a launch: a block's buckets."""
    return 16 * thresholds


INTEGER_TYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


def integer_sums(label_dtype: str, weight_dtype: str | None) -> bool:
    """Whether every term is an integer: the kernel then sums int64s (its integer atomics)."""
    return label_dtype in INTEGER_TYPES and (weight_dtype is None or weight_dtype in INTEGER_TYPES)


def pr_args(
    predictions: int,
    labels: int,
    label_dtype: str,
    weights: int,
    weight_dtype: str | None,
    n: int,
    thresholds: int,
    prediction_dtype: str,
    out: int,
) -> tuple:
    """gs_pr_counts' arguments (device addresses as integers; ``weights`` 0 for none)."""
    bits, min_exponent = ROUNDING.get(prediction_dtype, NO_ROUNDING)
    return (
        np.uint64(predictions),
        np.uint64(labels),
        np.int32(TYPE_CODES[label_dtype]),
        np.uint64(weights),
        np.int32(TYPE_CODES[weight_dtype] if weight_dtype else 0),
        np.int64(n),
        np.int32(thresholds),
        np.int32(bits),
        np.int32(min_exponent),
        np.int32(integer_sums(label_dtype, weight_dtype)),
        np.uint64(out),
        np.uint64(out + 16 * thresholds),
    )


def parse(
    raw: np.ndarray, thresholds: int, integers: bool
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(tp, fp, [nan, below, above]) from the buffer's bytes (float64 sums, or int64 ones
    where ``integers``)."""
    words = raw[: 16 * thresholds]
    doubles = words.view(np.int64).astype(np.float64) if integers else words.view(np.float64)
    skipped = raw[16 * thresholds : buffer_bytes(thresholds)].view(np.uint64)
    return doubles[:thresholds].copy(), doubles[thresholds:].copy(), [int(v) for v in skipped]
