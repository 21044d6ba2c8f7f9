"""add_hparams: read back by TensorBoard's hparams parsers and served by a live dashboard."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from tensorboard.plugins.hparams import api_pb2, metadata

import gpu_summary as gs
from conftest import legacy_reader, plugin_reader
from gpu_summary._events.records import read_records
from support.tb_server import poll_post, tensorboard

SEED_HPARAMS = {  # the seed document's example, with "accuracy" inside its domain
    gs.HParam("learning_rate", gs.RealRange(1e-2, 1e-1)): 0.02,
    gs.HParam("dense_layers", gs.IntegerRange(2, 7)): 5,
    gs.HParam("optimizer", gs.ValueSet(["adam", "sgd"])): "adam",
    gs.HParam("accuracy", gs.RealRange(1e-2, 1e-1)): 0.05,
    gs.HParam("magic", gs.ValueSet([False, True])): True,
    gs.Metric("loss", float): 0.02,
    "dropout": 0.6,
}


LAYERS = gs.HParam("layers", gs.IntegerRange(2, 7))


def _content(logdir):
    return plugin_reader(logdir).PluginTagToContent("hparams")


def test_experiment_session_and_metric_round_trip(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams(
            SEED_HPARAMS, {"accuracy/val": None, gs.Metric("steps", int): 7}, run_name="."
        )
        writer.add_scalar("loss", 0.01, 5)
    content = _content(tmp_path)
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    infos = {info.name: info for info in experiment.hparam_infos}
    assert list(infos) == [
        "learning_rate",
        "dense_layers",
        "optimizer",
        "accuracy",
        "magic",
        "dropout",
    ]
    assert infos["learning_rate"].type == api_pb2.DATA_TYPE_FLOAT64
    assert infos["learning_rate"].domain_interval.min_value == 1e-2
    assert infos["learning_rate"].domain_interval.max_value == 1e-1
    assert infos["dense_layers"].domain_interval.max_value == 7.0
    assert infos["optimizer"].type == api_pb2.DATA_TYPE_STRING
    assert [v.string_value for v in infos["optimizer"].domain_discrete.values] == ["adam", "sgd"]
    assert infos["magic"].type == api_pb2.DATA_TYPE_BOOL
    assert [v.bool_value for v in infos["magic"].domain_discrete.values] == [False, True]
    assert infos["dropout"].type == api_pb2.DATA_TYPE_FLOAT64
    assert not infos["dropout"].HasField("domain_interval")
    assert [m.name.tag for m in experiment.metric_infos] == ["loss", "accuracy/val", "steps"]

    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    assert start.hparams["magic"].WhichOneof("kind") == "bool_value"  # a bool stays a bool
    assert start.hparams["magic"].bool_value is True
    assert start.hparams["optimizer"].string_value == "adam"
    assert start.hparams["dense_layers"].number_value == 5
    assert start.hparams["learning_rate"].number_value == 0.02
    end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
    assert end.status == api_pb2.STATUS_SUCCESS
    assert end.end_time_secs >= start.start_time_secs

    scalars = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in scalars.Scalars("loss")] == [
        (0, pytest.approx(0.02)),
        (5, pytest.approx(0.01)),
    ]
    assert [e.value for e in scalars.Scalars("steps")] == [7.0]
    assert os.listdir(tmp_path) == [os.path.basename(writer.file_path)]  # no extra run


def test_a_failing_with_block_ends_the_session_as_failure(tmp_path):
    with pytest.raises(RuntimeError), gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams({"lr": 0.1}, run_name=".")
        raise RuntimeError("training diverged")
    end = metadata.parse_session_end_info_plugin_data(
        _content(tmp_path)[metadata.SESSION_END_INFO_TAG]
    )
    assert end.status == api_pb2.STATUS_FAILURE


def test_a_dropped_writer_still_ends_its_session(tmp_path):
    code = textwrap.dedent(f"""
        import gpu_summary as gs
        writer = gs.SummaryWriter({str(tmp_path)!r})
        writer.add_hparams({{"lr": 0.1}}, run_name=".")
        # no close(): the interpreter exits with the writer open
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    content = _content(tmp_path)
    assert metadata.SESSION_END_INFO_TAG in content


def test_repeated_calls_log_metrics_and_refuse_other_hparams(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams({"lr": 0.1, "opt": "sgd"}, {"loss": 1.0}, run_name=".")
        writer.add_hparams({"lr": 0.1, "opt": "sgd"}, {"loss": 0.5}, run_name=".", global_step=1)
        with pytest.raises(ValueError, match="new SummaryWriter in its own logdir"):
            writer.add_hparams({"lr": 0.2, "opt": "sgd"}, {"loss": 0.4}, run_name=".")
        with pytest.raises(ValueError, match="not declared"):
            writer.add_hparams({"lr": 0.1, "opt": "sgd"}, {"acc": 0.4}, run_name=".")
    assert [e.value for e in legacy_reader(tmp_path).Scalars("loss")] == [1.0, 0.5]
    assert sum(1 for tag in _content(tmp_path) if tag == metadata.EXPERIMENT_TAG) == 1


@pytest.mark.parametrize(
    "hparams,error,match",
    [
        # the seed's own example: accuracy 0.001 lies outside RealRange(1e-2, 1e-1)
        ({**SEED_HPARAMS, gs.HParam("accuracy", gs.RealRange(1e-2, 1e-1)): 0.001},
         ValueError, "'accuracy' = 0.001 is outside its domain"),
        ({LAYERS: 2.5}, TypeError, "'layers' takes an integer"),
        ({LAYERS: True}, TypeError, "'layers' takes an integer"),
        ({LAYERS: 8}, ValueError, "outside its domain"),
        ({gs.HParam("lr", gs.RealRange(0, 1)): "0.5"}, TypeError, "'lr' takes a real number"),
        ({gs.HParam("opt", gs.ValueSet(["adam"])): "sgd"}, ValueError, "'opt' = 'sgd' is outside"),
        ({gs.HParam("flag", gs.ValueSet([False, True])): 1}, TypeError, "'flag' takes a bool"),
        ({gs.HParam("n", gs.ValueSet([1, 2])): True}, TypeError, "'n' takes a float64"),
        ({"lr": 0.1, gs.HParam("lr"): 0.2}, ValueError, "'lr' is named twice"),
        ({"loss": 0.1, gs.Metric("loss"): 0.2}, ValueError, "'loss' is named twice"),
        ({3: 0.1}, TypeError, "keys must be str, HParam or Metric"),
        ({"lr": [0.1]}, TypeError, "'lr' must be a str, bool or number"),
        ({"lr": float("nan")}, ValueError, "'lr' = nan: values must be finite float64"),
        ({gs.Metric("loss"): "low"}, TypeError, "metric 'loss' takes a real number"),
        ({gs.Metric("loss"): 0.1}, ValueError, "no hyperparameter"),
        ([("lr", 0.1)], TypeError, "hparam_dict must be a dict"),
    ],
)  # fmt: skip
def test_bad_hparams_are_refused_and_nothing_is_written(tmp_path, hparams, error, match):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            writer.add_hparams(hparams)
        writer.add_scalar("after", 1.0, 0)  # the writer still works
        path = writer.file_path
    records, problems = read_records(path)
    # the file-version record and "after": no hparams, no session end, no run of its own
    assert len(records) == 2 and not problems
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []


@pytest.mark.parametrize(
    "run_name,match",
    [
        ("r" * 300, "is 300 bytes, more than the 255"),
        ("ok/" + "é" * 130, "is 260 bytes, more than the 255"),
        ("/".join(["d" * 200] * 21), "path is 4[0-9]{3} bytes; with an event file's name"),
        ("a_file", "a file is at"),
        ("a_file/below", "a file is at"),
    ],
)
def test_a_run_name_that_cannot_be_a_folder_is_refused_at_the_call(tmp_path, run_name, match):
    (tmp_path / "a_file").write_text("not a folder")
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(
            ValueError, match=rf"^run_name {re.escape(repr(run_name)[:60])}.*{match}"
        ):
            writer.add_hparams({"lr": 0.1}, {"loss": 1.0}, run_name=run_name)
        writer.add_hparams({"lr": 0.2}, {"loss": 0.5}, run_name="next")  # nothing deferred
        writer.flush()
    assert legacy_reader(tmp_path / "next").Scalars("loss")[0].value == 0.5
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["next"]


@pytest.mark.parametrize(
    "make,error,match",
    [
        (lambda: gs.RealRange(2.0, 1.0), ValueError, "must not exceed"),
        (lambda: gs.RealRange(0.0, float("inf")), ValueError, "finite"),
        (lambda: gs.IntegerRange(0, 2.5), TypeError, "integers"),
        (lambda: gs.ValueSet([]), ValueError, "at least one"),
        (lambda: gs.ValueSet([1, "a"]), TypeError, "one kind"),
        (lambda: gs.ValueSet([True, 1]), TypeError, "one kind"),
        (lambda: gs.ValueSet("ab"), TypeError, "list of values"),
        (lambda: gs.HParam(3), TypeError, "names must be str"),
        (lambda: gs.HParam(""), ValueError, "must not be empty"),
        (lambda: gs.HParam("x", (0, 1)), TypeError, "domain must be"),
        (lambda: gs.Metric("m", str), TypeError, "dtype must be float or int"),
    ],
)
def test_bad_domains(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_domain_values_are_plain_and_hashable():
    assert gs.ValueSet([np.int64(1), 2, 2]).values == (1, 2)
    assert len({gs.HParam("a", gs.ValueSet(["x"])), gs.HParam("a", gs.ValueSet(["x"]))}) == 1


@pytest.mark.slow
@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_dashboard_lists_the_session(tmp_path, load_fast):
    for run, (lr, opt, loss) in {"a": (0.02, "adam", 0.3), "b": (0.05, "sgd", 0.7)}.items():
        with gs.SummaryWriter(tmp_path / run) as writer:
            writer.add_hparams(
                {
                    gs.HParam("lr", gs.RealRange(1e-2, 1e-1)): lr,
                    gs.HParam("opt", gs.ValueSet(["adam", "sgd"])): opt,
                    gs.HParam("magic"): run == "a",  # a bool stays a bool under HParam
                },
                {gs.Metric("loss"): None},
                run_name=".",
            )
            for step in range(3):
                writer.add_scalar("loss", loss + step, step)
    with tensorboard(tmp_path, load_fast) as base:
        experiment = poll_post(
            base, "/data/plugin/hparams/experiment", {"experimentName": ""},
            lambda d: len(d.get("hparamInfos", [])) == 3,
        )  # fmt: skip
        infos = {info["name"]: info for info in experiment["hparamInfos"]}
        assert infos["lr"]["domainInterval"] == {"minValue": 0.01, "maxValue": 0.1}
        assert infos["opt"]["domainDiscrete"] == ["adam", "sgd"]
        assert infos["magic"]["type"] == "DATA_TYPE_BOOL"
        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_SUCCESS"],
            "colParams": [{"hparam": "lr"}, {"hparam": "opt"}, {"metric": {"tag": "loss"}}],
            "startIndex": 0,
            "sliceSize": 10,
        }
        groups = poll_post(
            base, "/data/plugin/hparams/session_groups", request,
            lambda d: len(d.get("sessionGroups", [])) == 2,
        )["sessionGroups"]  # fmt: skip
    by_run = {g["sessions"][0]["name"]: g for g in groups}
    assert by_run["a"]["hparams"] == {"lr": 0.02, "opt": "adam", "magic": True}
    assert by_run["b"]["hparams"]["opt"] == "sgd"
    assert by_run["a"]["metricValues"][0]["value"] == pytest.approx(2.3)  # the last loss
    assert by_run["b"]["metricValues"][0]["trainingStep"] == 2
    assert by_run["a"]["sessions"][0]["status"] == "STATUS_SUCCESS"
