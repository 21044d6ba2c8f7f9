"""``add_image`` and ``add_images``: checked, thumbnails launched on the backend that holds
the pixels (so a device batch never crosses whole), PNGs encoded on the writer thread."""

from __future__ import annotations

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.image import image_summary, legacy_image_summary


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
    layout = arguments.check_dataformats(dataformats, formats, "dataformats")
    if max_size is not None:
        max_size = arguments.check_positive_int(
            max_size, "max_size", "give the longest side in pixels, e.g. max_size=256"
        )
    backend, array = backend_for(images, argument)
    nhwc = arguments.check_images(array, layout, argument, "dataformats")
    n, height, width, channels = nhwc.shape
    if not state.writes_files:
        return  # rank 0's images only
    pending = backend.thumbnails(nhwc, max_size)
    out_h, out_w = backend.thumbnail_size(height, width, max_size)
    if batch and one_tag:  # one tensor of PNGs under one tag: the samples of one card

        def build() -> summary_pb2.Summary:
            return image_summary(tag, pending.result())
    else:  # Summary.Image, as torch writes an image: every reader knows it

        def build() -> summary_pb2.Summary:
            return legacy_image_summary(tag, pending.result(), batch)

    state.enqueue("image", tag, step, wall, build, nbytes=n * out_h * out_w * channels)
