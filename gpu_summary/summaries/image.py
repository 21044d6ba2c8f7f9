"""Images: the ``images`` plugin's tensor, several samples per step under one tag.

The value is a DT_STRING tensor ``[width, height, png_1, ..., png_n]`` (width and height as
decimal strings) with plugin name ``images`` and data class BLOB_SEQUENCE, as TensorBoard's own
image summary writes it. PNGs (1 channel gray, 3 RGB, 4 RGBA) are encoded by ``png``.
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
