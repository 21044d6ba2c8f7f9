"""The README's commands and example stay true."""

from __future__ import annotations

import pathlib
import re

import pytest

from conftest import legacy_reader, plugin_reader

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    command = 'python3 -m pip install -e ".[test]" && python3 -m pytest'
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text()


def test_python_example_runs(tmp_path, monkeypatch):
    examples = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(examples) == 3
    monkeypatch.chdir(tmp_path)
    namespaces = [{} for _ in examples]
    for example, namespace in zip(examples, namespaces, strict=True):  # each on its own
        exec(compile(example, "README.md", "exec"), namespace)
    run = tmp_path / "runs" / "exp1"
    assert len(legacy_reader(run).Scalars("loss/train")) == 100
    assert len(legacy_reader(run).Histograms("activations")) == 100
    assert {"samples", "notes/text_summary"} <= set(plugin_reader(run).Tags()["tensors"])
    (width, height) = {(e.width, e.height) for e in legacy_reader(run).Images("samples")}.pop()
    assert len(legacy_reader(run).Images("samples")) == 100 and (width, height) == (256, 32)
    assert "_hparams_/experiment" in plugin_reader(run).PluginTagToContent("hparams")
    assert [node.name for node in legacy_reader(run).Graph().node] == ["x", "fc1"]
    assert "grad/fc1/anomaly/nan" in legacy_reader(run).Tags()["scalars"]
    config = (run / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "features:00099"' in config
    seed = tmp_path / "runs" / "seed"
    namespaces[1]["summary"].close_summary_writer()
    assert [e.value for e in legacy_reader(seed).Scalars("scalar")] == [0.5]
    assert legacy_reader(seed).Histograms("histogram")[0].step == 1
    assert {"image", "text"} <= set(plugin_reader(seed).Tags()["tensors"])
    assert "_hparams_/session_start_info" in plugin_reader(seed).PluginTagToContent("hparams")
    assert [node.name for node in legacy_reader(seed).Graph().node] == ["x"]
    seed_config = (seed / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding_projector:00001"' in seed_config
    assert len(list((seed / "projector").glob("projector.*.log"))) == 1
    windows = legacy_reader(tmp_path / "runs" / "windows")
    records = windows.Histograms("grad/fc1")
    assert [e.step for e in records] == list(range(99, 1000, 100))
    assert all(e.histogram_value.num == 100 * 10_000 for e in records)
    assert windows.Scalars("loss/min")[0].value == pytest.approx(1 / 100)


def test_the_sigterm_recipe_is_the_one_the_reliability_test_runs():
    (recipe,) = re.findall(r"```py\n(.*?)```", README, flags=re.DOTALL)
    from test_reliability import _TERMINATED

    for line in recipe.strip().splitlines():
        assert line in _TERMINATED, line
