"""The NumPy backend's low-precision counts (``formats=``): the specification that the
compiled host kernel (``compiled_formats``) and ``kernels/gs_formats.cu`` must match exactly.

For each format (``gpu_summary._core.formats``) two counts over the values: ``overflow``, the
finite values whose rounding to the format lands beyond its largest finite value, and
``underflow``, the non-zero values that round to zero. Both compare the bits of |x| as
unsigned integers with the thresholds' bits, never floats: float32 as uint32, float16 widened
exactly to float32, float64 as uint64, integers by their float64 value (exact against these
thresholds, see ``_core.formats``), bool never counted. Chunks of ``CHUNK`` values keep the
temporaries in cache; a chunk is first screened by its largest and smallest non-zero
magnitude, so that data far from every threshold costs a few passes and no count.
"""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.numpy.arrays import flat_chunks
from gpu_summary._core import formats as _formats
from gpu_summary._core.results import Pending, Ready

_UNSIGNED = {32: np.uint32, 64: np.uint64}


def magnitude_width(dtype: np.dtype) -> int | None:
    """Bits of the unsigned magnitudes a dtype is compared as: 32 (float32, and the narrower
    floats widened to it), 64 (float64 and integers, by their float64 value), None (bool:
    nothing to count)."""
    if dtype.kind == "b":
        return None
    if dtype.kind == "f" and dtype.itemsize <= 4:
        return 32
    return 64


def magnitudes(chunk: np.ndarray, width: int) -> np.ndarray:
    """The bits of |x| of a 1-D chunk as unsigned integers of ``width`` bits (a new array)."""
    if not chunk.dtype.isnative:
        chunk = chunk.astype(chunk.dtype.newbyteorder("="))
    floats = np.float32 if width == 32 else np.float64
    if chunk.dtype != floats:  # exact: float16 to float32, integers near any threshold
        chunk = chunk.astype(floats)
    unsigned = _UNSIGNED[width]
    return np.bitwise_and(chunk.view(unsigned), unsigned(_formats.MAGNITUDE_MASK[width]))


def count_magnitudes(
    bits: np.ndarray, table: np.ndarray, width: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """int64 counts of shape (len(table), 2) of magnitudes ``bits`` against ``table`` (the
    thresholds of ``_formats.thresholds`` for ``width``): ``overflow_bits <= m < infinity``
    and ``0 < m <= underflow_bits``; each magnitude counts ``weights[i]`` times (once without
    weights)."""
    unsigned = _UNSIGNED[width]
    infinity = unsigned(_formats.INFINITY_BITS[width])
    counts = np.zeros((len(table), 2), np.int64)
    for k, (over, under) in enumerate(table):
        overflow = (bits >= unsigned(over)) & (bits < infinity)
        underflow = (bits != 0) & (bits <= unsigned(under))
        for column, found in ((_formats.OVERFLOW, overflow), (_formats.UNDERFLOW, underflow)):
            if weights is None:
                counts[k, column] = np.count_nonzero(found)
            else:
                counts[k, column] = int(weights[found].sum())
    return counts


def format_counts(values: np.ndarray, formats: tuple[str, ...]) -> Pending[np.ndarray]:
    """Overflow and underflow counts of ``values`` for each of ``formats``.

    Args:
        values: any shape, numeric dtype (as ``numeric`` makes it: narrow floats widened).
        formats: names from ``gpu_summary._core.formats.FORMATS`` (checked by the caller).

    Returns:
        A ready int64 array of shape (len(formats), 2): per format, overflow then underflow.
    """
    counts = np.zeros((len(formats), 2), np.int64)
    width = magnitude_width(values.dtype)
    if not formats or width is None:
        return Ready(counts)
    if values.dtype.kind == "f" and values.dtype.itemsize > 8:
        return Ready(_extended_counts(values, formats))
    table = _formats.thresholds(formats, width)
    unsigned = _UNSIGNED[width]
    lowest_overflow = unsigned(table[:, 0].min())
    highest_underflow = unsigned(table[:, 1].max())
    for chunk in flat_chunks(values):
        bits = magnitudes(chunk, width)
        if bits.size == 0:
            continue
        near_top = bits.max() >= lowest_overflow  # NaN and ±Inf too: counted apart
        # the smallest non-zero magnitude, less one (a zero wraps to the largest integer)
        near_zero = np.subtract(bits, unsigned(1)).min() < highest_underflow
        if near_top or near_zero:
            counts += count_magnitudes(bits, table, width)
    return Ready(counts)


def _extended_counts(values: np.ndarray, formats: tuple[str, ...]) -> np.ndarray:
    """The counts of floats wider than float64 (``np.longdouble``), compared as floats of
    their own type: rounded to float64 first, a value within half a float64 ulp of a threshold
    would land on it and be miscounted. Every threshold is exact in such a type, and these
    comparisons run on the host, in an arithmetic that flush-to-zero does not touch (x87,
    or software quad precision)."""
    counts = np.zeros((len(formats), 2), np.int64)
    for chunk in flat_chunks(values):
        magnitude = np.abs(chunk)
        finite = np.isfinite(magnitude)
        for k, name in enumerate(formats):
            fmt = _formats.BY_NAME[name]
            midpoint = magnitude.dtype.type(fmt.midpoint)
            beyond = magnitude >= midpoint if fmt.tie_overflows else magnitude > midpoint
            limit = magnitude.dtype.type(fmt.underflow_limit)
            counts[k, _formats.OVERFLOW] += np.count_nonzero(beyond & finite)
            counts[k, _formats.UNDERFLOW] += np.count_nonzero(
                (magnitude != 0) & (magnitude <= limit)
            )
    return counts
