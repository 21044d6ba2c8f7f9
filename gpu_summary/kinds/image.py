"""``add_image`` and ``add_images``: checked, thumbnails launched on the backend that holds
the pixels (so a device batch never crosses whole, only its uint8 samples), tiled into torch's
grid on the host (``layout="grid"``, and every ``add_image``), PNGs encoded on the writer
thread — or, for a large host batch without ``max_size``, at the call, a few images at a time,
so that it is never copied whole — and the record written from its parts."""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._events.jobs import Job, JobKind, RecordParts
from gpu_summary._events.wire import image_event_parts
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.image import encode_pngs, grid_image, grid_size, image_summary

# A host batch at least this large (uint8 bytes) without max_size is encoded at the call.
ENCODE_AT_CALL = 64 << 20


def _image_parts(
    tags: list[str],
    encoded: Callable[[], tuple[list[bytes], int, int, int]],
    step: int,
    wall_time: float,
) -> RecordParts:
    pngs, height, width, channels = encoded()
    return image_event_parts(tags, pngs, height, width, channels, step, wall_time)


_IMAGE_PARTS = JobKind("image", _image_parts)


def images_job(
    tag: str,
    tags: list[str],
    encoded: Callable[[], tuple[list[bytes], int, int, int]],
    step: int,
    wall_time: float,
    nbytes: int,
) -> Job:
    """Images as ``Summary.Image`` values, one per tag; ``encoded()`` gives (PNGs, height,
    width, channels) on the writer thread. The record goes out from its parts."""
    return Job(_IMAGE_PARTS, (tags, encoded, step, wall_time), nbytes,
               f"image {tag!r} at step {step}")  # fmt: skip


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


def _log_images(
    state: WriterState,
    tag: object,
    images: object,
    step: object,
    dataformats: object,
    max_size: object,
    walltime: object,
    *,
    layout: str | None,
) -> None:
    """SummaryWriter.add_image (``layout=None``: one image, as torch writes it) or add_images
    (``layout``, checked: torch's grid under ``tag``, ``samples`` as ``<tag>/image/<i>``, or
    ``tensor``, the batch as one tensor of PNGs under ``tag``).

    The torch forms (add_image, the grid) scale floats as torch does and repeat gray into RGB;
    ours keep gray and round floats half up, as they always did.
    """
    argument = "img_tensor"
    tag, step, wall = state.begin(tag, step, walltime)
    batch = layout is not None
    formats = arguments.IMAGES_FORMATS if batch else arguments.IMAGE_FORMATS
    if (
        batch
        and isinstance(images, (list, tuple))
        and isinstance(dataformats, str)
        and (dataformats.upper() in arguments.IMAGE_FORMATS)
    ):  # tensorboardX's list of same-sized images, each in a one-image layout
        images, dataformats = _stacked(images), "N" + dataformats.upper()
    shape = arguments.check_dataformats(dataformats, formats, "dataformats")
    if max_size is not None:
        max_size = arguments.check_positive_int(
            max_size, "max_size", "give the longest side in pixels, e.g. max_size=256"
        )
    backend, array = backend_for(images, argument)
    nhwc = arguments.check_images(array, shape, argument, "dataformats")
    n, height, width, channels = nhwc.shape
    out_h, out_w = backend.thumbnail_size(height, width, max_size)
    torch_form = layout in (None, "grid")
    size = grid_size(n, out_h, out_w, channels) if torch_form else (out_h, out_w, channels)
    pngs = 1 if torch_form else n
    what = f"{n} image(s) of {out_h}×{out_w}×{channels}" + (
        f", a grid of {size[0]}×{size[1]}×{size[2]}" if torch_form and n > 1 else ""
    )
    arguments.check_record(  # the PNGs at worst: stored, a filter byte a row
        pngs * size[0] * (size[1] * size[2] + 1), argument, what,
        "pass max_size to shrink them, or log fewer",
    )  # fmt: skip
    if not state.writes_files:
        return  # rank 0's images only
    if layout == "tensor":  # one tensor of PNGs under one tag: the samples of one card
        pending = backend.thumbnails(nhwc, max_size)

        def build() -> summary_pb2.Summary:
            return image_summary(tag, pending.result())

        state.enqueue("image", tag, step, wall, build, nbytes=n * out_h * out_w * channels)
        return
    # Summary.Image values, as torch writes an image (every reader knows them): the grid, or
    # one per sample; the record goes out from its parts, the PNGs never copied.
    tags = [tag] if torch_form else [f"{tag}/image/{i}" for i in range(n)]
    step = state.resolve_step(tag, step)

    def pngs_of(pixels: np.ndarray) -> list[bytes]:
        return encode_pngs(grid_image(pixels)[None] if torch_form else pixels)

    raw = n * out_h * out_w * channels
    if backend is numpy_backend and max_size is None and raw >= ENCODE_AT_CALL:
        # A large host batch: encoded here, a few images at a time from the caller's array
        # (which may change once this returns), so memory grows by the PNGs (and the grid),
        # never by a copy of the batch, let alone a float one.
        to_uint8 = functools.partial(numpy_backend.image_to_uint8, truncate=torch_form)
        if torch_form:
            done = encode_pngs(grid_image(nhwc, to_uint8)[None])
        else:
            done = encode_pngs(nhwc, to_uint8)

        def encoded() -> tuple[list[bytes], int, int, int]:
            return done, *size

        nbytes = sum(len(png) for png in done)
    elif backend is numpy_backend and nhwc.dtype == np.uint8 and (out_h, out_w) == (height, width):
        # Copied in the caller's own memory order (CHW stays CHW: a plain copy, not a slow
        # transposition on the caller's thread); each image is made row-major by its encoder,
        # or the grid tiled, on the writer thread.
        pixels = np.array(nhwc, order="K")

        def encoded() -> tuple[list[bytes], int, int, int]:
            return pngs_of(pixels), *size

        nbytes = raw
    elif backend is numpy_backend and torch_form:
        # Converted and shrunk a few images at a time straight into the grid: the one copy.
        def shrunk(group: np.ndarray) -> np.ndarray:
            return numpy_backend.thumbnails(group, max_size, truncate=True).result()

        grid = grid_image(nhwc, shrunk)

        def encoded() -> tuple[list[bytes], int, int, int]:
            return encode_pngs(grid[None]), *size

        nbytes = grid.nbytes
    else:
        pending = backend.thumbnails(nhwc, max_size, truncate=torch_form)

        def encoded() -> tuple[list[bytes], int, int, int]:
            return pngs_of(pending.result()), *size

        nbytes = raw
    state.events.add(images_job(tag, tags, encoded, step, wall, nbytes))


class ImageMethods:
    """The image methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_image(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log one image, as torch's writer writes it: a ``Summary.Image`` under ``tag``, gray
        repeated into RGB, floats scaled as torch scales them.

        Args:
            tag: series name.
            img_tensor: uint8 (0..255), float (0..1: as float32 × 255, clipped and truncated,
                as torch's; NaN → 0) or bool array, with 1 (gray), 3 (RGB) or 4 (RGBA)
                channels.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            dataformats: ``"CHW"`` (default, as torch's), ``"HWC"`` or ``"HW"`` (gray).
            max_size: a longer side shrunk to this by area averaging on the backend (on the
                host an image of billions of pixels a few rows at a time).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not uint8, float or bool; a masked array. ValueError: dimensions,
                channels or ``dataformats`` that do not match; more than 2 GiB of pixels
                after ``max_size`` (one record's limit: pass a smaller ``max_size``).
        """
        global_step = arguments.either_step(global_step, step)
        _log_images(self._state, tag, img_tensor, global_step, dataformats, max_size, walltime,
                    layout=None)  # fmt: skip

    def add_images(
        self,
        tag: str,
        img_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "NCHW",
        *,
        max_size: int | None = None,
        layout: str = "grid",
        one_tag: bool = False,
        step: int | None = None,
    ) -> None:
        """Log a batch of images at one step: by default one image under ``tag``, the batch
        tiled as torch's writer tiles it.

        ``layout="grid"`` (torch's): row-major on a grid of min(N, 8) columns, no padding,
        empty cells black; gray repeated into RGB and floats scaled as :meth:`add_image`
        (torch's pixels exactly; RGBA, which torch refuses, tiled alike). ``"samples"``:
        sample i a ``Summary.Image`` tagged ``<tag>/image/<i>`` (TensorFlow 1's names; a card
        each; gray stays one channel, floats ``floor(clip(x, 0, 1) * 255 + 0.5)``).
        ``"tensor"``: the samples as one tensor of PNGs under ``tag`` (TensorBoard 2's form:
        one card; ``EventAccumulator.Tensors`` reads it, ``Images`` and tbparse's ``images``
        do not), gray and floats as ``"samples"``.

        Args:
            tag: series name.
            img_tensor: a batch as in :meth:`add_image`, with a leading sample axis.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            dataformats: ``"NCHW"`` (default, as torch's), ``"NHWC"`` or ``"NHW"`` (gray).
            max_size: as in :meth:`add_image`, each sample shrunk before the grid is tiled;
                with it, the batch is never copied whole.
            layout: ``"grid"``, ``"samples"`` or ``"tensor"``, as above.
            one_tag: True is ``layout="tensor"`` (its older spelling).
            walltime: seconds since the epoch; default now.

        Raises:
            As :meth:`add_image`; ValueError: an unknown ``layout``, or ``one_tag=True`` with
                ``layout="samples"``.
        """
        global_step = arguments.either_step(global_step, step)
        layout = arguments.check_image_layout(layout, one_tag)
        _log_images(self._state, tag, img_tensor, global_step, dataformats, max_size, walltime,
                    layout=layout)  # fmt: skip
