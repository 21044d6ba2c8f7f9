"""The NumPy backend's images: conversion to uint8 and area-averaged thumbnails, a few images
(or, for one huge image, a few rows) at a time."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from gpu_summary._backend.numpy.arrays import CHUNK
from gpu_summary._core.results import (
    Pending,
    Ready,
)

# Values converted at a time (a 16 MiB float64 copy): a larger array is converted in pieces.
BAND = CHUNK * 64
# One image of more values than this (a 256 MiB float64 copy) is shrunk a few rows at a time.
STREAM_ABOVE = 1 << 25


def pieces(shape: tuple[int, ...], budget: int) -> Iterator[tuple]:
    """Index tuples that cut an array of ``shape`` into C-order pieces of at most ``budget``
    elements (whole trailing axes, a slice of the first axis that fits; one element of a row
    longer than ``budget`` is never split further than its last axis)."""
    k = 0
    while k < len(shape) - 1 and math.prod(shape[k + 1 :]) > budget:
        k += 1
    if not shape:
        yield ()
        return
    step = max(1, budget // max(1, math.prod(shape[k + 1 :])))
    for outer in np.ndindex(*shape[:k]):
        for start in range(0, shape[k], step):
            yield (*outer, slice(start, start + step))


def image_to_uint8(images: np.ndarray, truncate: bool = False) -> np.ndarray:
    """uint8 pixels: uint8 as is, bool as 0/255, floats in [0, 1] scaled by 255.

    Floats: ``floor(clip(x, 0, 1) * 255 + 0.5)`` in float64; with ``truncate``, as torch's
    writer converts them: ``x`` cast to float32, times 255 in float32, clipped to [0, 255] and
    truncated. NaN becomes 0 either way. Converted ``BAND`` values at a time: the only new
    memory is the uint8 result.
    """
    if images.dtype == np.uint8:
        return images
    if images.size <= BAND:
        return _to_uint8(images, truncate)
    out = np.empty(images.shape, np.uint8)
    for index in pieces(images.shape, BAND):
        out[index] = _to_uint8(images[index], truncate)
    return out


def _to_uint8(images: np.ndarray, truncate: bool) -> np.ndarray:
    if images.dtype == np.bool_:
        return images.astype(np.uint8) * np.uint8(255)
    if truncate:  # torch's summary.image: (x.astype(float32) * 255).clip(0, 255).astype(uint8)
        with np.errstate(over="ignore"):  # beyond float32: ±inf, clipped as torch clips it
            x = images.astype(np.float32)
            x *= np.float32(255)
        np.fmax(x, np.float32(0), out=x)  # fmax/fmin also turn NaN into the other operand
        np.fmin(x, np.float32(255), out=x)
        return x.astype(np.uint8)
    x = images.astype(np.float64)
    np.fmax(x, 0.0, out=x)  # fmax/fmin also turn NaN into the other operand
    np.fmin(x, 1.0, out=x)
    x *= 255.0
    x += 0.5
    np.floor(x, out=x)
    return x.astype(np.uint8)


def thumbnail_size(height: int, width: int, max_size: int | None) -> tuple[int, int]:
    """Output (height, width): the longer side shrunk to ``max_size``, aspect kept (rounded
    half up, at least 1); unchanged when it already fits or ``max_size`` is None."""
    longest = max(height, width)
    if max_size is None or longest <= max_size:
        return height, width

    def scale(n: int) -> int:
        return max(1, (2 * n * max_size + longest) // (2 * longest))

    return scale(height), scale(width)


def _shrink_axis(x: np.ndarray, axis: int, n_out: int, dtype: type) -> np.ndarray:
    """Area-weighted integer sums along ``axis``, from ``n_in`` samples down to ``n_out``.

    In units of 1/n_out of an input pixel, input pixel y spans [y * n_out, (y + 1) * n_out) and
    output i spans [a, b) = [i * n_in, (i + 1) * n_in); each input contributes its overlap
    (an integer) times its value. Output i covers the whole pixels y0 <= y < y1
    (y0 = ceil(a / n_out), y1 = floor(b / n_out)), each of weight n_out, plus the partial
    pixels y0 - 1 (weight y0 * n_out - a) and y1 (weight b - y1 * n_out).

    The whole-pixel runs are summed by gathering each run's rows into a block of equal length
    (the longest run; shorter runs padded with a zero row) and reducing the blocks, which NumPy
    vectorises well; the partial pixels are one gathered row each.
    """
    n_in = x.shape[axis]
    i = np.arange(n_out, dtype=np.int64)
    a, b = i * n_in, (i + 1) * n_in
    y0, y1 = -(-a // n_out), b // n_out  # y0 <= y1 whenever n_out <= n_in
    longest = int((y1 - y0).max())
    shape = [1] * x.ndim
    shape[axis] = n_out
    if longest:
        padded = np.concatenate([x, np.zeros_like(np.take(x, [0], axis=axis))], axis=axis)
        rows = y0[:, None] + np.arange(longest)[None, :]
        rows = np.where(rows < y1[:, None], rows, n_in)  # n_in: the zero row
        blocks = np.take(padded, rows.ravel(), axis=axis)
        block_shape = [*x.shape[:axis], n_out, longest, *x.shape[axis + 1 :]]
        whole = blocks.reshape(block_shape).sum(axis=axis + 1, dtype=dtype)
        whole *= n_out
    else:
        whole = np.zeros([*x.shape[:axis], n_out, *x.shape[axis + 1 :]], dtype=dtype)
    left = (y0 * n_out - a).astype(dtype).reshape(shape)
    right = (b - y1 * n_out).astype(dtype).reshape(shape)
    whole += np.take(x, np.maximum(y0 - 1, 0), axis=axis).astype(dtype) * left
    whole += np.take(x, np.minimum(y1, n_in - 1), axis=axis).astype(dtype) * right
    return whole


def _area_resize(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-average uint8 NHWC images to (height, width), exactly, in integers.

    ``out = round_half_up(sum(w_y * w_x * pixel) / (H * W))`` with the integer overlap weights
    of :func:`_shrink_axis`; the device kernel computes the same integers.
    """
    _, h, w, _ = images.shape
    # Row sums stay below h * 255; full sums below h * w * 255 (int64 beyond int32's range).
    rows = _shrink_axis(images, 1, height, np.int32)
    wide = np.int32 if h * w * 255 * 2 < 2**31 else np.int64
    sums = _shrink_axis(rows, 2, width, wide)
    area = h * w
    return ((2 * sums + area) // (2 * area)).astype(np.uint8)


def _streamed_resize(image: np.ndarray, out: np.ndarray, truncate: bool) -> None:
    """``_area_resize`` of one HWC image too large to convert whole (a zero-stride view of
    billions of pixels, say), into ``out`` (its thumbnail's place): each output row's integer
    row sums gathered from its input rows ``BAND`` values at a time, then shrunk along the
    columns — the same integers, so the same pixels, with memory bounded by a few input rows."""
    h, w, c = image.shape
    height, width, _ = out.shape
    area = h * w
    rows_at_once = max(1, BAND // (w * c))
    for i in range(height):
        a, b = i * h, (i + 1) * h  # output row i, in units of 1/height of an input row
        first, stop = a // height, min(h, -(-b // height))  # the input rows it overlaps
        ys = np.arange(first, stop, dtype=np.int64)
        weights = np.minimum((ys + 1) * height, b) - np.maximum(ys * height, a)
        sums = np.zeros((w, c), np.int64)
        for start in range(first, stop, rows_at_once):
            end = min(start + rows_at_once, stop)
            rows = image_to_uint8(image[start:end], truncate).astype(np.int64)
            sums += (rows * weights[start - first : end - first, None, None]).sum(axis=0)
        whole = _shrink_axis(sums[None, None], 2, width, np.int64)[0, 0]
        out[i] = (2 * whole + area) // (2 * area)


def thumbnails(
    images: np.ndarray, max_size: int | None, *, truncate: bool = False
) -> Pending[np.ndarray]:
    """uint8 NHWC thumbnails of NHWC ``images`` (uint8, bool or float in [0, 1], converted by
    :func:`image_to_uint8` with ``truncate``).

    The result is a new C-contiguous array the caller may keep; ``images`` (which may be a
    strided view of a batch) is read a few images at a time, so peak extra memory stays near
    one image's uint8 copy, not the batch's — and one image of more than ``STREAM_ABOVE``
    values a few rows at a time.
    """
    n, h, w, c = images.shape
    out_h, out_w = thumbnail_size(h, w, max_size)
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    if h * w * c > STREAM_ABOVE and (out_h, out_w) != (h, w):
        for k in range(n):
            _streamed_resize(images[k], out[k], truncate)
        return Ready(out)
    per_group = max(1, BAND // max(1, h * w * c))
    for start in range(0, n, per_group):
        group = image_to_uint8(images[start : start + per_group], truncate)
        if (out_h, out_w) != (h, w):
            group = _area_resize(group, out_h, out_w)
        out[start : start + per_group] = group
    return Ready(out)
