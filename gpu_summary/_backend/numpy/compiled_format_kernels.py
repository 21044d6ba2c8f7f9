"""numba kernels of the compiled low-precision counts (``compiled_formats``), beside
``compiled_kernels`` (whose ``jit`` and block size they share): imported only when numba is,
through ``compiled_formats._kernels``.

Each block of magnitudes is compared with the thresholds of four formats at once, without a
branch, so that the loop vectorises; the explicit casts keep a float32's magnitudes in 32-bit
lanes (numba widens uint32 arithmetic to 64 bits, which halves the lanes) and the counters in
32 bits (a block is far below 2**31 values).
"""

from __future__ import annotations

import numpy as np

from gpu_summary._backend.numpy.compiled_kernels import block, jit

U32 = np.uint32
I32 = np.int32


@jit
def format_block32(bits, mask, over, under, infinity):
    """The counts (overflow, underflow of each of 4 threshold slots) of one block of float32
    bits (uint32)."""
    o0, o1, o2, o3 = over[0], over[1], over[2], over[3]
    u0, u1, u2, u3 = under[0], under[1], under[2], under[3]
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = I32(0)
    for i in range(bits.size):
        m = U32(bits[i] & mask)
        finite = m < infinity
        nonzero = m != U32(0)
        c0 = I32(c0 + I32((m >= o0) & finite))
        c1 = I32(c1 + I32(nonzero & (m <= u0)))
        c2 = I32(c2 + I32((m >= o1) & finite))
        c3 = I32(c3 + I32(nonzero & (m <= u1)))
        c4 = I32(c4 + I32((m >= o2) & finite))
        c5 = I32(c5 + I32(nonzero & (m <= u2)))
        c6 = I32(c6 + I32((m >= o3) & finite))
        c7 = I32(c7 + I32(nonzero & (m <= u3)))
    return c0, c1, c2, c3, c4, c5, c6, c7


@jit
def format_block64(bits, mask, over, under, infinity):
    """:func:`format_block32` of float64 bits (uint64)."""
    o0, o1, o2, o3 = over[0], over[1], over[2], over[3]
    u0, u1, u2, u3 = under[0], under[1], under[2], under[3]
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = I32(0)
    for i in range(bits.size):
        m = bits[i] & mask
        finite = m < infinity
        nonzero = m != np.uint64(0)
        c0 = I32(c0 + I32((m >= o0) & finite))
        c1 = I32(c1 + I32(nonzero & (m <= u0)))
        c2 = I32(c2 + I32((m >= o1) & finite))
        c3 = I32(c3 + I32(nonzero & (m <= u1)))
        c4 = I32(c4 + I32((m >= o2) & finite))
        c5 = I32(c5 + I32(nonzero & (m <= u2)))
        c6 = I32(c6 + I32((m >= o3) & finite))
        c7 = I32(c7 + I32(nonzero & (m <= u3)))
    return c0, c1, c2, c3, c4, c5, c6, c7


@jit
def format_bits(bits, mask, over, under, infinity, counts):
    """Low-precision counts (``numpy/formats.py``) of float bits (uint32 of float32, uint64
    of float64), added to ``counts`` (int64, 4 slots x [overflow, underflow]); ``over`` and
    ``under`` hold 4 thresholds each (a spare slot's never match), and they, ``mask`` and
    ``infinity`` are of the bits' type."""
    for start in range(0, bits.size, block):
        part = bits[start : min(start + block, bits.size)]
        if bits.itemsize == 4:
            found = format_block32(part, mask, over, under, infinity)
        else:
            found = format_block64(part, mask, over, under, infinity)
        for k in range(8):
            counts[k >> 1, k & 1] += found[k]


@jit
def format_wide_int(x, mask, over, under, infinity, counts):
    """:func:`format_bits` of int32/uint32/int64/uint64 values by their float64 bits."""
    buffer = np.empty(block, np.float64)
    bits = buffer.view(np.uint64)
    for start in range(0, x.size, block):
        m = min(block, x.size - start)
        for i in range(m):
            buffer[i] = np.float64(x[start + i])
        format_bits(bits[:m], mask, over, under, infinity, counts)
