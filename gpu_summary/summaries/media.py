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
    """A uint8 HWC image (gray drawn as RGB) with each box (x1, y1, x2, y2, pixels) outlined,
    its label above its top-left corner, then scaled by ``rescale`` (Lanczos)."""
    channels = image.shape[2]
    picture = Image.fromarray(
        np.ascontiguousarray(image[:, :, 0] if channels == 1 else image), _MODES[channels]
    )
    if channels == 1:
        picture = picture.convert("RGB")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        draw.rectangle([x1, y1, x2, y2], outline=BOX_COLOR, width=BOX_WIDTH)
        if labels is not None and labels[k]:
            try:
                left, top, right, bottom = draw.textbbox((x1, y1), labels[k], font=font)
            except UnicodeEncodeError:
                left, top, right, bottom = x1, y1, x1 + 6 * len(labels[k]), y1 + 11
            lift = bottom - top + 2
            draw.rectangle([left, top - lift, right + 2, bottom - lift], fill=BOX_COLOR)
            try:
                draw.text((x1 + 1, y1 - lift), labels[k], fill=LABEL_COLOR, font=font)
            except UnicodeEncodeError:  # Pillow < 10.1's bitmap font: Latin-1 only
                shown = labels[k].encode("latin-1", "replace").decode("latin-1")
                draw.text((x1 + 1, y1 - lift), shown, fill=LABEL_COLOR, font=font)
    if rescale != 1:
        size = (max(1, round(picture.width * rescale)), max(1, round(picture.height * rescale)))
        picture = picture.resize(size, Image.Resampling.LANCZOS)
    return np.asarray(picture)


def render_figure(figure: object) -> np.ndarray:
    """A matplotlib figure's pixels as uint8 HWC RGB (rendered by the Agg backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.array(rgba[:, :, :3])
