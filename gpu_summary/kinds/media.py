"""``add_video``, ``add_image_with_boxes`` and ``add_figure``: checked at the call; pixels
converted on the backend that holds them (frames shrunk there by the thumbnail kernel with
``max_size``), copied back asynchronously, encoded (GIF, PNG) on the writer thread."""

from __future__ import annotations

import sys
import warnings

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import arguments
from gpu_summary._writer.state import WriterState
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries import media
from gpu_summary.summaries.image import encode_png, grid_image

MAX_SIDE = 1 << 15  # pixels a side of a drawn image after rescale
MAX_BOXES = 1 << 20  # boxes drawn on one image (each converted, checked and drawn whole)


def _max_size(max_size: object) -> int | None:
    if max_size is None:
        return None
    return arguments.check_positive_int(
        max_size, "max_size", "give the longest side in pixels, e.g. max_size=256"
    )


def _check_labels(labels: object, boxes: int) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
        raise TypeError(f"labels must be a list of str, one per box, got {labels!r}")
    if len(labels) != boxes:
        raise ValueError(f"labels has {len(labels)} entries for {boxes} boxes; give one label "
                         "per box (an empty string draws none)")  # fmt: skip
    return list(labels)


def check_boxes(boxes: np.ndarray, height: int, width: int, argument: str = "box_tensor") -> None:
    """Raise ValueError for a box that is not finite, has x2 < x1 or y2 < y1, or lies wholly
    outside the ``height`` × ``width`` image (a box partly outside is drawn clipped)."""
    if not np.isfinite(boxes).all():
        raise ValueError(f"{argument} holds NaN or ±Inf; every box needs 4 finite numbers")
    x1, y1, x2, y2 = boxes.T
    wrong = (x2 < x1) | (y2 < y1)
    if wrong.any():
        k = int(np.argmax(wrong))
        raise ValueError(f"{argument}[{k}] = {boxes[k].tolist()} is not (x1, y1, x2, y2) with "
                         "x1 <= x2 and y1 <= y2")  # fmt: skip
    outside = (x2 < 0) | (y2 < 0) | (x1 > width) | (y1 > height)
    if outside.any():
        k = int(np.argmax(outside))
        raise ValueError(f"{argument}[{k}] = {boxes[k].tolist()} lies outside the "
                         f"{width}×{height} image; boxes are pixel coordinates")  # fmt: skip


def _is_figure(figure: object) -> bool:
    module = sys.modules.get("matplotlib.figure")
    return module is not None and isinstance(figure, module.Figure)


class MediaMethods:
    """The video, boxes and figure methods of :class:`gpu_summary.SummaryWriter`."""

    _state: WriterState

    def add_video(
        self,
        tag: str,
        vid_tensor: object,
        global_step: int | None = None,
        fps: float = 4,
        walltime: float | None = None,
        dataformats: str = "NTCHW",
        *,
        max_size: int | None = None,
        step: int | None = None,
    ) -> None:
        """Log videos as one animated GIF (the Images dashboard plays it).

        Args:
            tag: series name.
            vid_tensor: N videos of T frames: uint8 (0..255), float (0..1, clipped; NaN → 0)
                or bool, 1, 3 or 4 channels. Several videos are tiled on a near-square grid
                (ceil(sqrt(N)) columns), frame by frame.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            fps: frames per second (GIF keeps delays in 1/100 s).
            walltime: seconds since the epoch; default now.
            dataformats: ``"NTCHW"`` (default, as torch's), ``"NTHWC"``, ``"TCHW"``, ``"THWC"``.
            max_size: each frame's longer side shrunk to this on the tensor's backend (the
                thumbnail kernel on a device: only the small frames are copied back).

        Needs no moviepy: the GIF is written by Pillow (256 colours a frame).

        Raises:
            TypeError/ValueError: wrong dtype, dimensions, channels; ``fps`` not > 0; frames
                of more than 2 GiB (after ``max_size``: one record's limit).
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        fps = arguments.check_positive_number(fps, "fps", "fps=4")
        layout = arguments.check_dataformats(dataformats, arguments.VIDEO_FORMATS, "dataformats")
        max_size = _max_size(max_size)
        backend, array = backend_for(vid_tensor, "vid_tensor")
        shape = tuple(array.shape)
        frames = arguments.check_images(array, layout, "vid_tensor", "dataformats")
        videos = shape[layout.index("N")] if "N" in layout else 1
        out_h, out_w = backend.thumbnail_size(frames.shape[1], frames.shape[2], max_size)
        arguments.check_record(
            frames.shape[0] * out_h * out_w * frames.shape[3], "vid_tensor",
            f"{frames.shape[0]} frame(s) of {out_h}×{out_w}×{frames.shape[3]}",
            "pass max_size to shrink them, or log fewer or shorter videos",
        )  # fmt: skip
        if not state.writes_files:
            return
        pending = backend.thumbnails(frames, max_size)

        def build() -> summary_pb2.Summary:
            return media.video_summary(tag, media.tile_videos(pending.result(), videos), fps)

        nbytes = frames.shape[0] * out_h * out_w * frames.shape[3]
        state.enqueue("video", tag, step, wall, build, nbytes=nbytes)

    def add_image_with_boxes(
        self,
        tag: str,
        img_tensor: object,
        box_tensor: object,
        global_step: int | None = None,
        walltime: float | None = None,
        rescale: float = 1,
        dataformats: str = "CHW",
        labels: list[str] | None = None,
        *,
        step: int | None = None,
    ) -> None:
        """Log an image with boxes (and labels) drawn on it.

        Args:
            tag: series name.
            img_tensor: one image, as in :meth:`add_image`.
            box_tensor: N×4 boxes (x1, y1, x2, y2) in pixels, drawn red, 2 px wide; a box
                partly outside the image is clipped, one wholly outside is an error.
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            walltime: seconds since the epoch; default now.
            rescale: the drawn image scaled by this factor (torch's). A str here is taken as
                ``dataformats`` (tensorboardX's position of it).
            dataformats: ``"CHW"`` (default), ``"HWC"`` or ``"HW"``.
            labels: one str per box (or one str for one box), drawn above its top-left
                corner; where that leaves the image or covers another label, inside or
                below the box instead, shifted left to end inside the image.

        Raises:
            ValueError: boxes not N×4 (at most 2**20 of them), not finite, x2 < x1 or y2 < y1,
                wholly outside; labels not one per box. TypeError: labels not str. (Device
                boxes are checked on the writer thread: a bad one skips the image with a
                RuntimeWarning.)
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        if isinstance(rescale, str):  # tensorboardX's position of dataformats
            rescale, dataformats = 1, rescale
        rescale = arguments.check_positive_number(rescale, "rescale", "rescale=1")
        layout = arguments.check_dataformats(dataformats, arguments.IMAGE_FORMATS, "dataformats")
        backend, array = backend_for(img_tensor, "img_tensor")
        nhwc = arguments.check_images(array, layout, "img_tensor", "dataformats")
        _, height, width, _ = nhwc.shape
        if max(height, width) * rescale > MAX_SIDE:
            raise ValueError(f"rescale={rescale} makes the {width}×{height} image wider than "
                             f"{MAX_SIDE} pixels; give a smaller rescale")  # fmt: skip
        if box_tensor is None:
            box_tensor = np.zeros((0, 4))
        box_backend, boxes = backend_for(box_tensor, "box_tensor")
        if boxes.ndim == 1 and boxes.shape[0] == 4:
            boxes = boxes[None]
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"box_tensor has shape {tuple(boxes.shape)}; give N boxes as an "
                             "N×4 array of (x1, y1, x2, y2)")  # fmt: skip
        count = boxes.shape[0]
        if count > MAX_BOXES:
            raise ValueError(f"box_tensor has {count:,} boxes, more than the {MAX_BOXES:,} one "
                             "image may show; log fewer")  # fmt: skip
        names = _check_labels(labels, count)
        on_host = box_backend is numpy_backend
        if on_host:
            boxes = np.asarray(boxes, np.float64)
            check_boxes(boxes, height, width)
        if not state.writes_files:
            return
        pixels = backend.thumbnails(nhwc, None)
        pending_boxes = None if on_host else box_backend.to_host(boxes)

        def build() -> summary_pb2.Summary | None:
            found = boxes if on_host else np.asarray(pending_boxes.result(), np.float64)
            if not on_host:
                try:
                    check_boxes(found, height, width)
                except ValueError as exc:
                    warnings.warn(f"add_image_with_boxes({tag!r}) not written: {exc}",
                                  RuntimeWarning, stacklevel=1)  # fmt: skip
                    return None
            image = media.draw_boxes(pixels.result()[0], found, names, rescale)
            h, w, c = image.shape
            value = media.image_value(tag, encode_png(image), h, w, c)
            return summary_pb2.Summary(value=[value])

        state.enqueue("image", tag, step, wall, build, nbytes=height * width * 4)

    def add_figure(
        self,
        tag: str,
        figure: object,
        global_step: int | None = None,
        close: bool = True,
        walltime: float | None = None,
        *,
        layout: str = "grid",
        step: int | None = None,
    ) -> None:
        """Log a matplotlib figure (or a list of them) as an image.

        Args:
            tag: series name.
            figure: a ``matplotlib.figure.Figure`` or a list of them; rendered by Agg at the
                call (matplotlib is imported only by the caller). A list is one image under
                ``tag``, the figures tiled as :meth:`add_images` tiles a batch (torch's).
            global_step: global step; None: 0 (with ``count_steps``, this tag's last + 1).
            close: close the figures once rendered (``pyplot.close``).
            layout: ``"grid"`` (torch's), or ``"samples"``: a list's figure i an image of its
                own, ``<tag>/image/<i>`` (figures of different sizes need it).
            walltime: seconds since the epoch; default now.

        Raises:
            TypeError: not a Figure. ValueError: an empty list; a grid of figures of
                different sizes; an unknown ``layout``.
        """
        state = self._state
        tag, step, wall = state.begin(tag, arguments.either_step(global_step, step), walltime)
        if not isinstance(close, (bool, np.bool_)):
            raise TypeError(f"close must be True or False, got {close!r}")
        layout = arguments.check_image_layout(layout, layouts=("grid", "samples"))
        several = isinstance(figure, (list, tuple))
        figures = list(figure) if several else [figure]
        if not figures:
            raise ValueError("figure is an empty list; give a matplotlib Figure or a list of them")
        for k, one in enumerate(figures):
            if not _is_figure(one):
                where = f"figure[{k}]" if several else "figure"
                raise TypeError(f"{where} must be a matplotlib.figure.Figure, got "
                                f"{type(one).__module__}.{type(one).__qualname__}")  # fmt: skip
        pictures = [media.render_figure(one) for one in figures]
        if close and "matplotlib.pyplot" in sys.modules:
            pyplot = sys.modules["matplotlib.pyplot"]
            for one in figures:
                pyplot.close(one)
        if several and layout == "grid":
            sizes = sorted({p.shape[:2] for p in pictures})
            if len(sizes) > 1:
                raise ValueError(
                    f"figure's figures differ in size (height, width: {sizes}); a grid needs one "
                    "size: draw them alike, or pass layout='samples' for an image each"
                )
            pictures, several = [grid_image(np.stack(pictures))], False
        if not state.writes_files:
            return
        tags = [f"{tag}/image/{i}" for i in range(len(figures))] if several else [tag]

        def build() -> summary_pb2.Summary:
            values = []
            for name, picture in zip(tags, pictures, strict=True):
                h, w, c = picture.shape
                values.append(media.image_value(name, encode_png(picture), h, w, c))
            return summary_pb2.Summary(value=values)

        state.enqueue("figure", tag, step, wall, build, nbytes=sum(p.nbytes for p in pictures))
