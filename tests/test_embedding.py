"""add_embedding and the seed's Projector: files TensorBoard's Projector reads, checked with its
own config proto and a live server's projector API."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs
from conftest import _cuda_available, busy_writer_thread
from conftest import projector_config as _config
from conftest import projector_tensor as _tensor
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._embedding import projector_format as projector_files
from gpu_summary._events import safe_files
from support.tb_server import get, poll, poll_json, tensorboard


def test_files_round_trip(tmp_path, xp):
    rng = np.random.default_rng(3)
    mat = rng.standard_normal((30, 4, 5)).astype(np.float32)
    labels = [f"point {i}\twith a tab\nand a newline \\ {i}" for i in range(30)]
    images = rng.random((30, 3, 20, 16))
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(xp.asarray(mat), labels, xp.asarray(images), tag="emb", step=4)
    (info,) = _config(tmp_path).embeddings
    assert info.tensor_name == "emb:00004"
    assert info.tensor_path == "00004/emb/tensors.tsv"
    assert not info.tensor_shape  # as torch's: the Projector counts the rows of the TSV
    np.testing.assert_array_equal(_tensor(tmp_path, info), mat.reshape(30, 20))
    lines = (tmp_path / info.metadata_path).read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) == 31  # one label per line, no header
    assert lines[0] == "point 0\\twith a tab\\nand a newline \\\\ 0"
    sprite = np.asarray(Image.open(tmp_path / info.sprite.image_path))
    width, height = info.sprite.single_image_dim
    assert (width, height) == (16, 20)  # 6 a side × 20 px fits 8192: full size
    assert sprite.shape == (6 * 20, 6 * 16, 3)
    want = numpy_backend.thumbnails(images.transpose(0, 2, 3, 1), None).result()
    np.testing.assert_array_equal(sprite[40:60, 16:32], want[13])  # row 2, column 1
    assert not sprite[5 * 20 :, 0:16].any()  # padding after the 30th image is black


def test_sprite_is_capped_at_8192_pixels(tmp_path):
    images = np.zeros((300, 400, 500, 1), dtype=np.uint8)
    images[:, :200] = 255
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(np.zeros((300, 2)) + 1, label_img=images)
    (info,) = _config(tmp_path).embeddings
    side = projector_files.sprite_side(300, 400, 500)
    assert side == 8192 // 18 and list(info.sprite.single_image_dim) == [side, side * 4 // 5]
    with Image.open(tmp_path / info.sprite.image_path) as sprite:
        assert sprite.size == (18 * side, 18 * (side * 4 // 5)) and max(sprite.size) <= 8192


def test_embeddings_accumulate_and_survive_a_new_writer(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(np.ones((3, 2)), tag="a")
        writer.add_embedding(np.ones((3, 2)) * 2, tag="a")
        writer.add_embedding(np.ones((4, 2)), tag="b", step=9)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(np.ones((3, 2)) * 5, tag="a", step=1)  # replaces a:00001
    names = [e.tensor_name for e in _config(tmp_path).embeddings]
    assert names == ["a:00000", "b:00009", "a:00001"]
    info = _config(tmp_path).embeddings[2]
    np.testing.assert_array_equal(_tensor(tmp_path, info), np.full((3, 2), 5, np.float32))


def test_utf8_looking_bytes_are_written_as_tsv(tmp_path):
    mat = np.zeros((5, 3), dtype=np.float32)  # zero bytes decode as UTF-8
    mat[2, 1] = 10.0  # 00 00 20 41: ASCII bytes too
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(mat, tensor_format="bytes")
    (info,) = _config(tmp_path).embeddings
    assert info.tensor_path == "00000/default/tensors.tsv"  # the Projector would parse it so
    np.testing.assert_array_equal(_tensor(tmp_path, info), mat)  # float32 values exactly


def test_multi_column_metadata_and_array_labels(tmp_path, xp):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(np.eye(3), [("a", 1), ("b", 2.5), ("c\t", True)], tag="rows",
                             metadata_header=["name", "score"])  # fmt: skip
        writer.add_embedding(np.eye(3), [(1, 2), (3, 4), (5, 6)], tag="default_header")
        writer.add_embedding(np.eye(3), xp.asarray(np.array([7, 8, 2**40])), tag="ints")
    rows, header, ints = _config(tmp_path).embeddings
    assert (tmp_path / rows.metadata_path).read_text() == "name\tscore\na\t1\nb\t2.5\nc\\t\tTrue\n"
    assert (tmp_path / header.metadata_path).read_text().startswith("column_0\tcolumn_1\n1\t2\n")
    assert (tmp_path / ints.metadata_path).read_text() == "7\n8\n1099511627776\n"


def _principal_components_by_svd(x, k):
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:k].T
    axes *= np.where(axes[np.argmax(np.abs(axes), axis=0), np.arange(k)] < 0, -1, 1)
    return centred @ axes


def test_pca_keeps_the_top_components(tmp_path, xp):
    if xp.__name__ == "support.fake_cupy":
        pytest.skip("device PCA uses CuPy's linear algebra, which the CPU stand-in lacks")
    rng = np.random.default_rng(8)
    scales = np.array([9.0, 5.0, 3.0, 1.0, 0.5, 0.1])
    x = rng.standard_normal((200, 6)) * scales @ np.linalg.qr(rng.standard_normal((6, 6)))[0]
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(xp.asarray(x), tag="pca", reduce="pca", components=3)
    (info,) = _config(tmp_path).embeddings
    got = _tensor(tmp_path, info)
    assert got.shape == (200, 3)
    np.testing.assert_allclose(got, _principal_components_by_svd(x, 3), rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(got.var(axis=0)) < 0)  # by decreasing variance


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mat": np.zeros((0, 3))}, ValueError, "mat must be N×D"),
        ({"mat": np.array(["x"])}, TypeError, "mat must hold"),
        ({"metadata": ["a", "b"]}, ValueError, "metadata has 2 labels but mat has 3"),
        ({"metadata": [("a",), ("b", "c"), ("d",)]}, ValueError, "same number of columns"),
        ({"metadata": "abc"}, TypeError, "not one str"),
        ({"metadata": [1, 2, 3], "metadata_header": ["a", "b"]}, ValueError, "name each"),
        ({"label_img": np.zeros((2, 3, 4, 4))}, ValueError, "one image per point"),
        ({"label_img": np.zeros((3, 5, 4, 2))}, ValueError, "1, 3 or 4 channels"),
        ({"label_img": np.zeros((3, 3, 4, 4), np.int16)}, TypeError, "label_img must be"),
        ({"reduce": "tsne"}, ValueError, "reduce must be None or 'pca'"),
        ({"reduce": "pca", "components": 0}, ValueError, "components must be > 0"),
        ({"reduce": "pca", "mat": np.full((3, 2), np.nan)}, ValueError, "NaN"),
        ({"tag": ""}, ValueError, "tag must not be empty"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_written(tmp_path, kwargs, error, match):
    arguments = {"mat": np.ones((3, 2)), **kwargs}
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            writer.add_embedding(**arguments)
    assert not (tmp_path / "projector_config.pbtxt").exists()


@pytest.mark.parametrize("tag", ["../../escape", "/abs/path", "..", ".hidden", "a/b\\c"])
def test_asset_paths_stay_inside_the_run(tmp_path, tag):
    run = tmp_path / "run"
    with gs.SummaryWriter(run) as writer:
        writer.add_embedding(np.ones((2, 2)) * 3, ["x", "y"], tag=tag)
    (info,) = _config(run).embeddings
    assert info.tensor_name == f"{tag}:00000"
    for relative in (info.tensor_path, info.metadata_path):
        path = os.path.realpath(run / relative)
        assert os.path.commonpath([path, os.path.realpath(run)]) == os.path.realpath(run)
        assert os.path.isfile(path)
    assert sorted(os.listdir(tmp_path)) == ["run"]


@pytest.mark.parametrize("load_fast", [False, True])
def test_live_projector_lists_and_serves_the_embedding(tmp_path, load_fast):
    rng = np.random.default_rng(4)
    mat = rng.standard_normal((12, 5)).astype(np.float32)
    images = (rng.random((12, 8, 8, 3)) * 255).astype(np.uint8)
    with gs.SummaryWriter(tmp_path / "run1") as writer:
        writer.add_scalar("loss", 1.0, 0)
        writer.add_embedding(mat, [f"p{i}" for i in range(12)], images, tag="words", step=3)
        writer.add_embedding(mat * 2, tag="packed", step=3, tensor_format="bytes")
    api = "/data/plugin/projector"
    with tensorboard(tmp_path, load_fast) as base:
        runs = poll_json(base, f"{api}/runs", lambda r: "run1" in r)
        assert runs == ["run1"]
        config = poll_json(base, f"{api}/info", lambda c: "embeddings" in c, run="run1")
        embedding, packed = config["embeddings"]
        assert embedding["tensorName"] == "words:00003" and packed["tensorName"] == "packed:00003"
        assert embedding["tensorShape"] == packed["tensorShape"] == [12, 5]  # TSV rows counted
        served = get(base, f"{api}/tensor", run="run1", name="words:00003")
        np.testing.assert_array_equal(np.frombuffer(served, "<f4").reshape(12, 5), mat)
        served = get(base, f"{api}/tensor", run="run1", name="packed:00003")
        np.testing.assert_array_equal(np.frombuffer(served, "<f4").reshape(12, 5), mat * 2)
        labels = get(base, f"{api}/metadata", run="run1", name="words:00003").decode()
        assert labels.split("\n")[:2] == ["p0", "p1"]
        png = get(base, f"{api}/sprite_image", run="run1", name="words:00003")
        with Image.open(io.BytesIO(png)) as sprite:
            assert sprite.size == (4 * 8, 4 * 8)
        scalars = poll(lambda: json.loads(get(base, "/data/plugin/scalars/tags")),
                       lambda t: "loss" in t.get("run1", {}), "scalar tags")  # fmt: skip
        assert "loss" in scalars["run1"]


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device and CuPy")
@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs PyTorch")
def test_torch_embedding_with_pca_and_sprite_on_the_device(tmp_path):
    import torch

    rng = np.random.default_rng(12)
    x = rng.standard_normal((2000, 64)) * np.linspace(5, 0.1, 64)
    images = torch.rand(2000, 3, 28, 28, device="cuda")
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(torch.from_numpy(x).cuda().to(torch.bfloat16), tag="bf16")
        writer.add_embedding(torch.from_numpy(x).cuda(), label_img=images, tag="pca",
                             reduce="pca", components=5)  # fmt: skip
    bf16, pca = _config(tmp_path).embeddings
    want = torch.from_numpy(x).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(_tensor(tmp_path, bf16), want)
    np.testing.assert_allclose(_tensor(tmp_path, pca), _principal_components_by_svd(x, 5),
                               rtol=1e-4, atol=1e-3)  # fmt: skip
    side = projector_files.sprite_side(2000, 28, 28)
    assert list(pca.sprite.single_image_dim) == [side, side]


# -- on disk when the call returns, as torch's -------------------------------------------------


def _leftovers(folder):
    """Every file and folder below ``folder`` (relative), sorted."""
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, folders, files in os.walk(folder)
                  for name in folders + files)  # fmt: skip


def test_the_files_are_complete_when_the_call_returns(tmp_path, xp):
    rng = np.random.default_rng(33)
    mat = rng.standard_normal((10, 64))
    labels = [f"point {i}" for i in range(10)]
    images = rng.random((10, 3, 6, 4))
    pca = xp.__name__ != "support.fake_cupy"  # the CPU stand-in has no linear algebra
    # The writer thread is held busy: whatever it would write is not there yet.
    with busy_writer_thread(tmp_path) as writer:
        writer.add_embedding(xp.asarray(mat), labels, xp.asarray(images), global_step=2,
                             tag="emb")  # fmt: skip
        if pca:
            writer.add_embedding(xp.asarray(mat), tag="pca", reduce="pca", components=3)
        config = _config(tmp_path)
        info = config.embeddings[0]
        assert info.tensor_name == "emb:00002"
        np.testing.assert_array_equal(_tensor(tmp_path, info), mat.astype(np.float32))
        text = (tmp_path / info.metadata_path).read_text(encoding="utf-8")
        assert text == "".join(f"{label}\n" for label in labels)
        with Image.open(tmp_path / info.sprite.image_path) as png:
            sprite = np.asarray(png)
        assert sprite.shape == (4 * 6, 4 * 4, 3)  # 4 a side
        want = numpy_backend.thumbnails(images.transpose(0, 2, 3, 1), None).result()
        np.testing.assert_array_equal(sprite[6:12, 8:12], want[6])  # row 1, column 2
        if pca:
            got = _tensor(tmp_path, config.embeddings[1])
            np.testing.assert_allclose(got, _principal_components_by_svd(mat, 3),
                                       rtol=1e-4, atol=1e-4)  # fmt: skip
        assert not [name for name in _leftovers(tmp_path) if name.endswith(".tmp")]
    writer.close()


def test_a_run_removed_right_after_the_call_stays_removed(tmp_path):
    run = tmp_path / "run"
    with busy_writer_thread(run) as writer:
        writer.add_embedding(np.ones((3, 2)), ["a", "b", "c"], np.zeros((3, 3, 5, 5)),
                             global_step=2)  # fmt: skip
        shutil.rmtree(run)  # `rm -rf` (or a test's teardown) while the writer is open
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.flush()  # nothing deferred: no error, no warning
        writer.close()
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("after", [1, 2, 3])  # tensor, labels, sprite; then the lock, config
def test_a_run_removed_while_the_files_are_written_is_left_removed(tmp_path, monkeypatch, after):
    run = tmp_path / "run"
    real_write = safe_files.write_at
    written = []

    def remove_after_the_first_file(folder, name, data, root=""):
        real_write(folder, name, data, root)
        written.append(name)
        if len(written) == after:
            shutil.rmtree(run)  # another thread or process removes the run meanwhile

    writer = gs.SummaryWriter(run)
    monkeypatch.setattr(safe_files, "write_at", remove_after_the_first_file)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.add_embedding(np.ones((3, 2)), ["a", "b", "c"], np.zeros((3, 3, 5, 5)))
        monkeypatch.undo()
        writer.close()
    assert len(written) == after and _leftovers(tmp_path) == []


@pytest.mark.parametrize("points", [3, 100])
@pytest.mark.parametrize("image_dtype", ["float32", "float64"])
def test_torchs_embedding_tests_and_their_teardown(tmp_path, points, image_dtype):
    """torch's test_embedding and test_embedding_64 (and the same with 64-dim points): two
    calls at one step, then the test's teardown removes the folder before the writer closes."""
    torch = pytest.importorskip("torch")
    for attempt in range(5):  # a race, when there is one, shows within a few tries
        run = tmp_path / f"run{attempt}"
        writer = gs.SummaryWriter(str(run))
        features = torch.tensor([[1.0, 2.0, 3.0], [5.0, 4.0, 1.0], [3.0, 7.0, 7.0]])
        labels = torch.tensor([33.0, 44.0, 55.0])
        if points > 3:
            features = torch.randn(points, 64)
            labels = torch.arange(points, dtype=torch.float32)
        images = torch.zeros((points, 3, 5, 5), dtype=getattr(torch, image_dtype))
        writer.add_embedding(features, metadata=labels, label_img=images, global_step=2)
        dataset = ["test"] * (points // 2) + ["train"] * (points - points // 2 + 1)
        rows = list(zip(labels, dataset, strict=False))  # one label more, as in torch's test
        writer.add_embedding(features, metadata=rows, label_img=images,
                             metadata_header=["digit", "dataset"], global_step=2)  # fmt: skip
        (info,) = _config(run).embeddings  # the second call replaced the first
        np.testing.assert_array_equal(_tensor(run, info), features.numpy())
        lines = (run / info.metadata_path).read_text().split("\n")
        assert lines[:2] == ["digit\tdataset", f"{float(labels[0])}\ttest"]
        shutil.rmtree(run)  # torch's tearDown
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            writer.close()
        assert not run.exists()
    assert _leftovers(tmp_path) == []


# -- the same files as torch's writer, by default ----------------------------------------------


def _run_files(logdir):
    """Every file below ``logdir`` (relative, forward slashes), but event files and our lock."""
    return sorted(os.path.relpath(os.path.join(root, name), logdir).replace(os.sep, "/")
                  for root, _, names in os.walk(logdir) for name in names
                  if "tfevents" not in name and name != ".projector_config.lock")  # fmt: skip


def test_the_same_calls_write_torchs_files(tmp_path):
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    torch.manual_seed(5)
    words = [f"word{i}" for i in range(30)]
    calls = [  # keyword arguments of add_embedding, as a script passes them to either writer
        {"mat": torch.randn(30, 5), "metadata": words, "label_img": torch.rand(30, 3, 8, 8),
         "global_step": 3, "tag": "words"},
        {"mat": torch.randn(4, 3)},  # tag "default", global_step None: step 0
        {"mat": torch.randn(6, 2) * 1e-30, "metadata": [[i, f"c{i}"] for i in range(6)],
         "metadata_header": ["index", "name"], "global_step": 12, "tag": "my_embedding"},
        {"mat": torch.randn(7, 4).double(), "label_img": torch.rand(7, 1, 6, 6),
         "global_step": 3, "tag": "gray"},
        {"mat": torch.zeros(3, 2), "metadata": ["a", "b", "c"], "global_step": 100000},
    ]  # fmt: skip
    runs = {"torch": tmp_path / "torch", "ours": tmp_path / "ours"}
    for name, make in (("torch", TorchWriter), ("ours", gs.SummaryWriter)):
        with make(str(runs[name])) as writer:
            for kwargs in calls:
                writer.add_embedding(**kwargs)
    assert _run_files(runs["ours"]) == _run_files(runs["torch"])
    assert "00003/words/tensors.tsv" in _run_files(runs["ours"])
    theirs, ours = _config(runs["torch"]), _config(runs["ours"])
    assert ours == theirs  # names, paths, sprite dims; no tensor_shape (read from the TSV)
    for info, kwargs in zip(ours.embeddings, calls, strict=True):
        want = kwargs["mat"].numpy().astype(np.float32)
        np.testing.assert_array_equal(_tensor(runs["ours"], info), want)  # exactly, as float32
        np.testing.assert_array_equal(_tensor(runs["torch"], info), want)
        if kwargs["mat"].dtype == torch.float32:  # torch's text, number for number
            assert (runs["ours"] / info.tensor_path).read_bytes() == (
                runs["torch"] / info.tensor_path
            ).read_bytes()
        if info.metadata_path:
            assert (runs["ours"] / info.metadata_path).read_bytes() == (
                runs["torch"] / info.metadata_path
            ).read_bytes()
        if info.sprite.image_path:  # the same grid; gray stays one channel (torch: RGB), and a
            # float pixel is x * 255 rounded, as in every image of ours (torch truncates it)
            theirs_png, ours_png = (Image.open(runs[n] / info.sprite.image_path) for n in runs)
            assert ours_png.size == theirs_png.size
            ours_rgb, theirs_rgb = (np.asarray(s.convert("RGB"), np.int16)
                                    for s in (ours_png, theirs_png))  # fmt: skip
            assert np.abs(ours_rgb - theirs_rgb).max() <= 1


def test_tensor_format_bytes_keeps_the_compact_file(tmp_path):
    rng = np.random.default_rng(6)
    mat = rng.standard_normal((9, 4)).astype(np.float32)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(mat, ["a"] * 9, global_step=2, tag="packed", tensor_format="bytes")
        writer.add_embedding(mat, tag="text", tensor_format="tsv")
        with pytest.raises(ValueError, match="tensor_format must be 'tsv' or 'bytes'"):
            writer.add_embedding(mat, tag="bad", tensor_format="npy")
    packed, text = _config(tmp_path).embeddings
    assert packed.tensor_path == "00002/packed/tensors.bytes"
    assert list(packed.tensor_shape) == [9, 4]  # the plugin needs it for raw bytes
    assert (tmp_path / packed.tensor_path).read_bytes() == mat.astype("<f4").tobytes()
    np.testing.assert_array_equal(_tensor(tmp_path, packed), mat)
    assert text.tensor_path == "00000/text/tensors.tsv" and not text.tensor_shape
    np.testing.assert_array_equal(_tensor(tmp_path, text), mat)
    assert sorted(os.listdir(tmp_path / "00000")) == ["text"]  # the bad call wrote nothing
