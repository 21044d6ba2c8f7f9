"""The README's main job: the demo writes every kind, and TensorBoard reads each back."""

from __future__ import annotations

import importlib.metadata
import pathlib
import subprocess
import sys
import sysconfig

import pytest

from conftest import _cuda_available, legacy_reader, plugin_reader


def test_demo_writes_every_kind(tmp_path):
    logdir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "demo", "--logdir", str(logdir), "--steps", "12"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"tensorboard --logdir {logdir}" in proc.stdout
    if not _cuda_available():  # --device auto falls back to the CPU
        assert proc.stdout.startswith("device: cpu (NumPy")
    inspected = _cli_inspect(logdir)
    assert inspected.returncode == 0, inspected.stdout
    assert "0 problem(s)" in inspected.stdout and "train/loss" in inspected.stdout
    assert "\r" not in proc.stdout  # not a terminal: a line at each fifth, no redrawn bar
    run = logdir / "run_1"  # a named run, not "." in TensorBoard's list
    acc = legacy_reader(run)
    losses = [e.value for e in acc.Scalars("train/loss")]
    assert len(losses) == 12 and losses[-1] < losses[0]
    assert len(acc.Histograms("gradients/layer1")) == 12
    plugins = plugin_reader(run)
    tags = plugins.Tags()["tensors"]
    for tag in ("samples", "notes/text_summary", "about/text_summary", "weights/layer1_as_image"):
        assert tag in tags
    assert plugins.SummaryMetadata("samples").plugin_data.plugin_name == "images"
    assert len(acc.Images("samples")) == len(acc.Images("weights/layer1_as_image")) > 1
    assert plugins.SummaryMetadata("notes/text_summary").plugin_data.plugin_name == "text"
    assert set(plugins.PluginTagToContent("hparams")) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    assert [node.name for node in acc.Graph().node] == ["inputs", "layer1", "layer2", "loss"]
    assert (run / "graph" / "structure_graph.json").is_file()
    # Anomaly reports of the gradients, and embeddings of the hidden layer.
    assert "gradients/layer1/anomaly/above" in acc.Tags()["scalars"]
    assert "gradients/layer1/quantile/p50" in acc.Tags()["scalars"]
    assert "gradients/layer1/anomaly/heatmap" in tags
    assert "anomaly checks flagged" in proc.stdout
    # The kinds beyond those: each read back by its plugin's metadata.
    kinds = (("eval/positive_target", "pr_curves"), ("hidden/point_cloud_VERTEX", "mesh"),
             ("hidden/point_cloud_COLOR", "mesh"), ("weights/layer2_values", "tensor"),
             ("custom_scalars__config__", "custom_scalars"))  # fmt: skip
    for tag, plugin in kinds:
        assert plugins.SummaryMetadata(tag).plugin_data.plugin_name == plugin, tag
    assert len(acc.Tensors("eval/positive_target")) == len(acc.Images("samples/with_boxes")) > 1
    assert len(acc.Audio("sound/error_tone")) > 1
    (video,) = acc.Images("samples/video")
    assert video.encoded_image_string.startswith(b"GIF8")
    assert "figures/loss_curve" in acc.Tags()["images"]  # matplotlib is in the test extra
    # window=3 over 12 steps: four records, each of every value of its three steps
    windowed = acc.Histograms("gradients/layer1_windowed")
    assert [e.step for e in windowed] == [2, 5, 8, 11]
    assert (
        windowed[0].histogram_value.num
        == 3 * acc.Histograms("gradients/layer1")[0].histogram_value.num
    )
    assert [e.step for e in acc.Scalars("train/loss_windowed/max")] == [2, 5, 8, 11]
    for sub in ("compare_loss", "compare_ten_lr"):  # add_scalars' runs
        assert len(legacy_reader(run / sub).Scalars("compare")) == 12
    config = (run / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 7 and 'tensor_name: "hidden:00000"' in config
    again = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "demo", "--logdir", str(logdir), "--steps", "3"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in logdir.iterdir()) == ["run_1", "run_2"]  # nothing doubled
    assert len(legacy_reader(run).Scalars("train/loss")) == 12
    assert len(legacy_reader(logdir / "run_2").Scalars("train/loss")) == 3


def test_demo_rejects_bad_steps(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "demo", "--steps", "0", "--logdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--steps" in proc.stderr


def test_demo_device_cuda_without_a_gpu_says_why(tmp_path):
    if _cuda_available():
        pytest.skip("a GPU is here: the demo would run on it")
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "demo", "--device", "cuda", "--logdir",
         str(tmp_path), "--steps", "2"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "--device cuda: CuPy" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written


@pytest.mark.gpu
def test_demo_on_the_gpu(tmp_path):
    if not _cuda_available():
        pytest.skip("needs a CUDA device and CuPy")
    logdir = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "demo", "--device", "cuda", "--logdir",
         str(logdir), "--steps", "12"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "device: cuda:0" in proc.stdout
    acc = legacy_reader(logdir / "run_1")
    assert len(acc.Scalars("train/loss")) == 12
    assert len(acc.Histograms("weights/layer1")) == 12
    assert _cli_inspect(logdir).returncode == 0


def _cli_inspect(logdir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpu_summary", "inspect", str(logdir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_console_script_is_declared_and_runs():
    (entry,) = [
        e for e in importlib.metadata.entry_points(group="console_scripts")
        if e.name == "gpu-summary"
    ]  # fmt: skip
    assert entry.value == "gpu_summary.__main__:main"
    script = pathlib.Path(sysconfig.get_path("scripts")) / "gpu-summary"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "gpu_summary"]
    proc = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "inspect LOGDIR" in proc.stdout and "demo" in proc.stdout


def test_demo_without_matplotlib_skips_only_the_figure(tmp_path):
    args = ["demo", "--logdir", str(tmp_path), "--steps", "2"]
    script = ("import sys; sys.modules['matplotlib'] = None\n"  # as if it were not installed
              f"from gpu_summary.__main__ import main\nsys.exit(main({args!r}))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no figure: matplotlib is not installed" in proc.stdout
    tags = legacy_reader(tmp_path / "run_1").Tags()["images"]
    assert "samples/video" in tags and "figures/loss_curve" not in tags
