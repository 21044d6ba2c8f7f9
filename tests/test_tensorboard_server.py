"""A live TensorBoard server (both loaders) serves what gpu_summary wrote, over its HTTP API."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard(logdir, load_fast: bool):
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            f"--load_fast={str(load_fast).lower()}",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _get(base, path, **query):
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


def _poll_json(base, path, ready, timeout=60, **query):
    """GET until ``ready(json)`` holds; the server needs a moment to start and load."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = json.loads(_get(base, path, **query))
            if ready(last):
                return last
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    raise AssertionError(f"{path} {query} never became ready; last answer: {last!r}")


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
        writer.add_images("samples", image, 0)
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

        (text,) = _poll_json(base, "/data/plugin/text/text", lambda d: d, run="run", tag="notes")
        assert "<em>world</em>" in text["text"]
