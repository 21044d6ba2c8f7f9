"""The generated modules: current with protos/*.proto, faithful to TensorBoard's field numbers,
and importable under the oldest and newest protobuf that pyproject.toml allows."""

from __future__ import annotations

import importlib
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest
from google.protobuf import descriptor_pb2

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = sorted((ROOT / "protos").glob("*.proto"))


def _module(proto: pathlib.Path):
    return importlib.import_module(f"gpu_summary.proto.{proto.stem}_pb2")


def test_every_proto_has_a_module_and_back():
    generated = {p.stem.removesuffix("_pb2") for p in (ROOT / "gpu_summary/proto").glob("*_pb2.py")}
    assert generated == {p.stem for p in PROTOS}


def _without_json_names(file_proto):
    """Descriptor sets carry json_name, generated modules do not; neither is on the wire."""

    def strip(messages):
        for message in messages:
            for field in message.field:
                field.ClearField("json_name")
            strip(message.nested_type)

    strip(file_proto.message_type)
    return file_proto


def test_generated_modules_are_current(tmp_path):
    """Compile the sources with protoc and compare descriptors with the checked-in modules.

    Fails after a .proto edit without `python scripts/gen_protos.py`.
    """
    grpc_tools = pytest.importorskip("grpc_tools.protoc")
    out = tmp_path / "set.pb"
    args = [
        "protoc",
        "-Igpu_summary/proto=" + str(ROOT / "protos"),
        "-I" + str(pathlib.Path(grpc_tools.__file__).parent / "_proto"),
        f"--descriptor_set_out={out}",
        *(f"gpu_summary/proto/{p.name}" for p in PROTOS),
    ]
    assert grpc_tools.main(args) == 0
    compiled = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    by_name = {f.name: _without_json_names(f) for f in compiled.file}
    for proto in PROTOS:
        embedded = descriptor_pb2.FileDescriptorProto.FromString(
            _module(proto).DESCRIPTOR.serialized_pb
        )
        assert _without_json_names(embedded) == by_name[f"gpu_summary/proto/{proto.name}"], (
            f"gpu_summary/proto/{proto.stem}_pb2.py is stale: run python scripts/gen_protos.py"
        )


def _fields(descriptor):
    return {
        f.name: (f.number, f.type, f.label if hasattr(f, "label") else None)
        for f in descriptor.fields
    }


@pytest.mark.parametrize(
    "ours,theirs",
    [
        ("event_pb2.Event", "event_pb2.Event"),
        ("event_pb2.SessionLog", "event_pb2.SessionLog"),
        ("event_pb2.LogMessage", "event_pb2.LogMessage"),
        ("event_pb2.TaggedRunMetadata", "event_pb2.TaggedRunMetadata"),
        ("event_pb2.SourceMetadata", "event_pb2.SourceMetadata"),
        ("summary_pb2.Summary", "summary_pb2.Summary"),
        ("summary_pb2.Summary.Value", "summary_pb2.Summary.Value"),
        ("summary_pb2.Summary.Image", "summary_pb2.Summary.Image"),
        ("summary_pb2.Summary.Audio", "summary_pb2.Summary.Audio"),
        ("summary_pb2.SummaryMetadata", "summary_pb2.SummaryMetadata"),
        ("summary_pb2.SummaryMetadata.PluginData", "summary_pb2.SummaryMetadata.PluginData"),
        ("histogram_pb2.HistogramProto", "histogram_pb2.HistogramProto"),
        ("tensor_pb2.TensorProto", "tensor_pb2.TensorProto"),
        ("tensor_shape_pb2.TensorShapeProto", "tensor_shape_pb2.TensorShapeProto"),
        ("tensor_shape_pb2.TensorShapeProto.Dim", "tensor_shape_pb2.TensorShapeProto.Dim"),
        ("graph_pb2.GraphDef", "graph_pb2.GraphDef"),
        ("graph_pb2.NodeDef", "node_def_pb2.NodeDef"),
        ("graph_pb2.AttrValue", "attr_value_pb2.AttrValue"),
        ("graph_pb2.AttrValue.ListValue", "attr_value_pb2.AttrValue.ListValue"),
        ("graph_pb2.NameAttrList", "attr_value_pb2.NameAttrList"),
        ("graph_pb2.VersionDef", "versions_pb2.VersionDef"),
        ("hparams_pb2.HParamsPluginData", "plugins.hparams.plugin_data_pb2.HParamsPluginData"),
        ("hparams_pb2.SessionStartInfo", "plugins.hparams.plugin_data_pb2.SessionStartInfo"),
        ("hparams_pb2.SessionEndInfo", "plugins.hparams.plugin_data_pb2.SessionEndInfo"),
        ("hparams_pb2.Experiment", "plugins.hparams.api_pb2.Experiment"),
        ("hparams_pb2.HParamInfo", "plugins.hparams.api_pb2.HParamInfo"),
        ("hparams_pb2.Interval", "plugins.hparams.api_pb2.Interval"),
        ("hparams_pb2.MetricName", "plugins.hparams.api_pb2.MetricName"),
        ("hparams_pb2.MetricInfo", "plugins.hparams.api_pb2.MetricInfo"),
        (
            "projector_config_pb2.ProjectorConfig",
            "plugins.projector.projector_config_pb2.ProjectorConfig",
        ),
        (
            "projector_config_pb2.EmbeddingInfo",
            "plugins.projector.projector_config_pb2.EmbeddingInfo",
        ),
        (
            "projector_config_pb2.SpriteMetadata",
            "plugins.projector.projector_config_pb2.SpriteMetadata",
        ),
    ],
)
def test_field_numbers_match_tensorboard(ours, theirs):
    def resolve(package, dotted):
        parts = dotted.split(".")
        split = next(i for i, p in enumerate(parts) if p.endswith("_pb2")) + 1
        obj = importlib.import_module(".".join([package, *parts[:split]]))
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj.DESCRIPTOR

    mine = _fields(resolve("gpu_summary.proto", ours))
    package = "tensorboard" if theirs.startswith("plugins.") else "tensorboard.compat.proto"
    reference = _fields(resolve(package, theirs))
    for name, spec in mine.items():
        assert reference[name] == spec, name
    # We may leave out fields we never write (resource handles, float8; a graph's function
    # library, debug info and full types), nothing else.
    left_out = {"resource_handle_val", "variant_val", "float8_val", "library", "debug_info"}
    left_out |= {"experimental_debug_info", "experimental_type"}
    assert set(reference) - set(mine) <= left_out


@pytest.mark.parametrize(
    "module,name",
    [
        ("image.plugin_data_pb2", "ImagePluginData"),
        ("text.plugin_data_pb2", "TextPluginData"),
        ("histogram.plugin_data_pb2", "HistogramPluginData"),
        ("scalar.plugin_data_pb2", "ScalarPluginData"),
        ("pr_curve.plugin_data_pb2", "PrCurvePluginData"),
        ("audio.plugin_data_pb2", "AudioPluginData"),
        ("mesh.plugin_data_pb2", "MeshPluginData"),
        ("custom_scalar.layout_pb2", "Layout"),
        ("custom_scalar.layout_pb2", "Category"),
        ("custom_scalar.layout_pb2", "Chart"),
        ("custom_scalar.layout_pb2", "MultilineChartContent"),
        ("custom_scalar.layout_pb2", "MarginChartContent"),
        ("custom_scalar.layout_pb2", "MarginChartContent.Series"),
    ],
)
def test_plugin_messages_match_tensorboard(module, name):
    """Every field of every plugin message, and every value of their enums."""
    ours_module = "layout_pb2" if module.endswith("layout_pb2") else "plugin_data_pb2"
    mine = importlib.import_module(f"gpu_summary.proto.{ours_module}")
    theirs = importlib.import_module(f"tensorboard.plugins.{module}")
    for part in name.split("."):
        mine, theirs = getattr(mine, part), getattr(theirs, part)
    assert _fields(mine.DESCRIPTOR) == _fields(theirs.DESCRIPTOR)
    for enum in mine.DESCRIPTOR.enum_types:
        reference = theirs.DESCRIPTOR.enum_types_by_name[enum.name]
        assert {v.name: v.number for v in enum.values} == {
            v.name: v.number for v in reference.values
        }
    # The bytes agree too: a message of ours parses as theirs, field for field.
    if name == "MeshPluginData":
        sample = mine(version=0, name="m", content_type=2, json_config="{}", shape=[1, 4, 3],
                      components=7)  # fmt: skip
        assert theirs.FromString(sample.SerializeToString()).shape == [1, 4, 3]


def test_enums_match_tensorboard():
    from tensorboard.compat.proto import summary_pb2 as tb_summary
    from tensorboard.compat.proto import types_pb2 as tb_types

    from gpu_summary.proto import summary_pb2, types_pb2

    for value in types_pb2.DataType.DESCRIPTOR.values:
        assert tb_types.DataType.Value(value.name) == value.number
    for value in summary_pb2.DataClass.DESCRIPTOR.values:
        assert tb_summary.DataClass.Value(value.name) == value.number
    from tensorboard.plugins.hparams import api_pb2 as tb_hparams

    from gpu_summary.proto import hparams_pb2

    for enum in ("DataType", "DatasetType", "Status"):
        theirs = getattr(tb_hparams, enum)
        for value in getattr(hparams_pb2, enum).DESCRIPTOR.values:
            assert theirs.Value(value.name) == value.number, (enum, value.name)


def _allowed_protobuf_range():
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'"protobuf>=([\d.]+),<(\d+)"', text)
    assert match, "pyproject.toml must pin protobuf as >=X,<Y"
    return match.group(1), match.group(2)


@pytest.mark.slow
@pytest.mark.parametrize("end", ["oldest", "newest"])
def test_generated_code_imports_under_allowed_protobuf(tmp_path, end):
    oldest, below = _allowed_protobuf_range()
    requirement = f"protobuf=={oldest}.0" if oldest.count(".") == 1 else f"protobuf=={oldest}"
    if end == "newest":
        requirement = f"protobuf<{below}"
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "--target",
            str(target),
            requirement,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not install {requirement} from the package index: {proc.stderr[-300:]}")
    code = textwrap.dedent("""
        import sys, google.protobuf
        from gpu_summary.proto import event_pb2, summary_pb2, tensor_pb2, histogram_pb2
        from gpu_summary.proto import plugin_data_pb2, types_pb2, tensor_shape_pb2
        from gpu_summary.proto import graph_pb2, hparams_pb2
        hparams_pb2.SessionStartInfo().hparams["lr"].number_value = 0.5
        graph_pb2.NodeDef().attr["k"].list.i.extend([1, 2])
        e = event_pb2.Event(wall_time=1.5, step=3)
        v = e.summary.value.add(tag="t", simple_value=2.0)
        h = e.summary.value.add(tag="h").histo
        h.bucket_limit.extend([1.0, 2.0]); h.bucket.extend([3.0, 4.0])
        sys.stdout.write(google.protobuf.__version__ + " " + e.SerializeToString().hex())
    """)
    env = {"PYTHONPATH": f"{target}:{ROOT}", "PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1"}
    # UserWarning: what protobuf raises about gencode/runtime versions. (Old protobuf releases
    # emit DeprecationWarnings of their own on new Pythons; those are not about our modules.)
    proc = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    version, wire = proc.stdout.split()
    if end == "oldest":
        assert version == requirement.split("==")[1]
    from gpu_summary.proto import event_pb2

    expected = event_pb2.Event(wall_time=1.5, step=3)
    expected.summary.value.add(tag="t", simple_value=2.0)
    h = expected.summary.value.add(tag="h").histo
    h.bucket_limit.extend([1.0, 2.0])
    h.bucket.extend([3.0, 4.0])
    assert bytes.fromhex(wire) == expected.SerializeToString()
