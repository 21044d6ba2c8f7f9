"""``gpu_summary.summary``: the seed document's ``flow.summary`` examples, run as written (minus
OneFlow's job decorators; ``np.frombuffer`` for NumPy 2's removed ``np.fromstring``), read back
through TensorBoard's own readers."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image
from tensorboard.compat.proto import summary_pb2 as tb_summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata

import gpu_summary.summary as summary
from conftest import legacy_reader, plugin_reader, tensor_values
from gpu_summary.proto import summary_pb2

LAYERS = [
    {"name": "x", "class_name": "InputLayer", "config": {"shape": [None, 4]}},
    {"name": "dense", "class_name": "Dense", "config": {"units": 2}, "inbound_nodes": ["x"]},
]


@pytest.fixture(autouse=True)
def _no_default_writer():
    summary.close_summary_writer()
    yield
    summary.close_summary_writer()


def _int8(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.int8)


def test_the_seed_examples_read_back(tmp_path):
    logdir = str(tmp_path)
    summary.create_summary_writer(logdir)

    # 生成结构图日志 (the model is an argument here: there is no OneFlow job to take it from)
    graph = summary.Graph(logdir)
    graph.write_structure_graph(LAYERS)

    # 生成标量数据日志: ScalarJob([value], [step], [tag])
    value = np.array([1], dtype=np.float32)
    step = np.array([1], dtype=np.int64)
    tag = _int8("scalar")
    summary.scalar([value], [step], [tag])

    # 文本数据日志: PbJob([value], [step]) with the text format of summary.text(net)
    net = ["vgg16", "resnet50", "mask-rcnn", "yolov3"]
    pb = summary.text(net)
    for i in range(2):
        summary.pb([_int8(str(pb))], [np.array([i], dtype=np.int64)])

    # 图像数据日志: ImageJob([images], [step], [tag]), uint8 RGB batch N×H×W×C
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 32, 48, 3), dtype=np.uint8)
    summary.image([images], [step], [_int8("image")])

    # 统计分析数据日志: HistogramJob([value], [step], [tag])
    values = np.random.default_rng(1).random((100, 100, 100)).astype(np.float32)
    summary.histogram([values], [step], [_int8("histogram")])

    # 超参分析日志: the seed's dict, "accuracy" outside its domain as in the document
    hparams = {
        summary.HParam("learning_rate", summary.RealRange(1e-2, 1e-1)): 0.02,
        summary.HParam("dense_layers", summary.IntegerRange(2, 7)): 5,
        summary.HParam("optimizer", summary.ValueSet(["adam", "sgd"])): "adam",
        summary.HParam("accuracy", summary.RealRange(1e-2, 1e-1)): 0.001,
        summary.HParam("magic", summary.ValueSet([False, True])): True,
        summary.Metric("loss", float): 0.02,
        "dropout": 0.6,
    }
    with pytest.warns(UserWarning, match=r"'accuracy' = 0.001 is outside its domain"):
        pb2 = summary.hparams(hparams)
    summary.pb([_int8(str(pb2))], [np.array([3], dtype=np.int64)])
    summary.flush_summary_writer()
    summary.close_summary_writer()

    acc = legacy_reader(logdir)
    assert [(e.step, e.value) for e in acc.Scalars("scalar")] == [(1, 1.0)]
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(3, pytest.approx(0.02))]
    (histo,) = acc.Histograms("histogram")
    assert histo.step == 1
    assert histo.histogram_value.num == values.size
    assert histo.histogram_value.min == values.min() and histo.histogram_value.max == values.max()
    assert [node.name for node in acc.Graph().node] == ["x", "dense"]
    structure = json.loads((tmp_path / "graph" / "structure_graph.json").read_text())
    assert [layer["name"] for layer in structure["config"]["layers"]] == ["x", "dense"]

    texts = tensor_values(logdir, "text")
    assert [step for step, _ in texts] == [0, 1]
    assert [s.decode() for s in texts[0][1]] == net

    plugins = plugin_reader(logdir)
    assert plugins.SummaryMetadata("image").plugin_data.plugin_name == "images"
    (event,) = plugins.Tensors("image")
    width, height, *pngs = event.tensor_proto.string_val
    assert (int(width), int(height), len(pngs)) == (48, 32, 2)
    for png, want in zip(pngs, images, strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png))), want)

    content = plugins.PluginTagToContent("hparams")
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(infos) == {"learning_rate", "dense_layers", "optimizer", "accuracy", "magic",
                          "dropout"}  # fmt: skip
    assert infos["accuracy"].domain_interval.min_value == 1e-2
    assert [m.name.tag for m in experiment.metric_infos] == ["loss"]
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["accuracy"].number_value == 0.001
    assert start.hparams["magic"].bool_value is True
    assert start.hparams["optimizer"].string_value == "adam"
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS


@pytest.mark.parametrize(
    "tag",
    ["loss", b"loss", _int8("loss"), np.frombuffer(b"loss\0\0\0\0", np.uint8), [_int8("loss")]],
    ids=["str", "bytes", "int8", "uint8-nul-padded", "list-of-int8"],
)
@pytest.mark.parametrize(
    "step",
    [7, np.int64(7), np.array([7]), [np.array([7], np.int64)], np.array([[7]], np.int32)],
    ids=["int", "np.int64", "array", "list-of-array", "2-d-one-element"],
)
def test_argument_forms(tmp_path, tag, step):
    summary.create_summary_writer(tmp_path)
    summary.scalar(np.array([2.5], np.float64), step, tag)
    summary.close_summary_writer()
    assert [(e.step, e.value) for e in legacy_reader(tmp_path).Scalars("loss")] == [(7, 2.5)]


def test_steps_default_to_one_more_than_the_last(tmp_path):
    summary.create_summary_writer(tmp_path)
    for value in (1.0, 2.0, 3.0):
        summary.scalar(value, None, "loss")
    summary.histogram(np.arange(10), None, "h")
    summary.close_summary_writer()
    acc = legacy_reader(tmp_path)
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2]
    assert [e.step for e in acc.Histograms("h")] == [0]


def test_the_seeds_calls_take_windows(tmp_path):
    summary.create_summary_writer(tmp_path)
    for step in range(5):
        summary.scalar(float(step), step, "loss", window=2, reduce=("mean", "max"))
        summary.histogram(np.full(10, step), step, "h", window=2)
    summary.close_summary_writer()  # the open window (step 4) written here
    acc = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(1, 0.5), (3, 2.5), (4, 4.0)]
    assert [(e.step, e.value) for e in acc.Scalars("loss/max")] == [(1, 1.0), (3, 3.0), (4, 4.0)]
    assert [(e.step, e.histogram_value.num) for e in acc.Histograms("h")] == [
        (1, 20.0), (3, 20.0), (4, 10.0)]  # fmt: skip


def test_pb_takes_messages_bytes_and_foreign_summaries(tmp_path):
    summary.create_summary_writer(tmp_path)
    message = summary.text(["one"], tag="as_message")
    summary.pb(message, 1)
    serialized = summary.text(["two"], tag="as_bytes").SerializeToString()
    summary.pb(np.frombuffer(serialized, np.int8), 2)
    summary.pb(str(summary.text("three", tag="as_str")), 3)
    foreign = tb_summary_pb2.Summary()
    foreign.value.add(tag="tensorboards_own", simple_value=4.0)
    summary.pb(foreign, 4)
    summary.close_summary_writer()
    assert tensor_values(tmp_path, "as_message")[0][1][0] == b"one"
    assert tensor_values(tmp_path, "as_bytes")[0][0] == 2
    assert tensor_values(tmp_path, "as_str")[0][1] == b"three"  # one string: a scalar tensor
    assert [(e.step, e.value) for e in legacy_reader(tmp_path).Scalars("tensorboards_own")] == [
        (4, 4.0)
    ]


def test_images_one_and_many(tmp_path):
    summary.create_summary_writer(tmp_path)
    one = np.zeros((20, 30, 4), np.uint8)
    one[..., 3] = 255
    summary.image(one, 0, "rgba")
    summary.image(np.ones((3, 40, 80, 1), np.float32), 0, "gray", max_size=20)
    summary.close_summary_writer()
    plugins = plugin_reader(tmp_path)
    width, height, png = plugins.Tensors("rgba")[0].tensor_proto.string_val
    assert Image.open(io.BytesIO(png)).mode == "RGBA" and (width, height) == (b"30", b"20")
    width, height, *pngs = plugins.Tensors("gray")[0].tensor_proto.string_val
    assert (width, height, len(pngs)) == (b"20", b"10", 3)


def test_module_functions_need_a_writer():
    for call in (
        lambda: summary.scalar(1.0, 0, "x"),
        lambda: summary.histogram([1.0], 0, "x"),
        lambda: summary.pb(summary.text(["a"]), 0),
        summary.flush_summary_writer,
    ):
        with pytest.raises(RuntimeError, match=r"create_summary_writer\(logdir\)"):
            call()


def test_a_new_writer_closes_the_previous_one(tmp_path):
    first = summary.create_summary_writer(tmp_path / "a")
    summary.scalar(1.0, 0, "x")
    second = summary.create_summary_writer(tmp_path / "b")
    assert summary.default_writer() is second
    assert first.closed  # closed: everything it had is in its file
    assert [e.value for e in legacy_reader(tmp_path / "a").Scalars("x")] == [1.0]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: summary.scalar(1.0, 0, None), ValueError, "tag is required"),
        (lambda: summary.scalar(1.0, 0, ""), ValueError, "tag must not be empty"),
        (lambda: summary.scalar(1.0, 0, np.array([1.5])), TypeError, "int8 or uint8"),
        (lambda: summary.scalar(1.0, 0, b"\xff\xfe"), ValueError, "not UTF-8"),
        (lambda: summary.scalar(1.0, np.array([1, 2]), "x"), ValueError, "step must hold one"),
        (lambda: summary.scalar(1.0, 1.5, "x"), TypeError, "step must be an int"),
        (lambda: summary.scalar(np.ones(3), 0, "x"), ValueError, "single number"),
        (lambda: summary.image(np.zeros((4, 4)), 0, "x"), ValueError, "N×H×W×C"),
        (lambda: summary.image(np.zeros((1, 4, 4, 2)), 0, "x"), ValueError, "channels"),
        (lambda: summary.pb(_int8("not a summary {"), 0), ValueError, "text format"),
        (lambda: summary.pb(np.zeros(3, np.float32), 0), TypeError, "int8/uint8"),
        (lambda: summary.pb(12, 0), TypeError, "Summary message"),
        (lambda: summary.pb(summary_pb2.Summary(), 0), ValueError, "holds no values"),
        (lambda: summary.text([]), ValueError, "non-empty list"),
        (lambda: summary.text(["a", 3]), TypeError, "found a int"),
        (lambda: summary.hparams({3: 1.0}), TypeError, "keys must be str, HParam or Metric"),
        (lambda: summary.hparams({"a": [1]}), TypeError, "str, bool or number"),
    ],
)
def test_bad_arguments_are_refused_and_nothing_is_written(tmp_path, call, error, match):
    writer = summary.create_summary_writer(tmp_path)
    with pytest.raises(error, match=match):
        call()
    summary.close_summary_writer()
    assert legacy_reader(tmp_path).Tags()["scalars"] == []
    assert plugin_reader(tmp_path).Tags()["tensors"] == []
    assert writer.file_path is not None


def test_graph_needs_a_model_and_writes_once(tmp_path):
    graph = summary.Graph(tmp_path / "own")
    with pytest.raises(TypeError, match="needs the model"):
        graph.write_structure_graph()
    graph.write_structure_graph(LAYERS)  # no default writer: a writer of its own
    with pytest.raises(ValueError, match="already wrote"):
        graph.write_structure_graph(LAYERS)
    assert [node.name for node in legacy_reader(tmp_path / "own").Graph().node] == ["x", "dense"]
    with pytest.raises(RuntimeError, match="create_summary_writer"):
        summary.Graph().write_structure_graph(LAYERS)  # no logdir and no default writer
    writer = summary.create_summary_writer(tmp_path / "shared")
    summary.Graph().write_structure_graph(LAYERS)  # the default writer's run and file
    summary.close_summary_writer()
    assert [p.name for p in (tmp_path / "shared").glob("events.*")] == [
        writer.file_path.rsplit("/", 1)[1]
    ]
