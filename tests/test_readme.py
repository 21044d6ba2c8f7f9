"""The README's commands and example stay true."""

from __future__ import annotations

import pathlib
import re

from conftest import legacy_reader, plugin_reader

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_ci_runs_the_readme_test_command():
    command = 'python3 -m pip install -e ".[test]" && python3 -m pytest'
    assert command in README
    assert command in (ROOT / ".ci" / "run").read_text()


def test_python_example_runs(tmp_path, monkeypatch):
    examples = re.findall(r"```python\n(.*?)```", README, flags=re.DOTALL)
    assert len(examples) == 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for example in examples:
        exec(compile(example, "README.md", "exec"), namespace)
    run = tmp_path / "runs" / "exp1"
    assert len(legacy_reader(run).Scalars("loss/train")) == 100
    assert len(legacy_reader(run).Histograms("activations")) == 100
    assert {"samples", "notes"} <= set(plugin_reader(run).Tags()["tensors"])
    assert "_hparams_/experiment" in plugin_reader(run).PluginTagToContent("hparams")
    assert [node.name for node in legacy_reader(run).Graph().node] == ["x", "fc1"]
    assert "grad/fc1/anomaly/nan" in legacy_reader(run).Tags()["scalars"]
    config = (run / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "features:00099"' in config
    assert 'tensor_name: "embedding_projector:00001"' in config
    assert len(list((run / "projector").glob("projector.*.log"))) == 1
