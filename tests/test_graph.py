"""add_graph: GraphDefs read back by TensorBoard, the seed's structure_graph.json, bad models."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import gpu_summary as gs
from gpu_summary._events.records import read_records
from gpu_summary.summaries.graph import attr_value
from support.tb_server import get, poll, tensorboard

# The seed's Keras-style layers: a functional model with a branch and a merge, inbound nodes in
# Keras 2 form, Keras 3 form and as plain names.
LAYERS = [
    {"name": "input_1", "class_name": "InputLayer", "config": {"batch_input_shape": [None, 784]},
     "inbound_nodes": []},
    {"name": "dense", "class_name": "Dense",
     "config": {"units": 128, "activation": "relu", "use_bias": True, "l2": 0.01,
                "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}}},
     "inbound_nodes": [[["input_1", 0, 0, {}]]]},
    {"name": "dropout", "class_name": "Dropout", "config": {"rate": 0.2},
     "inbound_nodes": [{"args": [{"class_name": "__keras_tensor__",
                                  "config": {"keras_history": ["dense", 0, 0]}}],
                        "kwargs": {"training": False}}]},
    {"name": "skip", "class_name": "Dense", "config": {"units": 128}, "inbound_nodes": ["input_1"]},
    {"name": "add", "class_name": "Add", "config": {},
     "inbound_nodes": [[["dropout", 0, 0, {}], ["skip", 0, 0, {}]]]},
    {"name": "logits", "class_name": "Dense", "config": {"units": 10, "kernel_size": [3, 3]},
     "inbound_nodes": [[["add", 0, 0, {}]]]},
]  # fmt: skip
EDGES = {
    "input_1": [],
    "dense": ["input_1"],
    "dropout": ["dense"],
    "skip": ["input_1"],
    "add": ["dropout", "skip"],
    "logits": ["add"],
}


def _graph(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir))
    acc.Reload()
    return acc.Graph()


def _structure(logdir):
    with open(os.path.join(logdir, "graph", "structure_graph.json"), encoding="utf-8") as f:
        return json.load(f)


def test_keras_layers_round_trip(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_graph(LAYERS)
    graph = _graph(tmp_path)
    nodes = {node.name: node for node in graph.node}
    assert {name: list(node.input) for name, node in nodes.items()} == EDGES
    assert nodes["dense"].op == "Dense"
    assert nodes["dense"].attr["units"].i == 128
    assert nodes["dense"].attr["activation"].s == b"relu"
    assert nodes["dense"].attr["use_bias"].b is True
    assert nodes["dense"].attr["l2"].f == pytest.approx(0.01)
    initializer = json.loads(nodes["dense"].attr["kernel_initializer"].s)
    assert initializer == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert list(nodes["logits"].attr["kernel_size"].list.i) == [3, 3]

    structure = _structure(tmp_path)
    assert structure["class_name"] == "Model"
    layers = structure["config"]["layers"]
    assert [layer["name"] for layer in layers] == [layer["name"] for layer in LAYERS]
    assert layers[1]["config"] == LAYERS[1]["config"]
    assert layers[4]["inbound_nodes"] == LAYERS[4]["inbound_nodes"]  # the caller's, verbatim
    assert structure["config"]["input_layers"] == [["input_1", 0, 0]]
    assert structure["config"]["output_layers"] == [["logits", 0, 0]]


def test_later_graphs_replace_the_json_and_the_dashboard_shows_the_latest(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_graph(LAYERS)
        writer.add_graph(LAYERS[:2])
    assert [n.name for n in _graph(tmp_path).node] == ["input_1", "dense"]
    assert len(_structure(tmp_path)["config"]["layers"]) == 2
    assert os.listdir(tmp_path / "graph") == ["structure_graph.json"]  # no temporary left


@pytest.mark.parametrize(
    "model,error,match",
    [
        ([*LAYERS, {"name": "x", "class_name": "Dense", "inbound_nodes": [[["nope", 0, 0, {}]]]}],
         ValueError, "layer 'x' takes input 'nope', which no layer"),
        ([*LAYERS, dict(LAYERS[1])], ValueError, "names layer 'dense' twice"),
        ([{"class_name": "Dense"}], TypeError, "layer 0 needs a non-empty str 'name'"),
        ([{"name": "a"}], TypeError, "layer 'a' needs a non-empty str 'class_name'"),
        ([{"name": "a", "class_name": "Dense", "config": [1]}], TypeError, "'config' must be"),
        ([{"name": "a", "class_name": "D", "inbound_nodes": "b"}], TypeError, "must be a list"),
        (["dense"], TypeError, "layer 0 must be a dict"),
        ([], ValueError, "empty"),
        ({"layers": LAYERS}, TypeError, "model must be a list of layer dicts"),
        ("model.onnx", TypeError, "model must be a list of layer dicts"),
    ],
)  # fmt: skip
def test_bad_models_write_nothing(tmp_path, model, error, match):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            writer.add_graph(model)
        path = writer.file_path
    records, problems = read_records(path)
    assert len(records) == 1 and not problems  # the file-version record only
    assert not (tmp_path / "graph").exists()


def test_attr_values():
    assert attr_value(True).b is True
    assert attr_value(np.int64(7)).i == 7
    assert attr_value(2.5).f == 2.5
    assert attr_value("relu").s == b"relu"
    assert list(attr_value((1, 2)).list.i) == [1, 2]
    assert list(attr_value([1, 2.5]).list.f) == [1.0, 2.5]
    assert list(attr_value(["a", "b"]).list.s) == [b"a", b"b"]
    assert list(attr_value([True, False]).list.b) == [True, False]
    assert json.loads(attr_value({"a": [1, None]}).s) == {"a": [1, None]}
    assert json.loads(attr_value(2**70).s) == 2**70  # beyond int64: kept exactly, as JSON
    assert attr_value(float("nan")).s == b"nan"  # non-finite floats as their text
    assert attr_value(None).s == b"null"


def test_onnx_model(tmp_path):
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="matmul"),
        helper.make_node("Split", ["h"], ["a", "b"], axis=1, num_outputs=2),  # unnamed
        helper.make_node("Add", ["a", "b"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 1])],
        initializer=[weight],
    )
    model = helper.make_model(graph)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_graph(model)
    got = {node.name: (node.op, list(node.input)) for node in _graph(tmp_path).node}
    assert got == {
        "x": ("Input", []),
        "matmul": ("MatMul", ["x"]),
        "Split_1": ("Split", ["matmul"]),
        "add": ("Add", ["Split_1", "Split_1:1"]),
        "relu": ("Relu", ["add"]),
        "output/y": ("Output", ["relu"]),
    }
    split = next(n for n in _graph(tmp_path).node if n.name == "Split_1")
    assert split.attr["axis"].i == 1
    matmul = next(n for n in _graph(tmp_path).node if n.name == "matmul")
    assert json.loads(matmul.attr["weights"].s) == {"W": [4, 3]}
    assert _structure(tmp_path)["config"]["name"] == "tiny"


def _torch():
    return pytest.importorskip("torch", reason="PyTorch is optional; its graph tests need it")


def test_torch_module_traced_with_shapes(tmp_path):
    torch = _torch()

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 2)

        def forward(self, x):
            y = torch.relu(self.conv(x)).mean((2, 3))
            return self.fc(y) + self.fc(y)  # fc called twice: two nodes

    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_graph(Block(), torch.zeros(2, 3, 8, 8))
    nodes = {node.name: node for node in _graph(tmp_path).node}
    assert nodes["conv"].op == "Conv2d" and list(nodes["conv"].input) == ["x"]
    assert list(nodes["conv"].attr["kernel_size"].list.i) == [3, 3]
    assert list(nodes["conv"].attr["weight_shape"].list.i) == [8, 3, 3, 3]
    shape = nodes["conv"].attr["_output_shapes"].list.shape[0]
    assert [d.size for d in shape.dim] == [2, 8, 8, 8]
    fc_calls = [n for n in nodes.values() if n.op == "Linear"]
    assert len(fc_calls) == 2 and len({n.name for n in fc_calls}) == 2
    add = next(n for n in nodes.values() if n.op == "add")
    assert sorted(add.input) == sorted(n.name for n in fc_calls)
    assert list(nodes["output"].input) == [add.name]


def test_torch_module_that_cannot_be_traced_falls_back_to_its_tree(tmp_path):
    torch = _torch()

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU())
            self.head = torch.nn.Linear(4, 1)

        def forward(self, x):
            if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
                x = self.body(x)
            return self.head(x)

    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_graph(Branchy())
    got = {node.name: (node.op, list(node.input)) for node in _graph(tmp_path).node}
    assert got == {
        "body": ("Sequential", []),
        "body/0": ("Linear", []),
        "body/1": ("ReLU", ["body/0"]),
        "head": ("Linear", []),
    }


def test_torch_input_the_model_rejects_writes_nothing(tmp_path):
    torch = _torch()
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="input_to_model could not run through the model"):
            writer.add_graph(torch.nn.Linear(4, 2), torch.zeros(3, 5))
        path = writer.file_path
    records, problems = read_records(path)
    assert len(records) == 1 and not problems
    assert not (tmp_path / "graph").exists()


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_dashboard_serves_the_graph(tmp_path, load_fast):
    with gs.SummaryWriter(tmp_path / "run") as writer:
        writer.add_graph(LAYERS)
    with tensorboard(tmp_path, load_fast) as base:
        text = poll(
            lambda: get(base, "/data/plugin/graphs/graph", run="run", conversions="false").decode(),
            lambda t: 'name: "logits"' in t,
            "graph",
        )
    from google.protobuf import text_format
    from tensorboard.compat.proto import graph_pb2

    graph = text_format.Parse(text, graph_pb2.GraphDef())
    assert {node.name: list(node.input) for node in graph.node} == EDGES
