"""The README's main job: the demo writes every kind, and TensorBoard reads each back."""

from __future__ import annotations

import importlib.metadata
import io
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from PIL import Image

from conftest import _cuda_available, legacy_reader, plugin_reader
from gpu_summary import __main__ as cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
    _assert_runs(_view_command(proc.stdout.splitlines()))
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
    (figure,) = acc.Images("figures/loss_curve")  # matplotlib is in the test extra
    pixels = np.asarray(Image.open(io.BytesIO(figure.encoded_image_string)).convert("L"))
    assert pixels.shape == (240, 320)
    # Nothing drawn on the picture's edge: no label or tick label runs past it.
    edges = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    assert (edges == 255).all()
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


# ---- how the demo says to view its run ----------------------------------------------------


def _view_command(lines: list[str]) -> str:
    (line,) = [line for line in lines if "view them with:  " in line]
    return line.split("view them with:  ", 1)[1]


def _assert_runs(command: str) -> None:
    """``command`` (a TensorBoard command line) starts and parses its flags: run with --help."""
    proc = subprocess.run([*shlex.split(command), "--help"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert proc.returncode == 0, (command, proc.stderr)
    assert "--logdir" in proc.stdout


_which = shutil.which


def _which_without_tensorboard(name, *args, **kwargs):
    return None if name == "tensorboard" else _which(name, *args, **kwargs)


@pytest.mark.parametrize("where", ["as_installed", "not_on_path", "no_script"])
def test_the_view_command_runs_here(tmp_path, monkeypatch, where):
    logdir = str(tmp_path / "a run's logs")  # a space and a quote: the line quotes it
    if where == "not_on_path":  # the script only in this environment's own bin folder
        monkeypatch.setenv("PATH", "")
    elif where == "no_script":
        monkeypatch.setattr(shutil, "which", _which_without_tensorboard)
    lines = cli.view_instructions(logdir)
    command = _view_command(lines)
    assert shlex.split(command)[-2:] == ["--logdir", logdir]
    if where == "no_script":
        assert " -m tensorboard.main --logdir " in command
    elif where == "not_on_path":
        assert shlex.split(command)[0] in (
            shutil.which("tensorboard", path=sysconfig.get_path("scripts")),
            shutil.which("tensorboard", path=pathlib.Path(sys.executable).parent),
        )
    monkeypatch.undo()
    _assert_runs(command)


def test_without_tensorboard_the_pip_line_comes_first(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec: not installed
    install, view = cli.view_instructions(str(tmp_path))
    assert install.endswith(" -m pip install tensorboard")
    assert view.startswith("then view them with:  ")
    python = shlex.split(install.split("install it with:  ", 1)[1])[0]
    pip = subprocess.run([python, "-m", "pip", "--version"], capture_output=True, text=True,
                         timeout=60)  # fmt: skip
    assert pip.returncode == 0 and pathlib.Path(sys.prefix).name in pip.stdout, pip.stdout
    monkeypatch.undo()
    _assert_runs(view.split("with:  ", 1)[1])  # what it says, once installed (it is, here)


def test_the_demo_extra_brings_what_the_quick_start_needs():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = extras["optional-dependencies"]
    tensorboard = [r for r in extras["test"] if r.startswith("tensorboard>")]
    assert extras["demo"] == [*extras["figures"], *extras["fast"], *tensorboard]


# ---- the command line's help ---------------------------------------------------------------


def _help(*command: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "gpu_summary", *command, "--help"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_help_is_plain_text():
    main = _help()
    (choices,) = re.findall(r"\{([\w,-]+)\}", main.splitlines()[0])
    pages = {"": main} | {name: _help(name) for name in choices.split(",")}
    assert set(pages) >= {"", "demo", "inspect"}
    for name, page in pages.items():
        assert "``" not in page, (name, page)
        assert not re.search(r":(func|class|meth|mod|attr|data):", page), (name, page)
    assert "Train a toy network" in pages["demo"] and "Exit status" in pages["inspect"]


def test_plain_text_drops_literals_and_roles():
    doc = "``demo`` calls :func:`array_module` and :class:`~gpu_summary.SummaryWriter`."
    assert cli.plain_text(doc) == "demo calls array_module and gpu_summary.SummaryWriter."


# ---- the demo's figure ---------------------------------------------------------------------


def test_the_loss_figure_keeps_every_label_inside_and_plots_steps():
    pytest.importorskip("matplotlib")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    steps, losses = [0, 20, 40, 60, 80, 99], [2.7, 0.58, 0.49, 0.45, 0.42, 0.39]
    figure = cli.loss_figure(steps, losses)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    drawn = figure.get_tightbbox(canvas.get_renderer())  # inches, every artist's extent
    inside = figure.bbox_inches
    assert drawn.x0 >= inside.x0 and drawn.y0 >= inside.y0, (drawn, inside)
    assert drawn.x1 <= inside.x1 and drawn.y1 <= inside.y1, (drawn, inside)
    (axes,) = figure.axes
    assert list(axes.get_lines()[0].get_xdata()) == steps
    assert axes.get_xlabel() == "step" and axes.get_ylabel() == "train/loss"
