"""The PNG encoder (``summaries.png``): lossless for every channel count and size, stored when
the pixels do not compress, within 10% of Pillow's default size on smooth images, and read by
Pillow's decoder and zlib's own checks (every chunk's CRC, the stream's Adler-32)."""

from __future__ import annotations

import io
import os
import struct
import zlib

import deflate
import numpy as np
import pytest
from PIL import Image

from gpu_summary.summaries import png


def _smooth(height, width, channels=3):
    image = (np.sin(np.linspace(0, 20, height))[:, None]
             * np.cos(np.linspace(0, 9, width))[None, :] * 127 + 128)  # fmt: skip
    return np.repeat(image[:, :, None], channels, axis=2).astype(np.uint8)


def _photo(size=600):
    """A real photograph (matplotlib's sample data) resized, or a textured stand-in."""
    try:
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
        picture = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
        return np.asarray(picture)
    except (ImportError, OSError):
        rng = np.random.default_rng(3)
        base = _smooth(size, size).astype(np.int16) + rng.integers(-12, 12, (size, size, 3))
        return np.clip(base, 0, 255).astype(np.uint8)


def _decode(data: bytes) -> np.ndarray:
    picture = Image.open(io.BytesIO(data))
    picture.load()
    pixels = np.asarray(picture)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _chunks(data: bytes):
    assert data[:8] == png.SIGNATURE
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body), kind
        yield kind, body
        offset += 12 + length


RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "image",
    [
        RNG.integers(0, 256, (300, 200, 3), dtype=np.uint8),
        _smooth(257, 311),
        _smooth(64, 80, 1),
        np.dstack([_smooth(90, 70), RNG.integers(0, 256, (90, 70, 1), dtype=np.uint8)]),
        _photo(),
        np.zeros((1, 1, 3), np.uint8),
        RNG.integers(0, 256, (1, 500, 4), dtype=np.uint8),
        RNG.integers(0, 256, (500, 1, 1), dtype=np.uint8),
        np.full((3, 3, 1), 255, np.uint8),
        _smooth(40, 30).transpose(1, 0, 2),  # a strided view
    ],
    ids=[
        "random",
        "smooth",
        "gray",
        "rgba",
        "photo",
        "1x1",
        "one row",
        "one column",
        "white",
        "strided",
    ],
)
def test_lossless_and_well_formed(image):
    data = png.encode(image)
    np.testing.assert_array_equal(_decode(data), image)
    kinds = [kind for kind, _ in _chunks(data)]
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    header = dict(_chunks(data))[b"IHDR"]
    width, height, depth, color, *_ = struct.unpack(">IIBBBBB", header)
    assert (height, width, depth) == (*image.shape[:2], 8)
    assert color == {1: 0, 3: 2, 4: 6}[image.shape[2]]
    raw = zlib.decompress(dict(_chunks(data))[b"IDAT"])  # checks the Adler-32 too
    assert len(raw) == image.shape[0] * (image.shape[1] * image.shape[2] + 1)


def test_random_pixels_are_stored():
    image = RNG.integers(0, 256, (400, 400, 3), dtype=np.uint8)
    assert png.choose(image.reshape(400, -1), 3) == (png.NONE, 0)
    assert len(png.encode(image)) <= image.size + 400 + 1000  # the filter bytes, block headers


@pytest.mark.parametrize("channels", [1, 3])
def test_smooth_images_within_ten_percent_of_pillows_default(channels):
    image = _smooth(700, 900, channels)
    buffer = io.BytesIO()
    Image.fromarray(image[:, :, 0] if channels == 1 else image).save(buffer, format="PNG")
    ours = len(png.encode(image))
    assert ours <= 1.10 * len(buffer.getvalue())


@pytest.mark.parametrize(("height", "width"), [(700, 900), (2000, 2000)])
def test_smooth_images_take_the_slower_level_only_where_it_pays(height, width):
    rows = _smooth(height, width).reshape(height, -1)
    kind, level = png.choose(rows, 3)
    lines = png.filtered(rows, 3, kind, None)
    fast, slow = (len(deflate.zlib_compress(lines, n)) for n in (png.LEVEL, png.SMOOTH_LEVEL))
    assert level == (png.SMOOTH_LEVEL if slow < png.SMOOTH_PAYS * fast else png.LEVEL)
    assert level == (png.SMOOTH_LEVEL if height == 2000 else png.LEVEL)  # 21% smaller; 6%


def test_tiles_repeated_along_wide_rows_are_sampled_a_few_rows_deep():
    tile = _smooth(512, 512)
    rows = np.tile(tile, (2, 8, 1)).reshape(1024, -1)  # a grid of one image, rows 12,288 wide
    kind, _ = png.choose(rows, 3)
    sizes = {k: len(deflate.zlib_compress(png.filtered(rows, 3, k, None), 1)) for k in (0, 1, 2)}
    assert sizes[kind] == min(sizes.values())


def test_up_filter_of_bands_sees_the_row_above():
    image = _smooth(64, 48)
    rows = image.reshape(64, -1)
    whole = png.filtered(rows, 3, png.UP, None)
    band = png.filtered(rows[20:30], 3, png.UP, rows[19])
    np.testing.assert_array_equal(band, whole[20:30])


def test_planar_images_are_interleaved_exactly():
    chw = RNG.integers(0, 256, (3, 50, 70), dtype=np.uint8)
    hwc = chw.transpose(1, 2, 0)  # an HWC view of CHW memory, as add_image(CHW) hands it
    np.testing.assert_array_equal(png.interleaved(hwc), np.ascontiguousarray(hwc).reshape(50, -1))
    np.testing.assert_array_equal(_decode(png.encode(hwc)), hwc)
    rgba = RNG.integers(0, 256, (4, 9, 11), dtype=np.uint8).transpose(1, 2, 0)[::2]
    np.testing.assert_array_equal(_decode(png.encode(rgba)), rgba)


def test_a_blank_image_is_encoded_from_its_own_buffer_and_no_other_is_written_to():
    image = png.blank(40, 30, 3)
    image[...] = _smooth(40, 30) // 64 * 64  # flat bands: None compresses them best
    rows = png.interleaved(image)
    assert png.filtered(rows, 3, png.NONE, None) is rows.base  # the buffer itself: no copy
    data = png.encode(image)
    assert data == png.encode(np.ascontiguousarray(image))
    np.testing.assert_array_equal(_decode(data), image)
    theirs = np.full((40, 91), 77, np.uint8)  # a caller's array whose rows lie one byte apart
    view = theirs[:, 1:].reshape(40, 30, 3)
    view[...] = image
    assert png.encode(view) == data
    assert (theirs[:, 0] == 77).all()
