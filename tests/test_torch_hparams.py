"""``add_hparams`` as torch's: each call a run of its own (a sweep from one writer), read back
by tbparse, TensorBoard's hparams parsers and the live dashboard, equal to torch's writer on
the same calls; tensorboardX's argument positions; ``run_name="."`` for this writer's run."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import api_pb2, metadata

import gpu_summary as gs
from conftest import busy_writer_thread, legacy_reader, plugin_reader
from support.tb_server import poll_post, tensorboard

torch = pytest.importorskip("torch", reason="torch's writer is the reference (pip install torch)")
tbparse = pytest.importorskip("tbparse")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402

TRIALS = [  # (run_name, hparams, metrics, step)
    ("t0", {"lr": 0.1, "bsize": 32, "opt": "adam", "flag": True, "skip": None}, {"acc": 0.5}, 3),
    ("t1", {"lr": 0.2, "bsize": 64, "opt": "sgd", "flag": False, "skip": None}, {"acc": 0.7}, 3),
]
DOMAINS = {"opt": ["adam", "sgd"], "bsize": [32, 64]}


def _sweep(writer_type, logdir, **names):
    with writer_type(str(logdir)) as writer:
        for run, hparams, metrics, step in TRIALS:
            writer.add_hparams(hparams, metrics, DOMAINS, run, step, **names)
            writer.add_scalar("own/loss", 1.0, step)


def _frames(logdir):
    reader = tbparse.SummaryReader(str(logdir), extra_columns={"dir_name"})
    hparams = sorted(map(tuple, reader.hparams[["dir_name", "tag", "value"]].values.tolist()))
    scalars = sorted(
        map(tuple, reader.scalars[["dir_name", "step", "tag", "value"]].values.tolist())
    )
    return hparams, scalars


def _experiment(logdir):
    content = plugin_reader(logdir).PluginTagToContent("hparams")
    experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
    return {
        info.name: (info.type, [v.WhichOneof("kind") for v in info.domain_discrete.values],
                    list(info.domain_discrete.values))
        for info in experiment.hparam_infos
    }, [m.name.tag for m in experiment.metric_infos]  # fmt: skip


def test_a_sweep_from_one_writer_equals_torchs(tmp_path):
    _sweep(TorchWriter, tmp_path / "torch")
    _sweep(gs.SummaryWriter, tmp_path / "ours")
    theirs, ours = _frames(tmp_path / "torch"), _frames(tmp_path / "ours")
    assert ours == theirs
    hparams, scalars = ours
    assert ("t0", "flag", 1.0) in hparams and ("t1", "flag", 0.0) in hparams  # torch's bools
    assert not any(tag == "skip" for _, tag, _ in hparams)  # None: skipped, as torch does
    assert ("t1", 3, "acc", pytest.approx(0.7)) in scalars and ("", 3, "own/loss", 1.0) in scalars
    for run in ("t0", "t1"):
        assert _experiment(tmp_path / "ours" / run) == _experiment(tmp_path / "torch" / run)
    infos, metrics = _experiment(tmp_path / "ours" / "t0")
    assert metrics == ["acc"]
    assert infos["opt"][0] == api_pb2.DATA_TYPE_STRING and infos["opt"][1] == ["string_value"] * 2
    assert infos["flag"][0] == api_pb2.DATA_TYPE_FLOAT64  # torch's isinstance(v, (int, float))
    end = plugin_reader(tmp_path / "ours" / "t0").PluginTagToContent("hparams")
    status = metadata.parse_session_end_info_plugin_data(end[metadata.SESSION_END_INFO_TAG])
    assert status.status == api_pb2.STATUS_SUCCESS


def test_default_run_names_are_the_time_and_never_repeat(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        for trial in range(20):  # faster than the clock's resolution on some machines
            writer.add_hparams({"trial": trial}, {"score": float(trial)})
    runs = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 20
    assert all(float(name.split("_")[0]) > 1e9 for name in runs)  # time.time(), as torch's
    scores = {run: legacy_reader(tmp_path / run).Scalars("score")[0].value for run in runs}
    assert sorted(scores.values()) == [float(t) for t in range(20)]


def test_tensorboardx_positions_and_name(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams({"lr": 0.1}, {"m": 1.0}, "by_position", 7)  # (…, name, global_step)
        writer.add_hparams({"lr": 0.2}, {"m": 2.0}, name="by_keyword", global_step=8)
        with pytest.raises(TypeError, match="give the run's name once"):
            writer.add_hparams({"lr": 0.3}, {"m": 3.0}, run_name="a", name="b")
    assert [(s.step, s.value) for s in legacy_reader(tmp_path / "by_position").Scalars("m")] == [
        (7, 1.0)
    ]
    assert legacy_reader(tmp_path / "by_keyword").Scalars("m")[0].step == 8


def test_values_torch_takes(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams(
            {"t": torch.tensor([0.25]), "n": np.float32(2.0), "h": True},
            {"loss": torch.tensor(0.5)},
            run_name="r",
        )
    hparams, scalars = _frames(tmp_path)
    assert hparams == [("r", "h", 1.0), ("r", "n", 2.0), ("r", "t", 0.25)]
    assert scalars == [("r", 0, "loss", 0.5)]


def test_an_hparam_key_keeps_a_bool(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams({gs.HParam("flag"): True, "lr": 0.1}, {"m": 1.0}, run_name="r")
    infos, _ = _experiment(tmp_path / "r")
    assert infos["flag"][0] == api_pb2.DATA_TYPE_BOOL


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda w: w.add_hparams([("lr", 0.1)], {}), TypeError, "hparam_dict must be a dict"),
        (lambda w: w.add_hparams({"lr": 0.1}, [1]), TypeError, "metric_dict must be a dict"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, {"lr": 0.1}), TypeError, "list of values"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, {"lr": ["a"]}), TypeError, "list of values"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, {"bs": [1]}), TypeError, "gives no value"),
        (lambda w: w.add_hparams({"o": "c"}, {}, {"o": ["a", "b"]}), ValueError, "outside"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, None, "../out"), ValueError, "inside"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, None, "/abs"), ValueError, "inside"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, None, 3), TypeError, "run_name must be"),
        (lambda w: w.add_hparams({"lr": 0.1}, {"m": None}), ValueError, "run_name='.'"),
        (lambda w: w.add_hparams({"lr": [1, 2]}, {}), TypeError, "'lr' must be a str"),
        (lambda w: w.add_hparams({"t": np.ones(2)}, {}), ValueError, "single value"),
        (lambda w: w.add_hparams({"lr": 0.1}, {}, global_step=1.5), TypeError, "step"),
    ],
)  # fmt: skip
def test_bad_calls_raise_at_the_call_and_write_nothing(tmp_path, call, error, match):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            call(writer)
        writer.flush()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []
    assert not (tmp_path.parent / "out").exists() and not os.path.exists("/abs")


def test_run_name_dot_is_this_writers_run(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_hparams({"lr": 0.1}, {"loss": None}, run_name=".")
        writer.add_scalar("loss", 0.25, 4)
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []
    hparams, scalars = _frames(tmp_path)
    assert hparams == [("", "lr", 0.1)] and scalars == [("", 4, "loss", 0.25)]


def test_a_run_of_its_own_is_on_disk_when_the_call_returns(tmp_path):
    run = tmp_path / "run"
    with busy_writer_thread(run) as writer:  # what its thread writes later is not there yet
        writer.add_hparams({"lr": 0.1}, {"acc": 0.5}, run_name="t0", global_step=3)
        assert [(s.step, s.value) for s in legacy_reader(run / "t0").Scalars("acc")] == [(3, 0.5)]
        infos, metrics = _experiment(run / "t0")
        assert list(infos) == ["lr"] and metrics == ["acc"]
        writer.add_hparams({"lr": 0.2}, {"acc": 0.7}, run_name="t1")
        shutil.rmtree(run)  # moved or removed right after the call: nothing of it comes back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        writer.close()
    assert not run.exists()


@pytest.mark.slow
def test_the_dashboard_lists_every_trial_of_a_sweep(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        for trial, lr in enumerate((0.01, 0.02, 0.03)):
            writer.add_hparams({"lr": lr, "opt": "adam"}, {"hparam/acc": 0.1 * trial}, None,
                               f"trial{trial}")  # fmt: skip
    with tensorboard(tmp_path, False) as base:
        request = {
            "experimentName": "",
            "allowedStatuses": ["STATUS_SUCCESS"],
            "colParams": [{"hparam": "lr"}, {"metric": {"tag": "hparam/acc"}}],
            "startIndex": 0,
            "sliceSize": 10,
        }
        groups = poll_post(
            base, "/data/plugin/hparams/session_groups", request,
            lambda d: len(d.get("sessionGroups", [])) == 3,
        )["sessionGroups"]  # fmt: skip
    found = {g["sessions"][0]["name"]: g for g in groups}
    assert sorted(found) == ["trial0", "trial1", "trial2"]
    assert found["trial2"]["hparams"] == {"lr": 0.03, "opt": "adam"}
    assert found["trial2"]["metricValues"][0]["value"] == pytest.approx(0.2)


def test_torchs_hparams_protos_through_the_file_writer_are_written_once(tmp_path):
    """Lightning logs hyperparameters as torch's hparams() protos through the file writer:
    experiment, session start and session end. Ours add no session end of their own."""
    from torch.utils.tensorboard.summary import hparams

    for writer_type, run in ((gs.SummaryWriter, "ours"), (TorchWriter, "torch")):
        writer = writer_type(str(tmp_path / run))
        for proto in hparams({"lr": 0.1, "layers": 3}, {"hp_metric": -1}):
            writer._get_file_writer().add_summary(proto)
        writer.add_scalar("hp_metric", 0.5, 1)
        writer.close()
    counts = {}
    for run in ("ours", "torch"):
        events = [event for path in sorted((tmp_path / run).iterdir())
                  for event in EventFileLoader(str(path)).Load()]  # fmt: skip
        counts[run] = sum(v.tag.startswith("_hparams_") for e in events for v in e.summary.value)
    assert counts == {"ours": 3, "torch": 3}


@pytest.mark.parametrize("value", [[1, 2], {"depth": 3}])
def test_a_list_or_dict_value_is_refused_as_torch_refuses_it(tmp_path, value):
    """torch raises ValueError, our rule is TypeError for a wrong type: the error is both."""
    with pytest.raises(ValueError, match="value should be one of"):
        TorchWriter(str(tmp_path / "torch")).add_hparams({"a": value}, {"m": 1.0})
    writer = gs.SummaryWriter(str(tmp_path / "ours"))
    for expected in (TypeError, ValueError):
        with pytest.raises(expected, match=r"hparam 'a' must be a str, bool or number.*str\("):
            writer.add_hparams({"a": value}, {"m": 1.0})
    writer.close()
    assert not any(p.is_dir() for p in (tmp_path / "ours").iterdir())  # no run was made
