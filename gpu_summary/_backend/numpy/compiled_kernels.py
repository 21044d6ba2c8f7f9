"""numba kernels of the compiled host reductions (``compiled``): imported only when numba is.

Every function runs without the GIL. ``keys`` is the input's bits as signed integers (int32 for
float32, int64 for float64), turned into keys that sort as the values do (``k = b ^ ((b >> top)
& magnitude)``), so that min and max vectorise; ``bits`` the same bits unsigned, whose top
20 bits name the ladder's cell (``_ladder``). Modes of the generic reduction
(``reduce_float``, ``reduce_wide_int``): 0 the ladder, 1 edges, 3 statistics only; even buckets
(2) have kernels of their own (``even_float``, ``even_wide_int``) that count and do nothing
else, the range being known from a first pass.
"""

from __future__ import annotations

import numba
import numpy as np

from gpu_summary._core import ladder as _ladder

exact_cell = _ladder.EXACT
search_cell = _ladder.SEARCH
last = _ladder.LAST_INDEX
block = 4096  # values per block: a float64 block (32 KiB) stays in L1 between the two passes
segment = 1 << 28  # values counted into int32 sub-counters before they are added up (< 2**31)


jit = numba.njit(nogil=True, cache=True, boundscheck=False)
# The moments' sums may be reassociated (so they vectorise); nothing else is relaxed: NaN
# and ±Inf compare as IEEE 754 says wherever they are tested, and buckets are computed
# without contractions, exactly as the specification's float64 NumPy steps.
jit_sums = numba.njit(
    nogil=True, cache=True, boundscheck=False, fastmath={"reassoc", "nsz", "contract"}
)


@jit
def search_right(limits, d):
    """The first i with limits[i] > d (limits.size when none)."""
    lo = 0
    hi = limits.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if limits[mid] > d:
            hi = mid
        else:
            lo = mid + 1
    return lo


@jit_sums
def block_moments(x, keys, top, magnitude, exponent):
    """Sums, the sortable-key min and max, and the NaN/±Inf count of x (a block: indexing
    from 0 over the whole array is what lets LLVM vectorise the loop)."""
    s = 0.0
    s2 = 0.0
    kmin = np.int64(0x7FFFFFFFFFFFFFFF)
    kmax = np.int64(-0x7FFFFFFFFFFFFFFF - 1)
    bad = 0
    for i in range(x.size):
        d = np.float64(x[i])
        s += d
        s2 += d * d
        b = np.int64(keys[i])
        k = b ^ ((b >> top) & magnitude)
        kmin = min(kmin, k)
        kmax = max(kmax, k)
        bad += (b & exponent) == exponent
    return s, s2, kmin, kmax, bad


I32 = np.int32


@jit_sums
def block_moments32(x, keys):
    """:func:`block_moments` of float32 (``keys`` int32), its key arithmetic kept in 32 bits:
    numba widens int32 operands to int64, and each explicit cast lets LLVM narrow them back,
    eight lanes a vector instead of four (the keys' part runs about 3x faster). ``bad`` is
    whether some value is NaN or ±Inf (its magnitude's bits at least the exponent's)."""
    s = 0.0
    s2 = 0.0
    kmin = I32(0x7FFFFFFF)
    kmax = I32(-0x80000000)
    top = I32(0)
    for i in range(x.size):
        d = np.float64(x[i])
        s += d
        s2 += d * d
        b = keys[i]
        k = I32(b ^ I32(I32(b >> I32(31)) & I32(0x7FFFFFFF)))
        kmin = I32(min(kmin, k))
        kmax = I32(max(kmax, k))
        top = I32(max(top, I32(b & I32(0x7FFFFFFF))))
    return s, s2, np.int64(kmin), np.int64(kmax), top >= I32(0x7F800000)


@jit
def block_careful(x, keys, top, magnitude, mode, limits, scratch, tally, sums):
    """A block holding NaN or ±Inf: each value tested, the non-finite counted; the finite
    counted in the edges' buckets (mode 1) or not at all (3: statistics alone, or the ladder's
    buckets already counted by ``block_ladder``)."""
    for i in range(x.size):
        v = x[i]
        if v != v:
            tally[3] += 1
            continue
        if v == np.inf:
            tally[4] += 1
            continue
        if v == -np.inf:
            tally[5] += 1
            continue
        d = np.float64(v)
        b = np.int64(keys[i])
        k = b ^ ((b >> top) & magnitude)
        tally[0] += 1
        tally[1] = min(tally[1], k)
        tally[2] = max(tally[2], k)
        sums[0] += d
        sums[1] += d * d
        if mode == 1:
            scratch[min(search_right(limits, d), limits.size - 1), i & 3] += 1


@jit
def exceptional_cell(b, v, limits):
    """The ladder bucket of v whose ``compare_table`` entry b is negative: one comparison
    with the cell's limit, or the full search; NaN and ±Inf go to the row past the last
    bucket (``limits.size``), which is never flushed."""
    d = np.float64(v)
    if b != search_cell:
        j = ~b
        return j + (d >= limits[j])
    if d - d != 0.0:
        return limits.size
    return min(search_right(limits, d), last)


@jit
def block_ladder(x, bits, table, shift, limits, scratch):
    """Ladder counts of a block through the compare table, four cells at a time (the block's
    first read: the moments then find it in L1)."""
    end4 = x.size & ~3
    for i in range(0, end4, 4):
        b0 = np.int32(table[bits[i] >> shift])
        b1 = np.int32(table[bits[i + 1] >> shift])
        b2 = np.int32(table[bits[i + 2] >> shift])
        b3 = np.int32(table[bits[i + 3] >> shift])
        if min(min(b0, b1), min(b2, b3)) < 0:
            if b0 < 0:
                b0 = exceptional_cell(b0, x[i], limits)
            if b1 < 0:
                b1 = exceptional_cell(b1, x[i + 1], limits)
            if b2 < 0:
                b2 = exceptional_cell(b2, x[i + 2], limits)
            if b3 < 0:
                b3 = exceptional_cell(b3, x[i + 3], limits)
        # unsigned indices: numba adds no test for a negative index (~20% of this loop)
        scratch[np.uint32(b0), 0] += 1
        scratch[np.uint32(b1), 1] += 1
        scratch[np.uint32(b2), 2] += 1
        scratch[np.uint32(b3), 3] += 1
    for i in range(end4, x.size):
        b = np.int32(table[bits[i] >> shift])
        if b < 0:
            b = exceptional_cell(b, x[i], limits)
        scratch[np.uint32(b), 0] += 1


@jit
def reduce_block(x, keys, bits, top, magnitude, exponent, mode, table, shift,
                 limits, scratch, tally, sums):  # fmt: skip
    if mode == 0:  # the buckets first, from memory; the vectorised moments from L1
        block_ladder(x, bits, table, shift, limits, scratch)
    if keys.itemsize == 4:
        s, s2, kmin, kmax, bad = block_moments32(x, keys)
    else:
        s, s2, kmin, kmax, bad = block_moments(x, keys, top, magnitude, exponent)
    if bad:
        block_careful(x, keys, top, magnitude, 3 if mode == 0 else mode, limits, scratch,
                      tally, sums)  # fmt: skip
        return
    tally[0] += x.size
    tally[1] = min(tally[1], kmin)
    tally[2] = max(tally[2], kmax)
    sums[0] += s
    sums[1] += s2
    if mode == 1:
        for i in range(x.size):
            d = np.float64(x[i])
            scratch[min(search_right(limits, d), limits.size - 1), i & 3] += 1


@jit
def flush(scratch, counts):
    for b in range(counts.size):
        counts[b] += np.int64(scratch[b, 0]) + scratch[b, 1] + scratch[b, 2] + scratch[b, 3]
    scratch[:] = 0


@jit
def reduce_float(x, keys, bits, top, magnitude, exponent, mode, table, shift, limits, counts,
                 tally, sums):  # fmt: skip
    """A float32/float64 part. Adds to counts (int64); tally = count, min and max keys,
    NaN, +Inf, -Inf (added to; min/max merged); sums = sum, sum of squares (added to)."""
    scratch = np.zeros((counts.size + 1, 4), np.int32)  # the last row: NaN/±Inf (never flushed)
    n = x.size
    since_flush = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        reduce_block(x[start:stop], keys[start:stop], bits[start:stop], top, magnitude,
                     exponent, mode, table,
                     shift, limits, scratch, tally, sums)  # fmt: skip
        since_flush += stop - start
        if since_flush >= segment:
            flush(scratch, counts)
            since_flush = 0
    flush(scratch, counts)


@jit
def reduce_wide_int(x, mode, table, limits, counts, tally, sums):
    """An int32/uint32/int64/uint64 part: each block converted to float64 first."""
    scratch = np.zeros((counts.size + 1, 4), np.int32)
    buffer = np.empty(block, np.float64)
    keys = buffer.view(np.int64)
    bits = buffer.view(np.uint64)
    shift = np.uint64(64 - 20)
    n = x.size
    since_flush = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        for i in range(m):
            buffer[i] = np.float64(x[start + i])
        reduce_block(buffer[:m], keys[:m], bits[:m], 63, 0x7FFFFFFFFFFFFFFF,
                     0x7FF0000000000000, mode, table, shift, limits, scratch, tally,
                     sums)  # fmt: skip
        since_flush += m
        if since_flush >= segment:
            flush(scratch, counts)
            since_flush = 0
    flush(scratch, counts)


@jit
def even_estimates(x, lo, scale, half, top, estimates):
    """Each value's estimated even bucket (clamped to [0, top]), or top + 1 for NaN and ±Inf:
    no branch, so that the loop vectorises."""
    for i in range(x.size):
        d = np.float64(x[i])
        t = (d * 0.5 - lo * 0.5) * scale if half else (d - lo) * scale
        t = t if t > 0.0 else 0.0
        t = t if t < top else top
        estimates[i] = np.int32(t) if d - d == 0.0 else np.int32(top + 1.0)


@jit
def even_block(x, lo, scale, half, edges, bins, estimates, scratch):
    """Even-bucket counts of a block (float32/float64/converted ints; NaN and ±Inf left out).

    The estimate multiplies by the reciprocal of the step (a division costs several times
    more); it may be a bucket or more off either way, and the walk against the exact float64
    edges puts every value where the specification does, ``edges[b] <= d < edges[b + 1]``.
    """
    even_estimates(x, lo, scale, half, np.float64(bins - 1), estimates)
    for i in range(x.size):
        index = estimates[i]
        if index < bins:
            d = np.float64(x[i])
            while index > 0 and edges[index] > d:
                index -= 1
            while index < bins - 1 and edges[index + 1] <= d:
                index += 1
            scratch[index, i & 3] += 1


@jit
def even_float(x, lo, scale, half, edges, bins, counts):
    """Even-bucket counts of a float32/float64 part, added to ``counts`` (int64)."""
    scratch = np.zeros((bins, 4), np.int32)
    estimates = np.empty(block, np.int32)
    n = x.size
    since_flush = 0
    for start in range(0, n, block):
        stop = min(start + block, n)
        even_block(x[start:stop], lo, scale, half, edges, bins, estimates, scratch)
        since_flush += stop - start
        if since_flush >= segment:
            flush(scratch, counts)
            since_flush = 0
    flush(scratch, counts)


@jit
def even_wide_int(x, lo, scale, half, edges, bins, counts):
    """Even-bucket counts of an int32/uint32/int64/uint64 part (each value converted to
    float64, as the specification does), added to ``counts`` (int64)."""
    scratch = np.zeros((bins, 4), np.int32)
    estimates = np.empty(block, np.int32)
    buffer = np.empty(block, np.float64)
    n = x.size
    since_flush = 0
    for start in range(0, n, block):
        m = min(block, n - start)
        for i in range(m):
            buffer[i] = np.float64(x[start + i])
        even_block(buffer[:m], lo, scale, half, edges, bins, estimates, scratch)
        since_flush += m
        if since_flush >= segment:
            flush(scratch, counts)
            since_flush = 0
    flush(scratch, counts)


@jit
def count_patterns(patterns, counts):
    """How often each bit pattern (uint8 or uint16) occurs; added to int64 counts."""
    scratch = np.zeros((counts.size, 4), np.int32)
    n = patterns.size
    for first in range(0, n, segment):
        stop = min(first + segment, n)
        end4 = first + ((stop - first) & ~3)
        for i in range(first, end4, 4):
            scratch[patterns[i], 0] += 1
            scratch[patterns[i + 1], 1] += 1
            scratch[patterns[i + 2], 2] += 1
            scratch[patterns[i + 3], 3] += 1
        for i in range(end4, stop):
            scratch[patterns[i], 0] += 1
        flush(scratch, counts)


@jit
def overlap(i, n_in, n_out):
    """Output pixel i of n_out over n_in inputs (units of 1/n_out of an input pixel): its whole
    inputs y0 <= y < y1 and the weights of the partial ones on either side, at the clamped
    indices first and last (a weight is 0 where its index was clamped)."""
    a = i * n_in
    b = (i + 1) * n_in
    y0 = -(-a // n_out)
    y1 = b // n_out
    left = np.int64(y0 * n_out - a)
    right = np.int64(b - y1 * n_out)
    return y0, y1, left, right, max(y0 - 1, 0), min(y1, n_in - 1)


@jit
def shrink_image(image, out, scratch):
    """Area-average one uint8 HWC image (C-contiguous) into ``out`` (out_h × out_w × C),
    exactly as ``images._area_resize``: integer overlap weights, rows then columns, rounded
    half up. ``scratch``: int64, at least W × C."""
    h, w, c = image.shape
    out_h, out_w, _ = out.shape
    rows = image.reshape(h, w * c)
    width = w * c
    area = np.int64(h) * w
    for i in range(out_h):
        y0, y1, left, right, top, bottom = overlap(i, h, out_h)
        for t in range(width):
            scratch[t] = 0
        for y in range(y0, y1):
            for t in range(width):
                scratch[t] += rows[y, t]
        for t in range(width):
            scratch[t] = scratch[t] * out_h + rows[top, t] * left + rows[bottom, t] * right
        for j in range(out_w):
            x0, x1, left, right, first, last_x = overlap(j, w, out_w)
            for k in range(c):
                whole = np.int64(0)
                for x in range(x0, x1):
                    whole += scratch[x * c + k]
                total = (
                    whole * out_w + scratch[first * c + k] * left
                    + scratch[last_x * c + k] * right
                )  # fmt: skip
                out[i, j, k] = (2 * total + area) // (2 * area)


@jit
def anomaly_piece(x, start, lower, upper, has_lower, has_upper, positions, position_values,
                  table, shift, bits, limits, counts, tally, sums, width, row, column,
                  row_cell, column_cell, columns, heat_sum, heat_count,
                  heat_nonfinite):  # fmt: skip
    """One C-order piece of an anomaly report, its first value at flat index ``start``, at
    heat-map grid position (row, column). ``tally``: count, NaN, +Inf, -Inf, below, above,
    positions kept (all added to); ``sums``: sum, sum of squares, min, max (merged). Returns
    the grid position after the piece."""
    max_positions = positions.size
    for i in range(x.size):
        d = np.float64(x[i])
        cell = row_cell[row] * columns + column_cell[column]
        offending = False
        if d != d or d == np.inf or d == -np.inf:
            tally[1 if d != d else (2 if d > 0 else 3)] += 1
            heat_nonfinite[cell] += 1
            offending = True
        else:
            if has_lower and d < lower:
                tally[4] += 1
                offending = True
            if has_upper and d > upper:
                tally[5] += 1
                offending = True
            index = table[bits[i] >> shift]
            if index == exact_cell:
                index = min(search_right(limits, d), last)
            counts[index] += 1
            tally[0] += 1
            sums[0] += d
            sums[1] += d * d
            sums[2] = min(sums[2], d)
            sums[3] = max(sums[3], d)
            heat_sum[cell] += d
            heat_count[cell] += 1
        if offending and tally[6] < max_positions:
            positions[tally[6]] = start + i
            position_values[tally[6]] = d
            tally[6] += 1
        column += 1
        if column == width:
            column = 0
            row += 1
    return row, column


@jit
def gather_buckets(x, bits, shift, table, limits, wanted, out, filled):
    """Append to ``out`` every finite value of x whose ladder bucket is marked in ``wanted``
    (the buckets that hold a wanted order statistic); ``filled[0]``: values so far."""
    for i in range(x.size):
        d = np.float64(x[i])
        if d != d or d == np.inf or d == -np.inf:
            continue
        index = table[bits[i] >> shift]
        if index == exact_cell:
            index = min(search_right(limits, d), last)
        if wanted[index]:
            out[filled[0]] = d
            filled[0] += 1
