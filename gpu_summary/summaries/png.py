"""Lossless PNG, fast: one row filter for the whole image, chosen by trial, and libdeflate.

Pillow filters every row five ways and picks by a heuristic, then runs zlib; most of an image
summary's time went there. Here (measured on random, smooth and photo-like 2000×2000 RGB images,
``benchmarks/RESULTS.md``):

* A sample of the image (up to 16 bands of rows spread over it, an eighth of the image,
  32 KiB at least and 192 KiB at most; each band two rows deep at least, so that matches with
  the row above, which long rows of repeated tiles such as a batch's grid live on, show) is
  filtered with *None*, *Sub* (the pixel to the left) and *Up* (the pixel above) and each
  compressed at libdeflate's level 1; the filter whose sample is smallest is used for every
  row. Sub and Up
  are a single NumPy subtraction over the image; Average and Paeth cost 15-100 times more in
  NumPy and compressed no smaller than the better of the two on these images.
* Incompressible data (the best sample above ``STORE_ABOVE`` of its size: noise, random
  pixels) is stored: deflate's uncompressed blocks, at the speed of a copy.
* Highly compressible data (the sample under ``SMOOTH_BELOW``) is compressed at level
  ``SMOOTH_LEVEL`` where that pays: where the winning sample at that level is under
  ``SMOOTH_PAYS`` of its size at level 1 (a 2000×2000 smooth image: 21% smaller for 15% more
  time). Where it does not (a 512×512 one: 4% smaller for 75% more time) and for everything
  else, level ``LEVEL``; either way near Pillow's default size (its level 6 with adaptive
  filters) at a fraction of the time.

The file is a plain 8-bit PNG (gray, RGB or RGBA, no interlace) of one IDAT chunk, which any
decoder reads; CRCs are libdeflate's.
"""

from __future__ import annotations

import struct
import weakref

import deflate
import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # gray, RGB, RGBA
NONE, SUB, UP = 0, 1, 2

LEVEL = 1
SMOOTH_LEVEL = 4
SMOOTH_BELOW = 0.15
STORE_ABOVE = 0.95
SMOOTH_PAYS = 0.9
_SAMPLE_BANDS = 16
_SAMPLE_FRACTION = 8
_SAMPLE_LEAST = 32 << 10
_SAMPLE_BYTES = 192 << 10  # the sample's size at most: about 2 ms to compress at level 1


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = deflate.crc32(data, deflate.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


# The scanline buffers of the images ``blank`` made, by id: their spare first column is ours.
_SCANLINES: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()


def blank(height: int, width: int, channels: int) -> np.ndarray:
    """An uninitialised uint8 HWC image to fill, then encode: each row stored one byte after
    the last, so that :func:`encode` writes the filter byte there when it picks None, not the
    image again (a batch's grid, whose every row is stored after its spare byte)."""
    lines = np.empty((height, width * channels + 1), np.uint8)
    _SCANLINES[id(lines)] = lines
    return lines[:, 1:].reshape(height, width, channels)


def _scanlines(rows: np.ndarray) -> np.ndarray | None:
    """The buffer ``rows`` (H × W·C) fills all but the first column of, when :func:`blank` made
    it; else None."""
    lines = _SCANLINES.get(id(rows.base))
    if lines is None or lines is not rows.base or lines.shape[1] != rows.shape[1] + 1:
        return None
    if rows.shape[0] != lines.shape[0] or rows.strides != lines.strides:
        return None
    return lines if rows.ctypes.data == lines.ctypes.data + 1 else None


def filtered(
    rows: np.ndarray, channels: int, kind: int, first_row: np.ndarray | None
) -> np.ndarray:
    """PNG scanlines of ``rows`` (H × W·C uint8): each row its filter byte, then the row
    filtered by ``kind``. ``first_row``: the raw row above ``rows[0]`` (None at the image's
    top, where Up sees zeros). None of a whole :func:`blank` image is its own buffer."""
    height, width = rows.shape
    if kind == NONE and first_row is None and (spare := _scanlines(rows)) is not None:
        spare[:, 0] = NONE
        return spare
    lines = np.empty((height, width + 1), np.uint8)
    lines[:, 0] = kind
    out = lines[:, 1:]
    if kind == NONE:
        out[...] = rows
    elif kind == SUB:
        out[:, :channels] = rows[:, :channels]
        np.subtract(rows[:, channels:], rows[:, :-channels], out=out[:, channels:])
    else:
        if first_row is None:
            out[0] = rows[0]
        else:
            np.subtract(rows[0], first_row, out=out[0])
        np.subtract(rows[1:], rows[:-1], out=out[1:])
    return lines


def _sample(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Where the sample's bands start, and their rows: ``_SAMPLE_BANDS`` bands spread over the
    image, an eighth of it (``_SAMPLE_LEAST`` bytes at least, ``_SAMPLE_BYTES`` at most)."""
    height, row_bytes = rows.shape
    budget = min(_SAMPLE_BYTES, max(_SAMPLE_LEAST, rows.size // _SAMPLE_FRACTION))
    band_rows = min(height, max(2, min(8, budget // (_SAMPLE_BANDS * row_bytes))))
    bands = max(1, min(_SAMPLE_BANDS, height // band_rows, budget // (band_rows * row_bytes)))
    return np.linspace(0, max(0, height - band_rows), bands).astype(int), band_rows


def choose(rows: np.ndarray, channels: int) -> tuple[int, int]:
    """(filter, deflate level) for an image, by compressing a sample of its rows."""
    starts, band_rows = _sample(rows)
    samples, sizes = {}, {}
    for kind in (NONE, SUB, UP):
        samples[kind] = np.concatenate([
            filtered(rows[s : s + band_rows], channels, kind, rows[s - 1] if s else None)
            for s in starts
        ])  # fmt: skip
        sizes[kind] = len(deflate.zlib_compress(samples[kind], LEVEL))
    kind = min(sizes, key=sizes.__getitem__)
    ratio = sizes[kind] / samples[kind].size
    if ratio > STORE_ABOVE:
        return NONE, 0
    if ratio < SMOOTH_BELOW:
        smaller = len(deflate.zlib_compress(samples[kind], SMOOTH_LEVEL))
        if smaller < SMOOTH_PAYS * sizes[kind]:
            return kind, SMOOTH_LEVEL
    return kind, LEVEL


def interleaved(image: np.ndarray) -> np.ndarray:
    """An HWC image as H × W·C row-major bytes: a view when it already is; planar data (an
    HWC view of CHW memory, as ``add_image`` hands it) one channel at a time, 4× faster than
    NumPy's general transposition."""
    height, width, channels = image.shape
    if image.flags.c_contiguous or image.strides[1:] == (channels, 1):
        return image.reshape(height, width * channels)  # a view: rows may lie apart
    if channels > 1 and image.strides[2] > image.strides[1]:
        rows = np.empty((height, width * channels), np.uint8)
        for channel in range(channels):
            rows[:, channel::channels] = image[:, :, channel]
        return rows
    return np.ascontiguousarray(image).reshape(height, width * channels)


def encode(image: np.ndarray) -> bytes:
    """PNG bytes of one uint8 HWC image with 1, 3 or 4 channels (height and width >= 1)."""
    height, width, channels = image.shape
    rows = interleaved(image)
    kind, level = choose(rows, channels)
    data = deflate.zlib_compress(filtered(rows, channels, kind, None), level)
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOR_TYPES[channels], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
