"""``add_image`` and ``add_images``: checked, thumbnails launched on the backend that holds
the pixels (so a device batch never crosses whole), PNGs encoded on the writer thread — or,
for a large host batch without ``max_size``, at the call, image by image, so that it is never
copied whole — and the record written from its parts."""

from __future__ import annotations

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._writer import jobs
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.image import encode_pngs, image_summary

# A host batch at least this large (uint8 bytes) without max_size is encoded at the call.
ENCODE_AT_CALL = 64 << 20


def _stacked(images: list | tuple) -> object:
    """A list of host images as one batch (tensorboardX's ``add_images`` of a list)."""
    if not images:
        raise ValueError("img_tensor is an empty list; give at least one image")
    arrays = []
    for k, image in enumerate(images):
        backend, array = backend_for(image, f"img_tensor[{k}]")
        if backend is not numpy_backend:
            raise TypeError("img_tensor is a list of device tensors; stack them into one batch "
                            "first (e.g. torch.stack(images))")  # fmt: skip
        arrays.append(array)
    if len({a.shape for a in arrays}) != 1:
        shapes = sorted({a.shape for a in arrays})
        raise ValueError(f"img_tensor's images differ in shape ({shapes}); a batch needs one size")
    return np.stack(arrays)


def log_images(
    state: WriterState,
    tag: object,
    images: object,
    step: object,
    dataformats: object,
    max_size: object,
    walltime: object,
    *,
    batch: bool,
    one_tag: bool = False,
) -> None:
    """SummaryWriter.add_image (``batch=False``) or add_images (``batch=True``; ``one_tag``:
    the batch as one tensor of PNGs under ``tag``)."""
    argument = "img_tensor"
    tag, step, wall = state.begin(tag, step, walltime)
    formats = arguments.IMAGES_FORMATS if batch else arguments.IMAGE_FORMATS
    if (
        batch
        and isinstance(images, (list, tuple))
        and isinstance(dataformats, str)
        and (dataformats.upper() in arguments.IMAGE_FORMATS)
    ):  # tensorboardX's list of same-sized images, each in a one-image layout
        images, dataformats = _stacked(images), "N" + dataformats.upper()
    layout = arguments.check_dataformats(dataformats, formats, "dataformats")
    if max_size is not None:
        max_size = arguments.check_positive_int(
            max_size, "max_size", "give the longest side in pixels, e.g. max_size=256"
        )
    backend, array = backend_for(images, argument)
    nhwc = arguments.check_images(array, layout, argument, "dataformats")
    n, height, width, channels = nhwc.shape
    out_h, out_w = backend.thumbnail_size(height, width, max_size)
    arguments.check_record(  # the PNGs at worst: stored, a filter byte a row
        n * out_h * (out_w * channels + 1), argument,
        f"{n} image(s) of {out_h}×{out_w}×{channels}", "pass max_size to shrink them, or log fewer",
    )  # fmt: skip
    if not state.writes_files:
        return  # rank 0's images only
    if batch and one_tag:  # one tensor of PNGs under one tag: the samples of one card
        pending = backend.thumbnails(nhwc, max_size)

        def build() -> summary_pb2.Summary:
            return image_summary(tag, pending.result())

        state.enqueue("image", tag, step, wall, build, nbytes=n * out_h * out_w * channels)
        return
    # Summary.Image values, as torch writes an image (every reader knows them), one per
    # sample for a batch; the record goes out from its parts, the PNGs never copied.
    tags = [f"{tag}/image/{i}" for i in range(n)] if batch else [tag]
    step = state.resolve_step(tag, step)
    raw = n * out_h * out_w * channels
    if backend is numpy_backend and max_size is None and raw >= ENCODE_AT_CALL:
        # A large host batch: encoded here, image by image from the caller's array (which
        # may change once this returns), so memory grows by the PNGs, never by a copy.
        pngs = encode_pngs(nhwc, numpy_backend.image_to_uint8)

        def encoded() -> tuple[list[bytes], int, int, int]:
            return pngs, out_h, out_w, channels

        nbytes = sum(len(png) for png in pngs)
    elif backend is numpy_backend and nhwc.dtype == np.uint8 and (out_h, out_w) == (height, width):
        # Copied in the caller's own memory order (CHW stays CHW: a plain copy, not a slow
        # transposition on the caller's thread); each image is made row-major by its encoder.
        pixels = np.array(nhwc, order="K")

        def encoded() -> tuple[list[bytes], int, int, int]:
            return encode_pngs(pixels), out_h, out_w, channels

        nbytes = raw
    else:
        pending = backend.thumbnails(nhwc, max_size)

        def encoded() -> tuple[list[bytes], int, int, int]:
            return encode_pngs(pending.result()), out_h, out_w, channels

        nbytes = raw
    state.events.add(jobs.images(tag, tags, encoded, step, wall, nbytes))
