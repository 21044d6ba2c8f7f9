"""The README's commands and the documentation's examples stay true.

Every block fenced as ``python`` in README.md and in docs/ runs, each page's in a folder of its
own, and what it logged is read back; excerpts that need what the suite lacks (a training loop,
a GPU, a process group) are fenced as ``python3`` and only shown.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from conftest import legacy_reader, plugin_reader

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
DOCS = ROOT / "docs"
QUICK_START = 'python3 -m pip install ".[demo]" && python3 -m gpu_summary demo --logdir runs/demo'
TEST_COMMAND = 'python3 -m pip install -e ".[test]" && python3 -m pytest'
FAST_LANE = 'python3 -m pytest -m "not slow"'
# How many runnable examples each page holds (the test below checks what each one logged).
EXAMPLES = {
    "README.md": 1,
    "docs/index.md": 1,
    "docs/usage.md": 3,
    "docs/seed.md": 1,
    "docs/cli.md": 1,
    "docs/probes.md": 1,
    "docs/flight-recorder.md": 1,
    "docs/low-precision.md": 1,
}


def _examples(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def _pages() -> list[pathlib.Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def test_ci_runs_the_readme_test_command():
    assert TEST_COMMAND in README
    assert TEST_COMMAND in (ROOT / ".ci" / "run").read_text()


def test_the_readme_starts_with_the_quick_start_then_the_tests():
    commands = re.findall(r"^```bash\n(.*?)\n```", README, flags=re.DOTALL | re.MULTILINE)
    assert commands[:2] == [QUICK_START, TEST_COMMAND]
    assert FAST_LANE in README
    assert "tensorboard --logdir runs/demo" in README  # what the demo prints
    assert "python3 -m venv .venv && . .venv/bin/activate" in README


def test_the_readme_is_short_and_links_every_page():
    assert len(README.splitlines()) <= 250
    linked = set(re.findall(r"\]\((docs/[^)#]+\.md)", README))
    pages = {str(p.relative_to(ROOT)) for p in DOCS.rglob("*.md")} - {"docs/index.md"}
    assert pages <= linked, pages - linked


def test_relative_links_point_at_files_that_exist():
    for page in [*_pages(), ROOT / "CONTRIBUTING.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: {target}"


@pytest.mark.slow
def test_python_examples_run(tmp_path, monkeypatch):
    examples = {str(p.relative_to(ROOT)): _examples(p.read_text()) for p in _pages()}
    assert {page: len(found) for page, found in examples.items() if found} == EXAMPLES
    namespaces = {}
    for page, blocks in examples.items():
        if not blocks:
            continue
        folder = tmp_path / page.replace("/", "_")
        folder.mkdir()
        monkeypatch.chdir(folder)
        for number, example in enumerate(blocks):  # each in a namespace of its own
            namespace = namespaces[page, number] = {}
            exec(compile(example, f"{page} example {number + 1}", "exec"), namespace)

    run = tmp_path / "README.md" / "runs" / "exp1"
    assert len(legacy_reader(run).Scalars("loss/train")) == 100
    assert len(legacy_reader(run).Histograms("weights/fc1")) == 100
    (width, height) = {(e.width, e.height) for e in legacy_reader(run).Images("samples")}.pop()
    assert len(legacy_reader(run).Images("samples")) == 100 and (width, height) == (256, 32)
    assert "grad/fc1/anomaly/nan" in legacy_reader(run).Tags()["scalars"]

    run = tmp_path / "docs_index.md" / "runs" / "first"
    assert len(legacy_reader(run).Histograms("weights")) == 100

    usage = tmp_path / "docs_usage.md" / "runs"
    run = usage / "exp1"
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

    kinds = legacy_reader(usage / "kinds").Tags()
    assert {"input", "detections", "curve", "rollout"} <= set(kinds["images"])
    assert kinds["audio"] == ["tone"]
    assert {"weights/fc1.weight", "weights/fc1.bias", "counted_elsewhere"} <= set(
        kinds["histograms"]
    )
    assert {"classifier", "custom_scalars__config__", "cloud_VERTEX", "raw"} <= set(
        kinds["tensors"]
    )
    assert len(legacy_reader(usage / "kinds" / "lr_encoder").Scalars("lr")) == 3

    windows = legacy_reader(usage / "windows")
    records = windows.Histograms("grad/fc1")
    assert [e.step for e in records] == list(range(99, 1000, 100))
    assert all(e.histogram_value.num == 100 * 10_000 for e in records)
    assert windows.Scalars("loss/min")[0].value == pytest.approx(1 / 100)

    seed = tmp_path / "docs_seed.md" / "runs" / "seed"
    namespaces["docs/seed.md", 0]["summary"].close_summary_writer()
    assert [e.value for e in legacy_reader(seed).Scalars("scalar")] == [0.5]
    assert legacy_reader(seed).Histograms("histogram")[0].step == 1
    assert {"image", "text"} <= set(plugin_reader(seed).Tags()["tensors"])
    assert "_hparams_/session_start_info" in plugin_reader(seed).PluginTagToContent("hparams")
    assert [node.name for node in legacy_reader(seed).Graph().node] == ["x"]
    seed_config = (seed / "projector_config.pbtxt").read_text()
    assert 'tensor_name: "embedding_projector:00001"' in seed_config
    assert len(list((seed / "projector").glob("projector.*.log"))) == 1

    probed = legacy_reader(tmp_path / "docs_probes.md" / "runs" / "probes")
    for tag, width in (("activations/hidden", 64), ("activations/output", 1)):
        records = probed.Histograms(tag)
        assert [e.step for e in records] == [4, 9, 14, 19]
        assert all(e.histogram_value.num == 5 * 128 * width for e in records)

    hunt = tmp_path / "docs_flight-recorder.md" / "runs" / "nan-hunt"
    (table,) = plugin_reader(hunt).Tensors("flight_recorder/text_summary")
    assert table.step == 9
    flight = namespaces["docs/flight-recorder.md", 0]["flight"]
    assert (flight.step, flight.tensors[0]) == (9, "gradients/2.bias")

    lowp = legacy_reader(tmp_path / "docs_low-precision.md" / "runs" / "lowp")
    overflow = lowp.Scalars("grad/fc1/lowp/float8_e4m3fn/overflow")
    assert [e.step for e in overflow] == list(range(10)) and all(e.value > 0 for e in overflow)
    assert lowp.Scalars("grad/fc1/lowp/float16/underflow")[0].value > 0
    assert [e.step for e in lowp.Scalars("weights/fc2/lowp/bfloat16/overflow")] == [9]

    (inspected,) = namespaces["docs/cli.md", 0]["reader"].inspect_logdir(
        tmp_path / "docs_cli.md" / "runs" / "inspected"
    )
    assert inspected.series[("scalars", "loss")].records == 10


def test_the_sigterm_recipe_is_the_one_the_reliability_test_runs():
    reliability = (DOCS / "reliability.md").read_text()
    (recipe,) = re.findall(r"```py\n(.*?)```", reliability, flags=re.DOTALL)
    from test_reliability import _TERMINATED

    for line in recipe.strip().splitlines():
        assert line in _TERMINATED, line
