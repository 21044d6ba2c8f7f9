"""Every kind torch's writer has beyond scalars, histograms, images and text — tensors, audio,
video, figures, boxes, meshes, custom scalars, ONNX graphs — equal to torch's writer on the
same calls where its output is readable, read back through TensorBoard's own readers."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest
from PIL import Image
from tensorboard.util import tensor_util

import gpu_summary as gs
from conftest import legacy_reader

torch = pytest.importorskip("torch")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402


def _torch(logdir, call):
    writer = TorchWriter(str(logdir))
    call(writer)
    writer.close()


# ---- add_tensor ----------------------------------------------------------------------------


TENSOR_DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8,
                 torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool,
                 torch.complex64, torch.complex128]  # fmt: skip


@pytest.mark.parametrize("dtype", TENSOR_DTYPES, ids=str)
def test_add_tensor_reads_back_exactly(tmp_path, dtype):
    source = (torch.arange(-6, 6, dtype=torch.float64) * 1.25).reshape(3, 4)
    if dtype.is_complex:
        source = source + 0.5j
    tensor = source.to(dtype)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_tensor("t", tensor, 5)
    (event,) = legacy_reader(tmp_path).Tensors("t")
    assert event.step == 5
    if dtype == torch.bfloat16:  # TensorBoard decodes bfloat16 only with TensorFlow present:
        proto = event.tensor_proto  # its half_val holds the bit patterns, as TensorFlow's
        assert proto.dtype == 14 and [d.size for d in proto.tensor_shape.dim] == [3, 4]
        bits = np.array(proto.half_val, np.uint32) << 16
        np.testing.assert_array_equal(bits.view(np.float32).reshape(3, 4), tensor.float().numpy())
        return
    back = tensor_util.make_ndarray(event.tensor_proto)
    assert back.shape == (3, 4)
    np.testing.assert_array_equal(back, tensor.numpy())


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64,
                                   torch.bool, torch.complex64])  # fmt: skip
def test_add_tensor_equals_torchs_where_torchs_reads_back(tmp_path, dtype):
    tensor = torch.arange(12).reshape(2, 6).to(dtype)
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_tensor("t", tensor, 1)
    _torch(tmp_path / "torch", lambda w: w.add_tensor("t", tensor, 1))
    (ours,) = legacy_reader(tmp_path / "ours").Tensors("t")
    (theirs,) = legacy_reader(tmp_path / "torch").Tensors("t")
    assert ours.tensor_proto == theirs.tensor_proto


def test_add_tensor_of_a_device_tensor(emulated_cupy, tmp_path):
    values = np.arange(10, dtype=np.float32).reshape(2, 5)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_tensor("t", emulated_cupy.asarray(values)[:, ::2], 0)
        assert emulated_cupy.waits == []
    (event,) = legacy_reader(tmp_path).Tensors("t")
    np.testing.assert_array_equal(tensor_util.make_ndarray(event.tensor_proto), values[:, ::2])


def test_add_tensor_bad_input(tmp_path):
    with gs.SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(TypeError, match="cannot store"):
            writer.add_tensor("t", np.array(["a", "b"]))
        with pytest.raises(TypeError, match="cannot store"):
            writer.add_tensor("t", np.zeros(2, dtype="datetime64[s]"))
    assert legacy_reader(tmp_path).Tags()["tensors"] == []


# ---- add_audio -----------------------------------------------------------------------------


def _wav(encoded: bytes) -> tuple[int, np.ndarray]:
    with wave.open(io.BytesIO(encoded)) as clip:
        return clip.getframerate(), np.frombuffer(clip.readframes(clip.getnframes()), "<i2")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_add_audio_equals_torchs_bytes(tmp_path, dtype):
    t = torch.linspace(0, 1, 4000, dtype=torch.float64)
    clip = (1.2 * torch.sin(2 * np.pi * 440 * t)).to(dtype).unsqueeze(0)  # clipped at ±1
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_audio("a", clip, 3, sample_rate=8000)
    _torch(tmp_path / "torch", lambda w: w.add_audio("a", clip, 3, sample_rate=8000))
    (ours,) = legacy_reader(tmp_path / "ours").Audio("a")
    (theirs,) = legacy_reader(tmp_path / "torch").Audio("a")
    assert ours.encoded_audio_string == theirs.encoded_audio_string
    assert (ours.step, ours.sample_rate, ours.length_frames, ours.content_type) == (
        3, 8000, 4000, "audio/wav")  # fmt: skip
    rate, samples = _wav(ours.encoded_audio_string)
    assert rate == 8000 and samples.max() == 32767 and samples.min() == -32767


def test_add_audio_batch_and_device(emulated_cupy, tmp_path):
    rng = np.random.default_rng(0)
    clips = (rng.random((3, 500)) * 2 - 1).astype(np.float32)
    clips[1, 7] = np.nan
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_audio("batch", clips, 0, sample_rate=16000)
        writer.add_audio("device", emulated_cupy.asarray(clips[0]), 0, sample_rate=16000)
    reader = legacy_reader(tmp_path)
    assert sorted(reader.Tags()["audio"]) == ["batch/audio/0", "batch/audio/1",
                                              "batch/audio/2", "device"]  # fmt: skip
    for i in range(3):
        (event,) = reader.Audio(f"batch/audio/{i}")
        _, samples = _wav(event.encoded_audio_string)
        expected = (np.nan_to_num(clips[i]) * np.float32(32767)).astype(np.int16)
        np.testing.assert_array_equal(samples, expected)
    pcm = np.array([1000, -32768, 32767, 0], np.int16)  # int16: PCM samples as they are
    with gs.SummaryWriter(str(tmp_path / "pcm")) as writer:
        writer.add_audio("pcm", pcm, 0, sample_rate=8000)
        with pytest.raises(ValueError, match="wider than"):
            writer.add_image_with_boxes("b", np.zeros((3, 4, 4)), [0, 0, 2, 2], rescale=1e9)
    (event,) = legacy_reader(tmp_path / "pcm").Audio("pcm")
    np.testing.assert_array_equal(_wav(event.encoded_audio_string)[1], pcm)
    (device,) = reader.Audio("device")
    (host,) = reader.Audio("batch/audio/0")
    assert device.encoded_audio_string == host.encoded_audio_string


@pytest.mark.parametrize(
    "snd,rate,error,match",
    [
        (np.zeros((2, 3, 4)), 8000, ValueError, "one clip"),
        (np.zeros(0), 8000, ValueError, "empty"),
        (np.zeros(10), 0, ValueError, "> 0"),
        (np.zeros(10), 44100.5, ValueError, "whole number"),
        (np.zeros(10), "fast", TypeError, "number"),
        (np.array(["a"]), 8000, TypeError, "snd_tensor"),
    ],
)
def test_add_audio_bad_input(tmp_path, snd, rate, error, match):
    with gs.SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(error, match=match):
            writer.add_audio("a", snd, 0, sample_rate=rate)
    assert legacy_reader(tmp_path).Tags()["audio"] == []


# ---- add_video -----------------------------------------------------------------------------


def _gif_frames(encoded: bytes) -> list[np.ndarray]:
    gif = Image.open(io.BytesIO(encoded))
    assert gif.format == "GIF"
    frames = []
    for k in range(gif.n_frames):
        gif.seek(k)
        frames.append(np.asarray(gif.convert("RGB")))
    return frames


def _solid_videos(n=3, t=4, h=6, w=5):
    """N videos of T frames, each frame one colour (a GIF keeps those exactly)."""
    colors = np.arange(n * t * 3, dtype=np.uint8).reshape(n, t, 3) * 7
    video = np.broadcast_to(colors[:, :, :, None, None], (n, t, 3, h, w)).copy()
    return video, colors


def test_add_video_is_an_animated_gif_of_the_tiled_videos(tmp_path):
    video, colors = _solid_videos()
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_video("v", video, 2, fps=10)
    (event,) = legacy_reader(tmp_path).Images("v")
    assert (event.step, event.height, event.width) == (2, 12, 10)
    frames = _gif_frames(event.encoded_image_string)
    assert len(frames) == 4
    for k, frame in enumerate(frames):  # a 2×2 grid, the fourth cell black
        np.testing.assert_array_equal(frame[0, 0], colors[0, k])
        np.testing.assert_array_equal(frame[0, 5], colors[1, k])
        np.testing.assert_array_equal(frame[6, 0], colors[2, k])
        np.testing.assert_array_equal(frame[6, 5], [0, 0, 0])
    gif = Image.open(io.BytesIO(event.encoded_image_string))
    assert gif.info["duration"] == 100 and gif.info["loop"] == 0


def test_add_video_from_a_device_tensor_shrunk_there(emulated_cupy, tmp_path):
    video, colors = _solid_videos(n=1, t=3, h=40, w=20)
    floats = video.astype(np.float32) / 255
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_video("v", emulated_cupy.asarray(floats), 0, max_size=10)
        assert emulated_cupy.waits == []
    (event,) = legacy_reader(tmp_path).Images("v")
    assert (event.height, event.width) == (10, 5)
    frames = _gif_frames(event.encoded_image_string)
    np.testing.assert_array_equal([f[3, 3] for f in frames], colors[0])
    assert any(e[1] == "gs_thumbnails" for e in emulated_cupy.log if e[0] == "launch")


def test_add_video_layouts_and_bad_input(tmp_path):
    video, colors = _solid_videos(n=1)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_video("thwc", video[0].transpose(0, 2, 3, 1), 0, dataformats="THWC")
        with pytest.raises(ValueError, match="dataformats"):
            writer.add_video("x", video, 0, dataformats="NCHW")
        with pytest.raises(ValueError, match="5 dimensions"):
            writer.add_video("x", video[0], 0)
        with pytest.raises(ValueError, match="fps"):
            writer.add_video("x", video, 0, fps=0)
        with pytest.raises(ValueError, match="channels"):
            writer.add_video("x", np.zeros((1, 2, 2, 4, 4)), 0)
    (event,) = legacy_reader(tmp_path).Images("thwc")
    np.testing.assert_array_equal(_gif_frames(event.encoded_image_string)[1][0, 0], colors[0, 1])
    assert legacy_reader(tmp_path).Tags()["images"] == ["thwc"]


# ---- add_figure ----------------------------------------------------------------------------


def _png(event) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))


def test_add_figure_equals_torchs_pixels(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure = pyplot.figure(figsize=(2, 1.5), dpi=50)
    pyplot.plot([0, 1, 4, 9])
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_figure("f", figure, 1, close=False)
    assert pyplot.fignum_exists(figure.number)
    _torch(tmp_path / "torch", lambda w: w.add_figure("f", figure, 1))
    (ours,) = legacy_reader(tmp_path / "ours").Images("f")
    (theirs,) = legacy_reader(tmp_path / "torch").Images("f")
    assert (ours.width, ours.height) == (100, 75)
    np.testing.assert_array_equal(_png(ours), _png(theirs))
    figures = [pyplot.figure(figsize=(1, 1), dpi=30), pyplot.figure(figsize=(2, 1), dpi=30)]
    with gs.SummaryWriter(str(tmp_path / "list")) as writer:
        writer.add_figure("many", figures, 0, layout="samples")  # two sizes: an image each
        with pytest.raises(TypeError, match=r"matplotlib\.figure\.Figure"):
            writer.add_figure("bad", np.zeros((3, 4, 4)), 0)
        with pytest.raises(ValueError, match="empty list"):
            writer.add_figure("bad", [], 0)
    assert not any(pyplot.fignum_exists(f.number) for f in figures)  # closed
    reader = legacy_reader(tmp_path / "list")
    assert [(e.width, e.height) for t in ("many/image/0", "many/image/1")
            for e in reader.Images(t)] == [(30, 30), (60, 30)]  # fmt: skip


# ---- add_image_with_boxes ------------------------------------------------------------------


def test_add_image_with_boxes_draws_each_box(tmp_path):
    image = np.full((3, 40, 50), 0.5, np.float32)
    boxes = np.array([[5, 5, 20, 30], [25, 10, 45, 35]])
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_image_with_boxes("b", image, boxes, 0, labels=["cat", ""])
        writer.add_image_with_boxes("tbx", image.transpose(1, 2, 0), boxes, 0, None, "HWC")
        writer.add_image_with_boxes("plain", image, boxes, 0)
        writer.add_image_with_boxes("big", image, boxes, 0, rescale=2)
    reader = legacy_reader(tmp_path)
    (event,) = reader.Images("b")
    pixels = _png(event)
    assert pixels.shape == (40, 50, 3)
    np.testing.assert_array_equal(pixels[20, 5], [255, 0, 0])  # left edge of box 0
    np.testing.assert_array_equal(pixels[35, 30], [255, 0, 0])  # bottom edge of box 1
    np.testing.assert_array_equal(pixels[38, 2], [128, 128, 128])  # outside every box
    np.testing.assert_array_equal(pixels[20, 12], [128, 128, 128])  # inside box 0
    # No room above box 0 (y1 = 5): the label's tab hangs inside its top, under the image's
    # top edge, white text on red.
    assert not (pixels[:5, 5:20] == [255, 0, 0]).all(axis=2).any()
    tab = pixels[7:14, 6:20]
    assert (tab[:, :, 1] > 128).any() and (tab == [255, 0, 0]).all(axis=2).any()
    np.testing.assert_array_equal(_png(reader.Images("tbx")[0]), _png(reader.Images("plain")[0]))
    assert _png(reader.Images("big")[0]).shape == (80, 100, 3)


def test_add_image_with_boxes_bad_boxes(tmp_path, emulated_cupy):
    image = np.zeros((3, 10, 10))
    with gs.SummaryWriter(str(tmp_path)) as writer:
        for boxes, match in (
            ([[1, 2, 3]], "N×4"),
            ([[5, 5, 2, 8]], "x1 <= x2"),
            ([[20, 20, 30, 30]], "outside"),
            ([[0, 0, np.nan, 3]], "NaN"),
        ):
            with pytest.raises(ValueError, match=match):
                writer.add_image_with_boxes("b", image, np.array(boxes), 0)
        with pytest.raises(ValueError, match="2 entries for 1 boxes"):
            writer.add_image_with_boxes("b", image, np.array([[1, 1, 5, 5]]), 0, labels=["a", "b"])
        with pytest.raises(TypeError, match="list of str"):
            writer.add_image_with_boxes("b", image, np.array([[1, 1, 5, 5]]), 0, labels=[3])
        with pytest.warns(RuntimeWarning, match="not written.*outside"):
            writer.add_image_with_boxes("device", image, emulated_cupy.asarray(
                np.array([[20.0, 20, 30, 30]])), 0)  # fmt: skip
            writer.flush()
        writer.add_image_with_boxes(
            "good", image, emulated_cupy.asarray(np.array([[1, 1, 5, 5]])), 0
        )
    assert legacy_reader(tmp_path).Tags()["images"] == ["good"]


# ---- add_mesh ------------------------------------------------------------------------------


def _mesh_data():
    vertices = np.array([[[1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1]]], np.float32)
    colors = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 0, 255]]], np.uint8)
    faces = np.array([[[0, 2, 3], [0, 3, 1], [0, 1, 2], [1, 3, 2]]], np.int32)
    return vertices, colors, faces


def test_add_mesh_reads_back_as_the_mesh_plugin_does(tmp_path):
    from tensorboard.plugins.mesh import metadata as mesh_metadata

    vertices, colors, faces = _mesh_data()
    config = {"camera": {"cls": "PerspectiveCamera", "fov": 75}}
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_mesh("m", vertices, colors=colors, faces=faces, config_dict=config,
                        global_step=4)  # fmt: skip
    _torch(tmp_path / "torch", lambda w: w.add_mesh("m", torch.as_tensor(vertices),
                                                    torch.as_tensor(colors), torch.as_tensor(faces),
                                                    config, 4))  # fmt: skip
    ours, theirs = legacy_reader(tmp_path / "ours"), legacy_reader(tmp_path / "torch")
    assert sorted(ours.Tags()["tensors"]) == sorted(theirs.Tags()["tensors"]) == [
        "m_COLOR", "m_FACE", "m_VERTEX"]  # fmt: skip
    for tag, want in (("m_VERTEX", vertices), ("m_FACE", faces), ("m_COLOR", colors)):
        (mine,) = ours.Tensors(tag)
        (their,) = theirs.Tensors(tag)
        np.testing.assert_array_equal(tensor_util.make_ndarray(mine.tensor_proto), want)
        np.testing.assert_array_equal(tensor_util.make_ndarray(their.tensor_proto), want)
        meta = mesh_metadata.parse_plugin_metadata(ours.SummaryMetadata(tag).plugin_data.content)
        reference = mesh_metadata.parse_plugin_metadata(
            theirs.SummaryMetadata(tag).plugin_data.content
        )
        assert meta == reference


def test_add_mesh_point_cloud_device_and_bad_input(tmp_path, emulated_cupy):
    vertices, colors, faces = _mesh_data()
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_mesh(
            "cloud", vertices[0], colors=colors[0].astype(np.float64) / 255, global_step=0
        )
        device_faces = emulated_cupy.asarray(faces)
        writer.add_mesh(
            "device", emulated_cupy.asarray(vertices), faces=device_faces, global_step=0
        )
        with pytest.raises(ValueError, match="indices run from 0 to 3"):
            writer.add_mesh("x", vertices, faces=faces + 1)
        with pytest.raises(ValueError, match=r"\[batch, N, 3\]"):
            writer.add_mesh("x", np.zeros((2, 3, 2)))
        with pytest.raises(ValueError, match="one RGB color per vertex"):
            writer.add_mesh("x", vertices, colors=colors[:, :2])
        with pytest.raises(TypeError, match="integer vertex indices"):
            writer.add_mesh("x", vertices, faces=faces.astype(np.float32))
        with pytest.raises(TypeError, match="JSON"):
            writer.add_mesh("x", vertices, config_dict={"f": object()})
        with pytest.warns(RuntimeWarning, match="not written"):
            writer.add_mesh("bad", vertices, faces=emulated_cupy.asarray(faces + 9))
            writer.flush()
    reader = legacy_reader(tmp_path)
    assert sorted(reader.Tags()["tensors"]) == ["cloud_COLOR", "cloud_VERTEX", "device_FACE",
                                                "device_VERTEX"]  # fmt: skip
    (cloud,) = reader.Tensors("cloud_COLOR")
    np.testing.assert_array_equal(tensor_util.make_ndarray(cloud.tensor_proto), colors)


# ---- add_custom_scalars --------------------------------------------------------------------


def test_custom_scalars_layout_equals_torchs_and_calls_add_up(tmp_path):
    from tensorboard.plugins.custom_scalar import layout_pb2

    layout = {"Taiwan": {"twse": ["Multiline", ["twse/0050", "twse/2330"]]},
              "USA": {"dow": ["Margin", ["dow/aaa", "dow/bbb", "dow/ccc"]]}}  # fmt: skip
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_custom_scalars(layout)
    _torch(tmp_path / "torch", lambda w: w.add_custom_scalars(layout))

    def read(run):
        events = legacy_reader(tmp_path / run).Tensors("custom_scalars__config__")
        return [layout_pb2.Layout.FromString(tensor_util.make_ndarray(e.tensor_proto).item())
                for e in events]  # fmt: skip

    assert read("ours") == read("torch")
    with gs.SummaryWriter(str(tmp_path / "merged")) as writer:
        writer.add_custom_scalars_multilinechart(["loss/.*"], category="train", title="losses")
        writer.add_custom_scalars_marginchart(["acc", "acc/lo", "acc/hi"], category="train",
                                              title="accuracy")  # fmt: skip
        writer.add_custom_scalars_multilinechart(["lr"], category="train", title="losses")
        with pytest.raises(ValueError, match="3 tags"):
            writer.add_custom_scalars_marginchart(["a", "b"])
        with pytest.raises(ValueError, match="'Multiline' or 'Margin'"):
            writer.add_custom_scalars({"c": {"t": ["Pie", ["a"]]}})
        with pytest.raises(ValueError, match="regular expression"):
            writer.add_custom_scalars({"c": {"t": ["Multiline", ["loss/("]]}})
        with pytest.raises(TypeError, match="non-empty dict"):
            writer.add_custom_scalars([])
    *_, last = read("merged")
    (category,) = last.category
    assert category.title == "train"
    assert [(c.title, list(c.multiline.tag)) for c in category.chart] == [
        ("losses", ["lr"]), ("accuracy", [])]  # fmt: skip
    assert category.chart[1].margin.series[0].upper == "acc/hi"


# ---- add_onnx_graph ------------------------------------------------------------------------


def test_add_onnx_graph(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([node], "g", [x], [y])
    path = tmp_path / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    (tmp_path / "junk.onnx").write_bytes(b"\xff\xfe not a model")
    with gs.SummaryWriter(str(tmp_path / "run")) as writer:
        writer.add_onnx_graph(str(path))
        with pytest.raises(FileNotFoundError):
            writer.add_onnx_graph(str(tmp_path / "missing.onnx"))
        with pytest.raises(ValueError, match="not an ONNX model"):
            writer.add_onnx_graph(tmp_path / "junk.onnx")
        with pytest.raises(TypeError, match="path"):
            writer.add_onnx_graph(3)
    graph_def = legacy_reader(tmp_path / "run").Graph()
    assert {n.name: n.op for n in graph_def.node}["relu"] == "Relu"


# ---- tbparse -------------------------------------------------------------------------------


def test_tbparse_reads_our_tensors_as_torchs(tmp_path):
    """PR curves, tensors and meshes through tbparse's ``tensors`` (no TensorFlow needed)."""
    tbparse = pytest.importorskip("tbparse")
    rng = np.random.default_rng(8)
    labels, scores = rng.integers(0, 2, 400), rng.random(400)
    vertices, _, faces = _mesh_data()
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)

    def log(writer):
        writer.add_pr_curve("pr", labels, scores, 1, num_thresholds=9)
        writer.add_tensor("t", tensor, 1)
        writer.add_mesh("m", torch.as_tensor(vertices), faces=torch.as_tensor(faces),
                        global_step=1)  # fmt: skip

    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        log(writer)
    _torch(tmp_path / "torch", log)
    frames = [tbparse.SummaryReader(str(tmp_path / run)).tensors for run in ("ours", "torch")]
    rows = [{tag: (step, np.asarray(value)) for step, tag, value in frame.itertuples(index=False)}
            for frame in frames]  # fmt: skip
    ours, theirs = rows
    assert set(ours) == set(theirs) == {"pr", "t", "m_VERTEX", "m_FACE"}
    for tag in ours:
        assert ours[tag][0] == theirs[tag][0] == 1
        np.testing.assert_array_equal(ours[tag][1], theirs[tag][1], err_msg=tag)


def test_a_large_tensor_goes_as_raw_bytes_and_reads_back(tmp_path):
    from gpu_summary.summaries import tensor as tensor_summaries

    values = np.arange(tensor_summaries.TYPED_FIELD_MOST + 7, dtype=np.float16).reshape(-1, 1)
    flags = np.arange(values.size) % 3 == 0
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_tensor("half", values, 0)
        writer.add_tensor("flags", flags, 0)
    reader = legacy_reader(tmp_path)
    for tag, want in (("half", values), ("flags", flags)):
        (event,) = reader.Tensors(tag)
        assert event.tensor_proto.tensor_content  # raw bytes, not a typed field
        np.testing.assert_array_equal(tensor_util.make_ndarray(event.tensor_proto), want)
