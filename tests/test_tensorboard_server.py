"""A live TensorBoard server (both loaders) serves what gpu_summary wrote, over its HTTP API."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs
from support.tb_server import get as _get
from support.tb_server import poll_json as _poll_json
from support.tb_server import tensorboard


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_server_shows_every_kind(tmp_path, load_fast):
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (2, 6, 9, 3), dtype=np.uint8)
    values = rng.standard_normal(10_000)
    with gs.SummaryWriter(str(run)) as writer:
        for step in range(3):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
        writer.add_histogram("weights", values, 0)
        writer.add_histogram("empty", np.array([np.nan, np.inf]), 0)
        writer.add_images("samples", image, 0, dataformats="NHWC", one_tag=True)
        writer.add_images("batch", image, 0, dataformats="NHWC")  # batch/image/0, batch/image/1
        writer.add_image("one", image[0], 0, dataformats="HWC")
        writer.add_text("notes", "hello *world*", 0)

    with tensorboard(tmp_path, load_fast) as base:
        scalars = _poll_json(
            base, "/data/plugin/scalars/scalars", lambda d: len(d) == 3, run="run", tag="loss"
        )
        assert [(s, v) for _, s, v in scalars] == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]

        (histogram,) = _poll_json(
            base, "/data/plugin/histograms/histograms", lambda d: d, run="run", tag="weights"
        )
        buckets = np.array(histogram[2])
        assert buckets[:, 2].sum() == values.size
        assert buckets[0, 0] == pytest.approx(values.min())

        (empty,) = _poll_json(
            base, "/data/plugin/histograms/histograms", lambda d: d, run="run", tag="empty"
        )
        assert sum(bucket[2] for bucket in empty[2]) == 0

        entries = _poll_json(
            base, "/data/plugin/images/images", lambda d: d, run="run", tag="samples", sample=1
        )
        png = _get(base, "/data/plugin/images/individualImage?" + entries[0]["query"])
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), image[1])
        for tag, want in (("batch/image/0", image[0]), ("batch/image/1", image[1]),
                          ("one", image[0])):  # fmt: skip
            entries = _poll_json(
                base, "/data/plugin/images/images", lambda d: d, run="run", tag=tag, sample=0
            )
            png = _get(base, "/data/plugin/images/individualImage?" + entries[0]["query"])
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)

        (text,) = _poll_json(base, "/data/plugin/text/text", lambda d: d, run="run", tag="notes")
        assert "<em>world</em>" in text["text"]
