"""Box labels (gpu_summary/summaries/media.py draw_boxes) checked on the decoded pixels: every
label drawn whole inside the image, no two over each other, and a label with room above its
box drawn where it always was."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary.summaries.media import draw_boxes

RED = (255, 0, 0)


def _text_mask(pixels: np.ndarray) -> np.ndarray:
    """The label text's pixels: white text is the only thing with green in a picture of red
    boxes on black."""
    return pixels[:, :, 1] > 0


def _label_template(label: str) -> np.ndarray:
    """``label`` as drawn with room all round: the RGB crop of its text's pixels."""
    pixels = draw_boxes(np.zeros((60, 160, 3), np.uint8), np.array([[20, 30, 150, 50]]),
                        [label], 1)  # fmt: skip
    rows, columns = np.nonzero(_text_mask(pixels))
    return pixels[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]


def _find(pixels: np.ndarray, template: np.ndarray) -> list[tuple[int, int]]:
    """Every (row, column) where ``template`` appears exactly in ``pixels``."""
    h, w, _ = template.shape
    if h > pixels.shape[0] or w > pixels.shape[1]:
        return []
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (h, w, 3))[:, :, 0]
    matches = (windows == template).all(axis=(2, 3, 4))
    return [tuple(int(i) for i in at) for at in np.argwhere(matches)]


LAYOUTS = {
    # The demo's: both top quarters boxed, no room above either; the right label would run
    # off the right edge.
    "top_quarters": (64, 64, [[0, 0, 31, 31], [32, 0, 63, 31]], ["brightest", "darkest"]),
    "diagonal_quarters": (64, 64, [[0, 0, 31, 31], [32, 32, 63, 63]], ["brightest", "darkest"]),
    "bottom_right_corner": (40, 64, [[50, 30, 63, 39]], ["a wide label"]),
    "same_corner": (48, 80, [[10, 12, 60, 40], [10, 12, 40, 30]], ["first", "second"]),
    "nested_at_the_top": (50, 70, [[0, 0, 69, 49], [2, 2, 40, 20], [4, 4, 20, 30]],
                          ["outer", "middle", "inside"]),
}  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
def test_labels_are_drawn_whole_inside_the_image_and_apart(layout):
    height, width, boxes, labels = LAYOUTS[layout]
    pixels = draw_boxes(np.zeros((height, width, 3), np.uint8), np.array(boxes), labels, 1)
    assert pixels.shape == (height, width, 3)
    drawn = np.zeros((height, width), bool)
    spans = []
    for label in labels:
        template = _label_template(label)
        found = _find(pixels, template)
        assert len(found) == 1, f"{label!r} is not drawn whole once: {found}"
        (row, column), (h, w) = found[0], template.shape[:2]
        spans.append((row, column, row + h, column + w))
        drawn[row : row + h, column : column + w] = True
    # Every text pixel belongs to one of the labels found whole: nothing cut, nothing stray.
    assert not (_text_mask(pixels) & ~drawn).any()
    for k, (top, left, bottom, right) in enumerate(spans):
        for other in spans[k + 1 :]:
            apart = bottom <= other[0] or other[2] <= top or right <= other[1] or other[3] <= left
            assert apart, f"labels {labels} overlap: {spans}"


def _previous_draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: list[str]) -> np.ndarray:
    """What draw_boxes drew before labels were kept inside the image (one box and its label
    at a time, the label above the box's top-left corner): the default it still draws."""
    picture = Image.fromarray(image)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for (x1, y1, x2, y2), label in zip(boxes.tolist(), labels, strict=True):
        draw.rectangle([x1, y1, x2, y2], outline=RED, width=2)
        left, top, right, bottom = draw.textbbox((x1, y1), label, font=font)
        lift = bottom - top + 2
        draw.rectangle([left, top - lift, right + 2, bottom - lift], fill=RED)
        draw.text((x1 + 1, y1 - lift), label, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


def test_a_label_with_room_above_its_box_is_drawn_as_before():
    image = np.full((80, 120, 3), 90, np.uint8)
    boxes = np.array([[10, 20, 50, 60], [70, 30, 110, 70]])
    labels = ["cat", "a dog"]
    np.testing.assert_array_equal(
        draw_boxes(image, boxes, labels, 1), _previous_draw_boxes(image, boxes, labels)
    )


def test_the_writer_keeps_labels_inside_the_logged_image(tmp_path):
    height, width, boxes, labels = LAYOUTS["top_quarters"]
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_image_with_boxes("boxed", np.zeros((3, height, width)), np.array(boxes), 0,
                                    labels=labels)  # fmt: skip
    (event,) = legacy_reader(tmp_path).Images("boxed")
    pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
    for label in labels:
        assert len(_find(pixels, _label_template(label))) == 1, label
