"""Images, videos and audio read back by tbparse, which decodes them with TensorFlow: ours equal
torch's writer's for ``add_image``, ``add_images`` (torch's grid) and ``add_audio``, and with
``layout="samples"`` every sample of an ``add_images`` batch is a row of its own.

TensorFlow changes what TensorBoard's own reader imports, so it lives in an environment of its
own: ``GS_TENSORFLOW_PYTHON`` names an interpreter that has it (``.ci/run`` makes one, a venv
with ``--system-site-packages`` and ``tensorflow-cpu``); without it this file is skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

import gpu_summary as gs

PYTHON = os.environ.get("GS_TENSORFLOW_PYTHON")
pytestmark = pytest.mark.skipif(
    not PYTHON, reason="GS_TENSORFLOW_PYTHON names no interpreter with TensorFlow (see .ci/run)"
)
torch = pytest.importorskip("torch", reason="torch's writer is the reference (pip install torch)")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402

_READ = textwrap.dedent("""
    import json, sys
    import tbparse
    out = {}
    for logdir in sys.argv[1:]:
        frame = tbparse.SummaryReader(logdir, extra_columns={"width", "height"}).images
        out[logdir] = [
            [row.tag, int(row.step), int(row.width), int(row.height), row.value.tolist()]
            for row in frame.itertuples()
        ]
    print(json.dumps(out))
""")


def _tbparse_images(*logdirs):
    proc = subprocess.run(
        [PYTHON, "-c", _READ, *map(str, logdirs)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    return [
        sorted((t, s, w, h, np.array(v, np.uint8)) for t, s, w, h, v in found[str(d)])
        for d in logdirs
    ]


def _log(writer, images, batch):
    for step, image in enumerate(images):
        writer.add_image("rgb", image, step)  # CHW, both writers' default
    writer.add_image("rgba", np.moveaxis(batch[0], 0, -1), 0, dataformats="HWC")
    writer.add_images("grid", images, 9)  # NCHW, tiled into torch's grid
    writer.add_images("gray", images[:, :1] / 255.0, 9)  # floats, gray repeated into RGB


def test_tbparse_reads_our_images_as_torchs(tmp_path):
    rng = np.random.default_rng(5)
    images = rng.integers(0, 256, (3, 3, 12, 17), dtype=np.uint8)
    rgba = rng.integers(0, 256, (4, 4, 9, 10), dtype=np.uint8)
    with gs.SummaryWriter(tmp_path / "ours") as writer:
        _log(writer, images, rgba)
        writer.add_images("batch", rgba, 7, layout="samples")  # NCHW, an image per sample
        writer.add_images("small", rgba, 7, max_size=5, layout="samples")
    with TorchWriter(str(tmp_path / "torch")) as theirs:
        _log(theirs, images, rgba)  # torch's writer takes NumPy arrays too
    ours, torchs = _tbparse_images(tmp_path / "ours", tmp_path / "torch")
    plain = [row for row in ours if row[0] in ("rgb", "rgba", "grid", "gray")]
    assert [row[:4] for row in plain] == [row[:4] for row in torchs]
    for mine, their in zip(plain, torchs, strict=True):
        np.testing.assert_array_equal(mine[4], their[4])
    batch = [row for row in ours if row[0].startswith("batch/")]
    assert [row[:4] for row in batch] == [(f"batch/image/{i}", 7, 10, 9) for i in range(4)]
    for i, row in enumerate(batch):
        np.testing.assert_array_equal(row[4], np.moveaxis(rgba[i], 0, -1))
    small = [row for row in ours if row[0].startswith("small/")]
    assert [row[1:4] for row in small] == [(7, 5, 5)] * 4  # 10×9 shrunk to 5×4.5, rounded


_READ_AUDIO = textwrap.dedent("""
    import json, sys
    import tbparse
    out = {}
    for logdir in sys.argv[1:]:
        frame = tbparse.SummaryReader(logdir, extra_columns={"sample_rate"}).audio
        out[logdir] = [[row.tag, int(row.step), float(row.sample_rate),
                        [float(v) for v in row.value.reshape(-1)]]
                       for row in frame.itertuples()]
    print(json.dumps(out))
""")


def test_tbparse_reads_our_audio_as_torchs(tmp_path):
    """Audio is decoded by TensorFlow too: our clips equal torch's sample for sample."""
    t = np.linspace(0, 1, 2000)
    clip = (0.8 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    for writer in (gs.SummaryWriter(tmp_path / "ours"), TorchWriter(str(tmp_path / "torch"))):
        writer.add_audio("a", clip[None], 2, sample_rate=4000)
        writer.close()
    proc = subprocess.run(
        [PYTHON, "-c", _READ_AUDIO, str(tmp_path / "ours"), str(tmp_path / "torch")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    ours, theirs = found[str(tmp_path / "ours")], found[str(tmp_path / "torch")]
    assert [row[:3] for row in ours] == [row[:3] for row in theirs] == [["a", 2, 4000.0]]
    np.testing.assert_array_equal(ours[0][3], theirs[0][3])
    # TensorFlow decodes a sample as s / 32768; the writers truncate x * 32767 toward zero
    np.testing.assert_allclose(ours[0][3], clip, atol=2 / 32768)


def test_tbparse_reads_our_videos_and_boxed_images(tmp_path):
    """A video comes back as its T frames, an image with boxes with the boxes drawn."""
    colors = np.arange(3 * 3, dtype=np.uint8).reshape(3, 3) * 25  # a colour per frame
    video = np.broadcast_to(colors[None, :, :, None, None], (1, 3, 3, 8, 6)).copy()
    with gs.SummaryWriter(tmp_path / "run") as writer:
        writer.add_video("v", video, 4)
        writer.add_image_with_boxes("b", np.zeros((3, 20, 30)), np.array([[2, 2, 10, 10]]), 4)
    (rows,) = _tbparse_images(tmp_path / "run")
    by_tag = {row[0]: row for row in rows}
    frames = by_tag["v"][4]
    assert frames.shape == (3, 8, 6, 3) and by_tag["v"][1] == 4
    np.testing.assert_array_equal(frames[:, 0, 0], colors)
    boxed = by_tag["b"][4]
    assert boxed.shape == (20, 30, 3)
    np.testing.assert_array_equal(boxed[5, 2], [255, 0, 0])  # the box's left edge
    np.testing.assert_array_equal(boxed[15, 20], [0, 0, 0])  # outside it
