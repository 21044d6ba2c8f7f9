"""Images: the ``images`` plugin's tensor, several samples per step under one tag.

The value is a DT_STRING tensor ``[width, height, png_1, ..., png_n]`` (width and height as
decimal strings) with plugin name ``images`` and data class BLOB_SEQUENCE, as TensorBoard's own
image summary writes it. PNGs (1 channel gray, 3 RGB, 4 RGBA) are encoded by ``png``. A batch
for one ``Summary.Image`` is tiled by :func:`grid_image`, as torch's ``make_grid`` tiles it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

import numpy as np

from gpu_summary._sync import WorkerPool
from gpu_summary.proto import summary_pb2, tensor_pb2, types_pb2
from gpu_summary.summaries import png

PLUGIN_NAME = "images"


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes of one uint8 HWC image with 1, 3 or 4 channels (``png.encode``)."""
    return png.encode(image)


_pool: WorkerPool | None = None
_pool_lock = threading.Lock()


def _encoder_pool() -> WorkerPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = WorkerPool(min(4, os.cpu_count() or 1))
        return _pool


def _forget_pool_after_fork() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # the parent's threads do not exist here


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def encode_pngs(
    images: np.ndarray, to_uint8: Callable[[np.ndarray], np.ndarray] | None = None
) -> list[bytes]:
    """PNG bytes of each NHWC image: uint8, or ``to_uint8(images[i : i + 1])[0]`` of each
    (one image converted at a time, never the batch). libdeflate runs without the GIL, so a batch is
    encoded on a few threads at once; at interpreter exit, when no new threads may start,
    serially."""

    def one(index: int) -> bytes:
        image = images[index] if to_uint8 is None else to_uint8(images[index : index + 1])[0]
        return encode_png(image)

    if len(images) > 1:
        try:
            tasks = [_encoder_pool().submit(one, index) for index in range(len(images))]
        except RuntimeError:  # interpreter shutdown: no new threads
            pass
        else:
            return [task.result() for task in tasks]
    return [one(index) for index in range(len(images))]


# torch's make_grid (torch/utils/tensorboard/_utils.py): at most 8 columns, no padding.
GRID_COLUMNS = 8
# Values converted at a time when a grid is tiled from unconverted images.
_GRID_GROUP = 1 << 21


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of torch's grid of ``n`` images: min(n, 8) columns, rows enough."""
    columns = min(n, GRID_COLUMNS)
    return -(-n // columns), columns


def grid_size(n: int, height: int, width: int, channels: int) -> tuple[int, int, int]:
    """(height, width, channels) of the grid of ``n`` images: gray becomes RGB, as torch's."""
    rows, columns = grid_shape(n)
    return rows * height, columns * width, 3 if channels == 1 else channels


def grid_image(
    images: np.ndarray, to_uint8: Callable[[np.ndarray], np.ndarray] | None = None
) -> np.ndarray:
    """NHWC ``images`` tiled as torch's ``add_images`` tiles a batch: row-major on
    :func:`grid_shape`'s grid, no padding, the cells after the last image black (zero), gray
    repeated into RGB; RGBA (which torch refuses) tiled alike, the empty cells transparent.

    ``images`` are uint8, or made uint8 NHWC by ``to_uint8`` (which may shrink them, all
    alike) a few images at a time straight into the grid, never the batch at once. One RGB or
    RGBA image is its own grid: returned as it is (a view), or as ``to_uint8`` gives it.
    """
    n, height, width, channels = images.shape
    if n == 1 and channels != 1:
        return (images if to_uint8 is None else to_uint8(images))[0]
    _, columns = grid_shape(n)
    group = n if to_uint8 is None else max(1, _GRID_GROUP // (height * width * channels))
    grid = None
    for start in range(0, n, group):
        pixels = images[start : start + group]
        if to_uint8 is not None:
            pixels = to_uint8(pixels)
        _, height, width, _ = pixels.shape
        if grid is None:
            grid = png.blank(*grid_size(n, height, width, channels))
            rows, _ = grid_shape(n)
            grid[(rows - 1) * height :, (n - (rows - 1) * columns) * width :] = 0  # empty cells
        for k, image in enumerate(pixels, start):
            row, column = divmod(k, columns)
            cell = grid[row * height : (row + 1) * height, column * width : (column + 1) * width]
            if channels > 1 and image.strides[2] > image.strides[1]:
                for channel in range(channels):  # planar (CHW memory): 4x faster by channel
                    cell[:, :, channel] = image[:, :, channel]
            else:
                cell[...] = image  # a gray image broadcast into R, G and B
    return grid


def image_metadata() -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata(data_class=summary_pb2.DATA_CLASS_BLOB_SEQUENCE)
    metadata.plugin_data.plugin_name = PLUGIN_NAME
    return metadata


def image_summary(tag: str, images: np.ndarray) -> summary_pb2.Summary:
    """A Summary holding a batch of uint8 NHWC images (N >= 1) as PNGs."""
    _, height, width, _ = images.shape
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    tensor.tensor_shape.dim.add(size=images.shape[0] + 2)
    tensor.string_val.append(str(width).encode())
    tensor.string_val.append(str(height).encode())
    tensor.string_val.extend(encode_pngs(images))
    value = summary_pb2.Summary.Value(tag=tag, metadata=image_metadata())
    value.tensor.CopyFrom(tensor)
    return summary_pb2.Summary(value=[value])
