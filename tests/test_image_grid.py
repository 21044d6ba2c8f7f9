"""``add_images`` as torch writes it: one image under ``tag``, the batch tiled into torch's
grid (8 columns, no padding, gray repeated into RGB, floats scaled as torch scales them), held
pixel for pixel against torch's own writer on the same calls and read back through
TensorBoard's reader; ``add_image`` and ``add_figure`` likewise; the ``layout`` option that
restores our per-sample and one-tensor forms."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs
from conftest import legacy_reader, tensor_values
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary.kinds import image as gs_images

torch = pytest.importorskip("torch", reason="torch's writer is the reference (pip install torch)")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402


def _pixels(encoded: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(encoded)))


def _images(logdir) -> dict[str, list[tuple[int, int, int, int, np.ndarray]]]:
    """{tag: [(step, width, height, colorspace, decoded pixels)]} as TensorBoard reads them."""
    reader = legacy_reader(logdir)
    return {
        tag: [(e.step, e.width, e.height, _pixels(e.encoded_image_string))
              for e in reader.Images(tag)]
        for tag in reader.Tags()["images"]
    }  # fmt: skip


def _same_as_torch(tmp_path, call) -> dict:
    """Run ``call(writer)`` on our writer and on torch's; the images of both, which must have
    the same tags, steps, sizes and pixels. Returns ours."""
    with gs.SummaryWriter(str(tmp_path / "ours")) as ours:
        call(ours)
    theirs = TorchWriter(str(tmp_path / "torch"))
    call(theirs)
    theirs.close()
    mine, torchs = _images(tmp_path / "ours"), _images(tmp_path / "torch")
    assert sorted(mine) == sorted(torchs)
    for tag in mine:
        assert [e[:3] for e in mine[tag]] == [e[:3] for e in torchs[tag]], tag
        for (*_, got), (*_, want) in zip(mine[tag], torchs[tag], strict=True):
            assert got.shape == want.shape, (tag, got.shape, want.shape)
            np.testing.assert_array_equal(got, want, err_msg=tag)
    return mine


def _floats(shape, seed=0, dtype=np.float32) -> np.ndarray:
    """Floats over [-0.1, 1.1], with every k/255 and its float32 neighbours (where torch's
    ``x * 255`` truncation and a round-half-up part ways) scattered among them."""
    rng = np.random.default_rng(seed)
    x = (rng.random(shape) * 1.2 - 0.1).astype(dtype)
    steps = np.arange(256, dtype=np.float32) / np.float32(255)
    edges = np.concatenate([
        steps, np.nextafter(steps, np.float32(2)), np.nextafter(steps, np.float32(-1)),
        (np.arange(256, dtype=np.float32) + np.float32(0.5)) / np.float32(255),
        [0.0, 1.0, -0.0, 1e-30, 0.99999994, 1.0000001, -1.0, 2.0, np.inf, -np.inf],
    ]).astype(dtype)  # fmt: skip
    flat = x.reshape(-1)
    where = rng.choice(flat.size, min(flat.size, edges.size), replace=False)
    flat[where] = edges[: where.size]
    return x


@pytest.mark.parametrize("n", [1, 3, 7, 8, 9, 17])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_float_batch_is_torchs_grid(tmp_path, n, channels):
    batch = _floats((n, channels, 6, 5), seed=n * 10 + channels)
    mine = _same_as_torch(tmp_path, lambda w: w.add_images("batch", batch, 4))
    ((step, width, height, pixels),) = mine["batch"]
    cols = min(n, 8)
    assert (step, width, height) == (4, 5 * cols, 6 * -(-n // cols))
    assert pixels.shape == (height, width, 3)  # gray repeated into RGB, as torch's grid


@pytest.mark.parametrize("n", range(1, 18))
@pytest.mark.parametrize("channels", [1, 3])
def test_grid_image_is_torchs_make_grid(monkeypatch, n, channels):
    """The builder against torch's own ``make_grid``, whole and a few images at a time."""
    from torch.utils.tensorboard._utils import make_grid

    from gpu_summary.summaries import image as image_summaries

    batch = np.random.default_rng(n).integers(1, 256, (n, 4, 3, channels), dtype=np.uint8)
    want = make_grid(batch.transpose(0, 3, 1, 2)).transpose(1, 2, 0)
    np.testing.assert_array_equal(image_summaries.grid_image(batch), want)
    monkeypatch.setattr(image_summaries, "_GRID_GROUP", 2 * 4 * 3 * channels)  # two at a time
    groups = []

    def to_uint8(group):
        groups.append(len(group))
        return group

    np.testing.assert_array_equal(image_summaries.grid_image(batch, to_uint8), want)
    assert groups == ([1] if n == 1 else [2] * (n // 2) + [1] * (n % 2))


@pytest.mark.parametrize("n", [1, 3, 9, 17])
def test_a_uint8_batch_is_torchs_grid_from_numpy_and_torch_tensors(tmp_path, n):
    rng = np.random.default_rng(n)
    nchw = rng.integers(0, 256, (n, 3, 7, 4), dtype=np.uint8)
    gray = rng.integers(0, 256, (n, 1, 7, 4), dtype=np.uint8)

    def call(w):
        w.add_images("numpy", nchw, 0)
        w.add_images("torch", torch.from_numpy(nchw), 1)
        w.add_images("gray", torch.from_numpy(gray), 2)
        w.add_images("numpy", nchw[::-1], 3)  # a strided view, a second step

    mine = _same_as_torch(tmp_path, call)
    assert [e[0] for e in mine["numpy"]] == [0, 3]


@pytest.mark.parametrize("n", [1, 5, 9])
def test_nhwc_batches_and_every_float_width_are_torchs_grid(tmp_path, n):
    floats = _floats((n, 5, 6, 3), seed=n)

    def call(w):
        w.add_images("nhwc", floats, 0, dataformats="NHWC")
        w.add_images("nhwc_u8", (floats.clip(0, 1) * 255).astype(np.uint8), 0, dataformats="NHWC")
        w.add_images("torch_nhwc", torch.from_numpy(floats), 0, dataformats="NHWC")
        w.add_images("f64", floats.astype(np.float64), 0, dataformats="NHWC")
        w.add_images("f16", torch.from_numpy(floats).half(), 0, dataformats="NHWC")
        w.add_images("bf16", torch.from_numpy(floats).bfloat16(), 0, dataformats="NHWC")
        w.add_images("bool", torch.from_numpy(floats > 0.5), 0, dataformats="NHWC")

    _same_as_torch(tmp_path, call)


def test_float64_values_round_to_float32_first_as_torchs(tmp_path):
    """torch casts to float32 before scaling: a float64 a hair below k/255 can land on k."""
    steps = np.arange(256) / 255.0
    values = np.concatenate([np.nextafter(steps, -1), np.nextafter(steps, 2), steps - 1e-9])
    batch = values.reshape(3, 1, 16, 16)
    _same_as_torch(tmp_path, lambda w: w.add_images("f64", batch, 0))


def test_nan_is_black_in_the_grid(tmp_path):
    batch = np.full((2, 3, 2, 2), 0.5, np.float32)
    batch[0, :, 0, 0] = np.nan
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_images("nan", batch, 0)
    ((_, width, height, pixels),) = _images(tmp_path)["nan"]
    assert (width, height) == (4, 2)
    np.testing.assert_array_equal(pixels[0, 0], [0, 0, 0])  # torch's cast gives 0 on x86
    assert (pixels[1, 1] == 127).all()


@pytest.mark.parametrize("n", [1, 3, 9])
def test_an_rgba_batch_tiles_as_torchs_grid_of_its_channels(tmp_path, n):
    """torch's grid refuses 4 channels (an AssertionError); ours tiles RGBA the same way:
    its colour equals torch's grid of the RGB channels, its alpha torch's grid of alpha."""
    batch = _floats((n, 4, 5, 3), seed=n)
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_images("rgba", batch, 0)
    theirs = TorchWriter(str(tmp_path / "torch"))
    with pytest.raises(AssertionError):
        theirs.add_images("rgba", batch, 0)
    theirs.add_images("rgb", batch[:, :3], 0)
    theirs.add_images("alpha", batch[:, 3:], 0)
    theirs.close()
    ((_, width, height, pixels),) = _images(tmp_path / "ours")["rgba"]
    torchs = _images(tmp_path / "torch")
    assert pixels.shape == (height, width, 4)
    np.testing.assert_array_equal(pixels[..., :3], torchs["rgb"][0][3])
    np.testing.assert_array_equal(pixels[..., 3], torchs["alpha"][0][3][..., 0])


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_add_image_is_torchs_for_floats_and_gray(tmp_path, channels):
    chw = _floats((channels, 9, 13), seed=channels)
    u8 = np.random.default_rng(channels).integers(0, 256, (channels, 9, 13), dtype=np.uint8)

    def call(w):
        w.add_image("float", chw, 1)
        w.add_image("uint8", torch.from_numpy(u8), 2)
        w.add_image("hwc", np.moveaxis(chw, 0, -1), 3, dataformats="HWC")
        w.add_image("hw", chw[0], 4, dataformats="HW")

    mine = _same_as_torch(tmp_path, call)
    assert mine["uint8"][0][3].shape == (9, 13, 4 if channels == 4 else 3)


@pytest.mark.parametrize("channels", [1, 3])
def test_a_large_host_batch_is_torchs_grid_too(tmp_path, monkeypatch, channels):
    """From 64 MiB on the host (made 1 byte here), the grid is tiled and encoded at the call,
    a few images converted at a time: the same pixels."""
    monkeypatch.setattr(gs_images, "ENCODE_AT_CALL", 1)
    floats = _floats((9, channels, 5, 4), seed=channels)
    u8 = np.random.default_rng(channels).integers(0, 256, (9, channels, 5, 4), dtype=np.uint8)

    def call(w):
        w.add_images("float", floats, 0)
        w.add_images("uint8", u8, 0)
        w.add_images("one", floats[:1], 0)
        w.add_image("image", u8[0], 0)

    _same_as_torch(tmp_path, call)


def test_a_large_float_batch_is_never_copied_as_floats(tmp_path):
    """Eight 3×1000×1000 float64 images (192 MiB): the call holds the uint8 grid (24 MiB),
    its encoding (the PNG encoder's filtered rows and output buffer: twice the grid at most) and
    an image's conversion at a time — never a float copy of the batch (torch's writer makes
    float32 ones, 96 MiB: with the grid, 5 grids)."""
    from conftest import run_python

    proc = run_python(f"""
        import tracemalloc
        import numpy as np
        import gpu_summary as gs
        ramp = np.linspace(0, 1, 1000 * 1000).reshape(1000, 1000)
        batch = np.empty((8, 3, 1000, 1000))
        batch[...] = ramp
        writer = gs.SummaryWriter({str(tmp_path)!r})
        writer.add_scalar("warm", 0.0, 0)
        writer.flush()
        tracemalloc.start()
        writer.add_images("big", batch, 0)
        writer.close()
        print(tracemalloc.get_traced_memory()[1])
    """, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    peak = int(proc.stdout)
    grid = 1000 * 8000 * 3
    assert peak <= 3 * grid + (16 << 20), (peak >> 20, grid >> 20)
    ((_, width, height, pixels),) = _images(tmp_path)["big"]
    assert (width, height) == (8000, 1000)
    assert pixels[0, :2].tolist() == [[0, 0, 0]] * 2 and pixels[-1, -1].tolist() == [255] * 3


def test_max_size_shrinks_each_sample_before_tiling(tmp_path):
    rng = np.random.default_rng(8)
    batch = rng.integers(0, 256, (10, 3, 40, 30), dtype=np.uint8)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_images("grid", batch, 0, max_size=10)
        writer.add_images("samples", batch, 0, max_size=10, layout="samples")
    images = _images(tmp_path)
    ((_, width, height, grid),) = images["grid"]
    assert (width, height) == (8 * 8, 2 * 10)  # 40×30 shrunk to 10×8 (7.5 rounded up)
    for i in range(10):
        ((_, width, height, sample),) = images[f"samples/image/{i}"]
        assert (width, height) == (8, 10)
        row, col = divmod(i, 8)
        np.testing.assert_array_equal(grid[row * 10 : row * 10 + 10, col * 8 : col * 8 + 8], sample)
    assert (grid[10:, 16:] == 0).all()  # the empty cells of the last row stay black


def test_a_device_batch_is_torchs_grid(emulated_cupy, tmp_path):
    """Converted and shrunk on the device, tiled on the host from the uint8 samples."""
    batch = _floats((9, 1, 6, 5), seed=2)
    with gs.SummaryWriter(str(tmp_path / "ours")) as ours:
        ours.add_images("device", emulated_cupy.asarray(batch), 0)
        ours.add_images("small", emulated_cupy.asarray(batch), 0, max_size=3)
        assert threading.get_ident() not in emulated_cupy.waits  # the writer thread waits
    with gs.SummaryWriter(str(tmp_path / "host")) as host:
        host.add_images("small", batch, 0, max_size=3)
    theirs = TorchWriter(str(tmp_path / "torch"))
    theirs.add_images("device", batch, 0)
    theirs.close()
    mine = _images(tmp_path / "ours")
    np.testing.assert_array_equal(mine["device"][0][3], _images(tmp_path / "torch")["device"][0][3])
    np.testing.assert_array_equal(mine["small"][0][3], _images(tmp_path / "host")["small"][0][3])
    assert any(e[1] == "gs_thumbnails" for e in emulated_cupy.log if e[0] == "launch")


# ---- the layouts that are ours -------------------------------------------------------------


def test_layout_samples_restores_an_image_per_sample(tmp_path):
    batch = _floats((3, 1, 4, 5), seed=1)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_images("each", batch, 2, layout="samples")
    images = _images(tmp_path)
    assert sorted(images) == [f"each/image/{i}" for i in range(3)]
    want = numpy_backend.thumbnails(batch.transpose(0, 2, 3, 1), None).result()  # half up
    for i in range(3):
        ((step, width, height, pixels),) = images[f"each/image/{i}"]
        assert (step, width, height) == (2, 5, 4)
        np.testing.assert_array_equal(pixels, want[i, ..., 0])  # gray stays one channel


def test_layout_tensor_and_one_tag_write_one_tensor_of_pngs(tmp_path):
    batch = np.random.default_rng(0).integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_images("tensor", batch, 0, dataformats="NHWC", layout="tensor")
        writer.add_images("one_tag", batch, 0, dataformats="NHWC", one_tag=True)
    for tag in ("tensor", "one_tag"):
        ((step, value),) = tensor_values(tmp_path, tag)
        assert step == 0 and value[:2].tolist() == [b"5", b"4"]
        for i in range(3):
            np.testing.assert_array_equal(_pixels(value[2 + i]), batch[i])


def test_a_bad_layout_is_refused_at_the_call(tmp_path):
    batch = np.zeros((2, 3, 4, 4), np.uint8)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(
            ValueError, match=r"layout must be one of \['grid', 'samples', 'tensor'\]"
        ):
            writer.add_images("x", batch, 0, layout="tiles")
        with pytest.raises(ValueError, match="one_tag=True"):
            writer.add_images("x", batch, 0, layout="samples", one_tag=True)
        with pytest.raises(ValueError, match="layout"):
            writer.add_images("x", batch, 0, layout=None)
    assert _images(tmp_path) == {}


def test_summary_image_keeps_the_seeds_one_tensor(tmp_path):
    from gpu_summary import summary

    batch = np.random.default_rng(1).integers(0, 256, (2, 4, 5, 3), dtype=np.uint8)
    summary.create_summary_writer(str(tmp_path))
    try:
        summary.image(batch, step=1, tag="seed")
        summary.flush_summary_writer()
        ((step, value),) = tensor_values(tmp_path, "seed")
    finally:
        summary.create_summary_writer(str(tmp_path / "other")).close()
    assert step == 1 and len(value) == 4


# ---- add_figure ----------------------------------------------------------------------------


def test_add_figure_of_a_list_is_torchs_grid(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot

    def figures():
        made = []
        for k in range(3):
            made.append(pyplot.figure(figsize=(1.2, 1), dpi=30))
            pyplot.plot([0, k, 4])
        return made

    _same_as_torch(tmp_path, lambda w: w.add_figure("figs", figures(), 5))
    with gs.SummaryWriter(str(tmp_path / "samples")) as writer:
        writer.add_figure("figs", figures(), 5, layout="samples")
        uneven = [pyplot.figure(figsize=(1, 1), dpi=30), pyplot.figure(figsize=(2, 1), dpi=30)]
        with pytest.raises(ValueError, match="layout='samples'"):
            writer.add_figure("uneven", uneven, 0)
        writer.add_figure("uneven", uneven, 0, layout="samples")
        with pytest.raises(ValueError, match="layout"):
            writer.add_figure("x", uneven, 0, layout="tiles")
    images = _images(tmp_path / "samples")
    assert sorted(images) == [f"{t}/image/{i}" for t, n in (("figs", 3), ("uneven", 2))
                              for i in range(n)]  # fmt: skip
