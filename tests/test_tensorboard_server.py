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
        writer.add_images("samples", image, 0, dataformats="NHWC", layout="tensor")
        writer.add_images("batch", image, 0, dataformats="NHWC", layout="samples")  # batch/image/i
        writer.add_images("grid", image, 0, dataformats="NHWC")  # torch's: the two side by side
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
                          ("grid", np.concatenate(image, axis=1)), ("one", image[0])):  # fmt: skip
            entries = _poll_json(
                base, "/data/plugin/images/images", lambda d: d, run="run", tag=tag, sample=0
            )
            png = _get(base, "/data/plugin/images/individualImage?" + entries[0]["query"])
            np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)

        (text,) = _poll_json(base, "/data/plugin/text/text", lambda d: d, run="run",
                             tag="notes/text_summary")  # fmt: skip
        assert "<em>world</em>" in text["text"]


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_server_shows_the_other_kinds(tmp_path, load_fast):
    """PR curves, audio, meshes, custom scalars, videos and boxes, over each plugin's API."""
    import json
    import wave

    rng = np.random.default_rng(1)
    labels, scores = rng.integers(0, 2, 500), rng.random(500)
    vertices = rng.standard_normal((1, 50, 3)).astype(np.float32)
    faces = rng.integers(0, 50, (1, 20, 3))
    clip = np.sin(np.linspace(0, 200, 4000)).astype(np.float32)
    video = rng.integers(0, 256, (1, 3, 3, 8, 8), dtype=np.uint8)
    with gs.SummaryWriter(str(tmp_path / "run")) as writer:
        for step in range(2):
            writer.add_scalar("loss", 1.0 / (step + 1), step)
            writer.add_pr_curve("pr", labels, scores, step, num_thresholds=21)
        writer.add_audio("tone", clip, 0, sample_rate=8000)
        writer.add_mesh("cloud", vertices, faces=faces, global_step=0)
        writer.add_custom_scalars_multilinechart(["loss"], category="cat", title="losses")
        writer.add_video("clip", video, 0)
        writer.add_image_with_boxes("boxed", np.zeros((3, 8, 8)), np.array([[1, 1, 6, 6]]), 0)

    with tensorboard(tmp_path, load_fast) as base:
        curves = _poll_json(base, "/data/plugin/pr_curves/pr_curves",
                            lambda d: len(d.get("run", [])) == 2, run="run", tag="pr")  # fmt: skip
        first = curves["run"][0]
        assert first["true_positives"][0] == labels.sum()
        assert first["false_positives"][0] == labels.size - labels.sum()

        (entry,) = _poll_json(base, "/data/plugin/audio/audio", lambda d: d, run="run",
                              tag="tone", sample=0)  # fmt: skip
        # The Rust loader converts Summary.Audio without its content type (torch's files
        # alike); the bytes are the WAV either way, which the browser plays.
        assert entry["contentType"] == ("application/octet-stream" if load_fast else "audio/wav")
        wav = _get(base, "/data/plugin/audio/individualAudio?" + entry["query"])
        with wave.open(io.BytesIO(wav)) as sound:
            assert (sound.getframerate(), sound.getnframes()) == (8000, 4000)

        tags = _poll_json(base, "/data/plugin/mesh/tags", lambda d: "cloud" in d.get("run", {}))
        assert tags["run"]["cloud"]["samples"] == 1
        meta = json.loads(_get(base, "/data/plugin/mesh/meshes", run="run", tag="cloud"))
        assert {m["content_type"] for m in meta} == {1, 2}  # VERTEX, FACE
        data = _get(base, "/data/plugin/mesh/data", run="run", tag="cloud",
                    content_type="VERTEX", sample=0, step=0)  # fmt: skip
        np.testing.assert_array_equal(np.frombuffer(data, np.float32).reshape(50, 3), vertices[0])
        data = _get(base, "/data/plugin/mesh/data", run="run", tag="cloud",
                    content_type="FACE", sample=0, step=0)  # fmt: skip
        np.testing.assert_array_equal(np.frombuffer(data, np.int32).reshape(20, 3), faces[0])

        layout = _poll_json(base, "/data/plugin/custom_scalars/layout", lambda d: d)
        (category,) = layout["category"]
        assert category["title"] == "cat"
        assert category["chart"][0]["multiline"]["tag"] == ["loss"]

        for tag, kind in (("clip", "GIF"), ("boxed", "PNG")):
            entries = _poll_json(base, "/data/plugin/images/images", lambda d: d, run="run",
                                 tag=tag, sample=0)  # fmt: skip
            picture = _get(base, "/data/plugin/images/individualImage?" + entries[0]["query"])
            assert Image.open(io.BytesIO(picture)).format == kind
