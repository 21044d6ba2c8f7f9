"""The low-precision counts on the host, compiled (numba, through ``compiled_runtime``): the
results of ``formats``, the specification, which runs wherever the kernels cannot (numba
missing or switched off, small arrays, a dtype still compiling).

float32 and float64 bits are read where they lie, a block of 4,096 at a time, in one
branch-free (vectorised) pass that compares each magnitude with the thresholds of all
``SLOTS`` formats at once (slots not asked for never match). Integers of 32 and 64 bits are
converted to float64 a block at a time, as the specification compares them; bool, 8- and
16-bit data (float16 included) are counted by bit pattern, and each pattern that occurs is
then counted by the specification, weighted. Large arrays are shared out over the threads in
contiguous parts.
"""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.numpy import compiled_runtime as runtime
from gpu_summary._backend.numpy import formats as reference
from gpu_summary._backend.numpy.compiled_runtime import FLOATS, PATTERNS, enabled
from gpu_summary._core import formats as _formats
from gpu_summary._core.results import Pending, Ready

_UNSIGNED = {32: np.uint32, 64: np.uint64}
SLOTS = 4  # the threshold slots of compiled_format_kernels.format_bits: every format at once


def format_counts(values: np.ndarray, formats: tuple[str, ...]) -> Pending[np.ndarray]:
    """``formats.format_counts``, compiled."""
    width = reference.magnitude_width(values.dtype)
    if not formats or width is None or values.size < runtime.SMALL or not enabled():
        return reference.format_counts(values, formats)
    counts = _compiled_counts(values, formats, width)
    return reference.format_counts(values, formats) if counts is None else Ready(counts)


def _compiled_counts(values: np.ndarray, formats: tuple[str, ...], width: int) -> np.ndarray | None:
    """The counts by the compiled kernels, or None where they cannot take ``values``."""
    counts = np.zeros((len(formats), 2), np.int64)
    for piece in runtime.pieces(values):
        variant = runtime.variant_of(piece)
        if variant is None or not runtime.usable(variant, values.size):
            return None
        counts += _piece_counts(piece, formats, width)
    return counts


def _kernels() -> object:
    """The numba kernels of this module (imported on first use: numba is there, since
    ``compiled_runtime`` decided the kernels may run)."""
    from gpu_summary._backend.numpy import compiled_format_kernels

    return compiled_format_kernels


def _piece_counts(piece: np.ndarray, formats: tuple[str, ...], width: int) -> np.ndarray:
    """The counts of one 1-D contiguous piece (its variant compiled)."""
    table = _formats.thresholds(formats, width)
    if piece.dtype in PATTERNS:
        return _pattern_counts(piece, table, width)
    kernels = _kernels()
    unsigned = _UNSIGNED[width]
    infinity = unsigned(_formats.INFINITY_BITS[width])
    over = np.full(SLOTS, infinity, unsigned)  # a spare slot's thresholds never match
    under = np.zeros(SLOTS, unsigned)
    over[: len(formats)], under[: len(formats)] = table[:, 0], table[:, 1]
    mask = unsigned(_formats.MAGNITUDE_MASK[width])

    def work(start: int, stop: int) -> np.ndarray:
        part = np.zeros((SLOTS, 2), np.int64)
        if piece.dtype in FLOATS:
            bits = piece[start:stop].view(unsigned)
            kernels.format_bits(bits, mask, over, under, infinity, part)
        else:  # 32- and 64-bit integers: by their float64 value
            kernels.format_wide_int(piece[start:stop], mask, over, under, infinity, part)
        return part

    parts = runtime.in_parts(piece.size, work)
    return (parts[0] if len(parts) == 1 else np.sum(parts, axis=0))[: len(formats)]


def _pattern_counts(piece: np.ndarray, table: np.ndarray, width: int) -> np.ndarray:
    """8- and 16-bit data: how often each bit pattern occurs, then the specification's counts
    of the patterns that do, weighted."""
    unsigned = np.uint8 if piece.itemsize == 1 else np.uint16
    patterns = piece.view(unsigned)

    def work(start: int, stop: int) -> np.ndarray:
        found = np.zeros(1 << (8 * piece.itemsize), np.int64)
        runtime.kernels().count_patterns(patterns[start:stop], found)
        return found

    parts = runtime.in_parts(patterns.size, work)
    found = parts[0] if len(parts) == 1 else np.sum(parts, axis=0)
    present = np.flatnonzero(found)
    values = present.astype(unsigned).view(piece.dtype)
    return reference.count_magnitudes(
        reference.magnitudes(values, width), table, width, weights=found[present]
    )


def _warm(sample: np.ndarray) -> None:
    width = reference.magnitude_width(sample.dtype)
    if width is not None and sample.dtype not in PATTERNS:
        _piece_counts(sample, _formats.FORMATS, width)


runtime.WARMERS.append(_warm)
