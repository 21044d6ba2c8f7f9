"""Pictures made from data: videos as animated GIFs, images with boxes drawn on them, and
matplotlib figures rendered to pixels. Each ends as a ``Summary.Image`` (TensorBoard's Images
dashboard shows GIFs animated)."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gpu_summary.proto import summary_pb2

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
BOX_COLOR = (255, 0, 0)
BOX_WIDTH = 2
LABEL_COLOR = (255, 255, 255)


def grid_shape(n: int) -> tuple[int, int]:
    """(rows, columns) of the near-square grid ``n`` videos are tiled on: ceil(sqrt(n))
    columns, as many rows as needed."""
    columns = math.isqrt(n - 1) + 1 if n > 1 else 1
    return -(-n // columns), columns


def tile_videos(frames: np.ndarray, videos: int) -> np.ndarray:
    """(videos × T, h, w, c) uint8 frames (video-major) as T frames of one grid
    (T, rows × h, columns × w, c), empty cells black."""
    total, h, w, c = frames.shape
    steps = total // videos
    rows, columns = grid_shape(videos)
    grid = np.zeros((rows * columns, steps, h, w, c), np.uint8)
    grid[:videos] = frames.reshape(videos, steps, h, w, c)
    grid = grid.reshape(rows, columns, steps, h, w, c).transpose(2, 0, 3, 1, 4, 5)
    return grid.reshape(steps, rows * h, columns * w, c)


def gif_bytes(frames: np.ndarray, fps: float) -> bytes:
    """An animated GIF (looping) of (T, H, W, C) uint8 frames at ``fps`` frames a second.
    GIF stores 256 colours a frame (Pillow's adaptive palette) and delays in 1/100 s."""
    channels = frames.shape[3]
    images = [
        Image.fromarray(np.ascontiguousarray(f[:, :, 0] if channels == 1 else f), _MODES[channels])
        for f in frames
    ]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:],
                   duration=max(10, round(1000 / fps)), loop=0)  # fmt: skip
    return buffer.getvalue()


def image_value(tag: str, encoded: bytes, height: int, width: int, channels: int):  # noqa: ANN201
    """A ``Summary.Value`` holding an encoded image."""
    value = summary_pb2.Summary.Value(tag=tag)
    value.image.height = height
    value.image.width = width
    value.image.colorspace = channels
    value.image.encoded_image_string = encoded
    return value


def video_summary(tag: str, frames: np.ndarray, fps: float) -> summary_pb2.Summary:
    """A Summary of one GIF from (T, H, W, C) uint8 frames."""
    _, height, width, channels = frames.shape
    value = image_value(tag, gif_bytes(frames, fps), height, width, channels)
    return summary_pb2.Summary(value=[value])


def draw_boxes(
    image: np.ndarray, boxes: np.ndarray, labels: list[str] | None, rescale: float
) -> np.ndarray:
    """A uint8 HWC image (gray drawn as RGB) with each box (x1, y1, x2, y2, pixels) outlined and
    its label on a red tab, then scaled by ``rescale`` (Lanczos).

    A label sits above its box's top-left corner; where that leaves the image or covers a label
    already drawn, it moves inside the box's top, below the box, inside its bottom, then a few
    rows further down or up (:func:`label_tops`). Each is shifted left as far as needed to end
    inside the image. Only a label wider or taller than the image, or one with no free place
    near its box, is drawn over the edge or over another label.
    """
    channels = image.shape[2]
    picture = Image.fromarray(
        np.ascontiguousarray(image[:, :, 0] if channels == 1 else image), _MODES[channels]
    )
    if channels == 1:
        picture = picture.convert("RGB")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    taken = np.zeros((picture.height, picture.width), bool)  # pixels under a drawn label
    for box in boxes.tolist():
        draw.rectangle(box, outline=BOX_COLOR, width=BOX_WIDTH)
    # The labels after every box: no later box's outline crosses a label's text.
    for k, (x1, y1, _, y2) in enumerate(boxes.tolist()):
        if labels is None or not labels[k]:
            continue
        shown = labels[k]
        try:
            left, top, right, bottom = draw.textbbox((0, 0), shown, font=font)
        except UnicodeEncodeError:  # Pillow < 10.1's bitmap font: Latin-1 only
            shown = shown.encode("latin-1", "replace").decode("latin-1")
            left, top, right, bottom = draw.textbbox((0, 0), shown, font=font)
        # The tab: the text's box and a pixel each side, its rows those of the text.
        width, height = right - left + 2, bottom - top
        tab_left = max(0, min(x1 + left, picture.width - 1 - width))
        tab_top = _free_top(taken, tab_left, width, height, label_tops(y1, y2, height))
        taken[_covered(tab_top, height), _covered(tab_left, width)] = True
        draw.rectangle([tab_left, tab_top, tab_left + width, tab_top + height], fill=BOX_COLOR)
        draw.text((tab_left + 1 - left, tab_top - top), shown, fill=LABEL_COLOR, font=font)
    if rescale != 1:
        size = (max(1, round(picture.width * rescale)), max(1, round(picture.height * rescale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(picture)


def label_tops(y1: float, y2: float, height: int) -> list[float]:
    """The rows a box's label tab of ``height`` pixels may start at, best first: above the
    box's top edge (this writer's place for it, its bottom row on the edge), inside its top,
    below it, inside its bottom (where torch's writer and tensorboardX put every label), then
    stacked further down from inside its top and further up from above it."""
    step = height + 1
    above = y1 - height
    further = [y1 + k * step for k in (1, 2, 3)] + [above - k * step for k in (1, 2, 3)]
    return [above, y1, y2 + 1, y2 - height, *further]


def _covered(start: float, length: float) -> slice:
    """The pixel rows (or columns) a tab from ``start`` spanning ``length`` pixels touches."""
    return slice(max(0, math.floor(start)), math.ceil(start + length) + 1)


def _free_top(
    taken: np.ndarray, left: float, width: float, height: float, tops: list[float]
) -> float:
    """The first of ``tops`` where a tab lies wholly inside the image and covers no pixel in
    ``taken``; else the first wholly inside; else the default clamped into the image."""
    rows = taken.shape[0]
    inside = [t for t in tops if 0 <= t and t + height <= rows - 1]
    for top in inside:
        if not taken[_covered(top, height), _covered(left, width)].any():
            return top
    if inside:
        return inside[0]
    return max(0, min(tops[0], rows - 1 - height))


def render_figure(figure: object) -> np.ndarray:
    """A matplotlib figure's pixels as uint8 HWC RGB (rendered by the Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.array(rgba[:, :, :3])
