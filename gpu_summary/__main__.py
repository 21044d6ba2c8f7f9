"""Command line (``python -m gpu_summary`` or the ``gpu-summary`` console script).

- ``demo [--logdir runs/demo] [--steps N] [--device auto|cpu|cuda]``: train a toy network and
  log every kind of summary, then print how to view it.
- ``inspect LOGDIR [--json]``: list the runs under LOGDIR, their tags per plugin, step ranges
  and record counts, and every corrupt or truncated record with its offset (and every file or
  folder it cannot read). Exit status 0 when everything read cleanly, 1 when problems were
  found, 2 when LOGDIR is not a directory.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import sysconfig
import time
from types import ModuleType
from typing import TextIO

import numpy as np

import gpu_summary as gs
from gpu_summary import reader


def _demo_images(step: int, size: int = 96) -> np.ndarray:
    """A batch of 4 RGB float images (NCHW) that change with the step."""
    y, x = np.mgrid[0:size, 0:size] / (size - 1)
    phase = step / 5.0
    images = []
    for k in range(4):
        r = 0.5 + 0.5 * np.sin(2 * np.pi * (x * (k + 1) + phase))
        g = 0.5 + 0.5 * np.cos(2 * np.pi * (y * (k + 1) - phase))
        b = np.hypot(x - 0.5, y - 0.5) * (1 + k) % 1.0
        images.append(np.stack([r, g, b]))
    return np.stack(images).astype(np.float32)


# The demo network as the seed's Keras-style layer list (its structure graph).
_DEMO_LAYERS = [
    {"name": "inputs", "class_name": "InputLayer", "config": {"shape": [512, 16]},
     "inbound_nodes": []},
    {"name": "layer1", "class_name": "Dense", "config": {"units": 64, "activation": "relu"},
     "inbound_nodes": [[["inputs", 0, 0, {}]]]},
    {"name": "layer2", "class_name": "Dense", "config": {"units": 1},
     "inbound_nodes": [[["layer1", 0, 0, {}]]]},
    {"name": "loss", "class_name": "MeanSquaredError", "config": {},
     "inbound_nodes": [[["layer2", 0, 0, {}]]]},
]  # fmt: skip


def _log_embedding(
    writer: gs.SummaryWriter,
    xp: ModuleType,
    inputs: object,
    hidden: object,
    targets: object,
    step: int,
) -> None:
    """The hidden layer's activations of 200 inputs, labelled by target sign and value, with
    a small swatch per point (its first three inputs as a colour) for the sprite."""
    points = slice(0, 200)
    labels = [
        ("positive" if t > 0 else "negative", f"{t:.3f}") for t in targets[points, 0].tolist()
    ]
    colour = 1 / (1 + xp.exp(-inputs[points, :3]))  # squashed to 0..1
    swatches = xp.ascontiguousarray(xp.broadcast_to(colour[:, None, None, :], (200, 8, 8, 3)))
    writer.add_embedding(hidden[points], labels, swatches, tag="hidden", step=step,
                         metadata_header=["sign", "target"], label_img_format="NHWC")  # fmt: skip


def _log_evaluation(
    writer: gs.SummaryWriter,
    xp: ModuleType,
    hidden: object,
    w2: object,
    targets: object,
    step: int,
) -> None:
    """Whether each input's target is positive, scored by the network: its precision-recall
    curve (counted where the tensors live), the hidden layer's first three units as a point
    cloud coloured by the score, a tone whose pitch follows the error, and the first sample
    image with boxes round its brightest and darkest quarter."""
    score = 1 / (1 + xp.exp(-4 * (hidden @ w2)))[:, 0]
    writer.add_pr_curve("eval/positive_target", targets[:, 0] > 0, score, step)
    cloud = hidden[:256, :3]
    colors = xp.stack([score[:256], 0.3 + 0 * score[:256], 1 - score[:256]], axis=1)
    writer.add_mesh("hidden/point_cloud", cloud[None], colors=colors[None], global_step=step,
                    config_dict={"material": {"cls": "PointsMaterial", "size": 0.05}})  # fmt: skip
    error = float(xp.abs(hidden @ w2 - targets).mean())
    t = xp.arange(8000, dtype=xp.float32) / 8000
    writer.add_audio("sound/error_tone", 0.5 * xp.sin(2 * np.pi * (220 + 2000 * error) * t),
                     step, sample_rate=8000)  # fmt: skip
    image = _demo_images(step, size=64)[0]
    quarters = [[0, 0, 31, 31], [32, 0, 63, 31], [0, 32, 31, 63], [32, 32, 63, 63]]
    brightness = [image[:, y1:y2, x1:x2].mean() for x1, y1, x2, y2 in quarters]
    order = np.argsort(brightness)
    writer.add_image_with_boxes("samples/with_boxes", image,
                                np.array([quarters[order[-1]], quarters[order[0]]]), step,
                                labels=["brightest", "darkest"])  # fmt: skip


def loss_figure(steps: list[int], losses: list[float]) -> object:
    """The loss curve as a matplotlib figure: each loss at the step it was read. Constrained
    layout sizes the margins when the figure is drawn, so the axis labels and the log scale's
    tick labels stay inside its 320×240 pixels.

    Raises:
        ImportError: matplotlib is not installed (an optional extra).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4, 3), dpi=80, layout="constrained")
    axes = figure.add_subplot()
    axes.plot(steps, losses, marker="o", markersize=3)
    axes.set_xlabel("step")
    axes.set_ylabel("train/loss")
    axes.set_yscale("log")
    return figure


def _log_figure(writer: gs.SummaryWriter, steps: list[int], losses: list[float], step: int) -> bool:
    """Log the loss curve, when matplotlib is installed (an optional extra)."""
    try:
        figure = loss_figure(steps, losses)
    except ImportError:
        return False
    writer.add_figure("figures/loss_curve", figure, step)
    return True


def array_module(device: str) -> tuple[object, str]:
    """The array module the demo trains with, and its description: NumPy for ``cpu``, CuPy on
    GPU 0 for ``cuda``; ``auto`` takes CuPy when it loads and sees a GPU.

    Raises:
        RuntimeError: ``cuda`` asked for and CuPy or a GPU missing (the message says which).
    """
    if device == "cpu":
        return np, "cpu (NumPy)"
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
        if count > 0:
            name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
            name = name.decode() if isinstance(name, bytes) else name
            return cupy, f"cuda:0 {name} (CuPy)"
        reason = "CuPy sees no CUDA device"
    except ImportError:
        reason = "CuPy is not installed (pip install 'gpu_summary[cuda12]' or '[cuda13]')"
    except Exception as exc:  # noqa: BLE001 - a missing driver or library, in CuPy's words
        reason = f"CuPy cannot reach a GPU ({type(exc).__name__}: {exc})"
    if device == "cuda":
        raise RuntimeError(f"--device cuda: {reason}")
    return np, f"cpu (NumPy; no GPU: {reason})"


def _new_run(logdir: str) -> str:
    """``<logdir>/run_<n>``, the first n not taken: each demo its own run, named in
    TensorBoard's run list (a run logged into ``logdir`` itself shows as ".")."""
    number = 1
    while os.path.exists(os.path.join(logdir, f"run_{number}")):
        number += 1
    return os.path.join(logdir, f"run_{number}")


def run_demo(logdir: str, steps: int, out: TextIO | None = None, device: str = "cpu") -> None:
    """Train a small two-layer network on a toy regression and log every kind of summary:
    scalars (one chart of several runs too), histograms of weights and gradients, images,
    text, hyperparameters, the model's structure graph, an embedding of the hidden layer's
    activations, anomaly checks of the gradients, precision-recall curves, a point cloud,
    audio, images with boxes, a video, a whole tensor, a custom-scalars layout and (with
    matplotlib) a figure. The network and every tensor logged live on ``device`` (see
    :func:`array_module`): on a GPU the reductions run there and the loop never waits for
    the log, except for the loss shown by the progress bar. Each call writes a new run,
    ``<logdir>/run_<n>``."""
    out = out or sys.stdout
    xp, where = array_module(device)
    print(f"device: {where}", file=out)
    run = _new_run(logdir)  # a named run, new each time: a second demo never doubles the first
    terminal = bool(getattr(out, "isatty", lambda: False)())
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((512, 16)).astype(np.float32)
    targets = np.sin(inputs @ rng.standard_normal((16, 1))).astype(np.float32)
    w1 = (rng.standard_normal((16, 64)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((64, 1)) * 0.3).astype(np.float32)
    inputs, targets, w1, w2 = (xp.asarray(a) for a in (inputs, targets, w1, w2))
    lr = 0.05
    started = time.perf_counter()
    anomalies: list[gs.AnomalyReport] = []
    shown = -1
    with gs.SummaryWriter(run, on_anomaly=anomalies.append) as writer:
        writer.add_text("about", "A toy **two-layer network** trained by `gpu_summary demo`.", 0)
        writer.add_graph(_DEMO_LAYERS)
        writer.add_hparams(
            {
                gs.HParam("learning_rate", gs.RealRange(1e-3, 1e-1)): lr,
                gs.HParam("hidden_units", gs.IntegerRange(8, 256)): 64,
                gs.HParam("optimizer", gs.ValueSet(["sgd", "adam"])): "sgd",
                "device": "cuda" if xp is not np else "cpu",
            },
            {gs.Metric("train/loss"): None},
            run_name=".",  # this run's own session: the training curve is its metric
        )
        writer.add_custom_scalars({
            "training": {
                "loss and its spread": ["Margin", ["train/loss", "train/sq_error_min",
                                                   "train/sq_error_max"]],
                "every train/ scalar": ["Multiline", ["train/.*"]],
            },
        })  # fmt: skip
        losses: list[float] = []
        loss_steps: list[int] = []
        frames = []
        for step in range(steps):
            hidden = xp.maximum(inputs @ w1, 0)
            error = hidden @ w2 - targets
            loss = (error**2).mean()
            grad_out = 2 * error / len(inputs)
            grad_w2 = hidden.T @ grad_out
            grad_w1 = inputs.T @ ((grad_out @ w2.T) * (hidden > 0))
            w1 -= lr * grad_w1
            w2 -= lr * grad_w2

            writer.add_scalar("train/loss", loss, step)
            writer.add_scalar("train/learning_rate", lr, step)
            squared = error**2
            writer.add_scalar("train/sq_error_min", squared.min(), step)
            writer.add_scalar("train/sq_error_max", squared.max(), step)
            writer.add_scalars("compare", {"loss": loss, "ten_lr": 10 * lr}, step)
            # Every step's values, one record per window (added up where the tensors live).
            window = max(1, steps // 4)
            writer.add_histogram("gradients/layer1_windowed", grad_w1, step, window=window)
            writer.add_scalar("train/loss_windowed", loss, step, window=window,
                              reduce=("mean", "min", "max"))  # fmt: skip
            writer.add_histograms({"layer1": w1, "layer2": w2}, step, prefix="weights/")
            writer.add_histograms(
                {"layer1": grad_w1, "layer2": grad_w2}, step, prefix="gradients/",
                check_nonfinite=True,
            )  # fmt: skip
            writer.add_histogram("activations/hidden", hidden, step, bins=30)
            if step % max(1, steps // 5) == 0 or step == steps - 1:
                writer.add_images(
                    "samples", xp.asarray(_demo_images(step)), step, dataformats="NCHW",
                    max_size=64,
                )  # fmt: skip
                span = w1.max() - w1.min()
                writer.add_image("weights/layer1_as_image", (w1 - w1.min()) / span, step,
                                 dataformats="HW")  # fmt: skip
                writer.add_text("notes", [f"step {step}", f"learning rate {lr}"], step)
                writer.add_anomaly("gradients/layer1", grad_w1, step, lower=-0.05, upper=0.05)
                _log_embedding(writer, xp, inputs, hidden, targets, step)
                _log_evaluation(writer, xp, hidden, w2, targets, step)
                frames.append(_demo_images(step, size=48))
            # The bar reads the loss (a device sync) only when it moves; redrawn in place on a
            # terminal, else (a log file, a pipe) a line at each fifth of the run.
            done = (step + 1) * (30 if terminal else 5) // steps
            if done != shown:
                shown = done
                if terminal:
                    bar = f"\r[{'#' * done}{'.' * (30 - done)}] "
                else:
                    bar = ""
                print(f"{bar}step {step + 1}/{steps} loss {float(loss):.4f}",
                      end="" if terminal else "\n", file=out, flush=True)  # fmt: skip
            if step % max(1, steps // 5) == 0 or step == steps - 1:
                losses.append(float(loss))
                loss_steps.append(step)
        # The sample images as videos (one per sample, tiled), the last weights whole, and
        # the loss curve as a figure.
        writer.add_video("samples/video", np.stack(frames, axis=1), steps - 1, fps=2)
        writer.add_tensor("weights/layer2_values", w2, steps - 1)
        figure = _log_figure(writer, loss_steps, losses, steps - 1)
    elapsed = time.perf_counter() - started
    print(
        f"{chr(10) if terminal else ''}wrote {steps} steps of scalars, histograms, images, "
        f"text, hparams, the graph, embeddings, anomaly reports, PR curves, meshes, audio, "
        f"boxes, a video, a tensor, custom scalars{', a figure' if figure else ''} to the run "
        f"{os.path.basename(run)!r} in {os.path.abspath(logdir)} in {elapsed:.1f} s",
        file=out,
    )
    if not figure:
        print("(no figure: matplotlib is not installed; pip install matplotlib)", file=out)
    if anomalies:
        last = anomalies[-1]
        print(
            f"anomaly checks flagged {len(anomalies)} step(s); the last, step {last.step}: "
            f"{last.below} gradient(s) below -0.05, {last.above} above 0.05",
            file=out,
        )
    python = _python_command()
    print(f"inspect them with:  {python} -m gpu_summary inspect {shlex.quote(logdir)}", file=out)
    for line in view_instructions(logdir):
        print(line, file=out)


def _python_command() -> str:
    """How to start this interpreter from a shell: ``python3`` when the one on PATH is it (the
    same folder as ``sys.executable``, so a virtual environment's own), else its full path."""
    found = shutil.which("python3")
    if found and os.path.dirname(os.path.abspath(found)) == os.path.dirname(sys.executable):
        return "python3"
    return shlex.quote(sys.executable)


def view_instructions(logdir: str) -> list[str]:
    """The lines that tell how to view ``logdir`` in TensorBoard, each command one that runs in
    this environment: ``tensorboard --logdir ...`` when TensorBoard is importable and its
    console script is on PATH; the script's full path when only this environment's bin folder
    has it; ``<python> -m tensorboard.main --logdir ...`` when no script is found; and, when
    TensorBoard is not installed, the pip line that installs it into this interpreter first.
    """
    python = _python_command()
    quoted = shlex.quote(logdir)
    scripts = sysconfig.get_path("scripts")
    own = shutil.which("tensorboard", path=scripts) or shutil.which(
        "tensorboard", path=os.path.dirname(sys.executable)
    )
    on_path = shutil.which("tensorboard")
    lines = []
    if importlib.util.find_spec("tensorboard") is None:
        lines.append(f"TensorBoard is not installed here; install it with:  {python} -m pip "
                     "install tensorboard")  # fmt: skip
        # pip puts the script beside this interpreter: usable by name when that folder is on PATH.
        folders = os.environ.get("PATH", "").split(os.pathsep)
        if os.path.dirname(sys.executable) in folders or scripts in folders:
            command = "tensorboard"
        else:
            command = f"{python} -m tensorboard.main"
        lines.append(f"then view them with:  {command} --logdir {quoted}")
        return lines
    if on_path and (own is None or os.path.samefile(on_path, own)):
        command = "tensorboard"
    elif own:
        command = shlex.quote(own)
    else:
        command = f"{python} -m tensorboard.main"
    lines.append(f"view them with:  {command} --logdir {quoted}")
    return lines


def inspect_command(logdir: str, as_json: bool, out: TextIO | None = None) -> int:
    """Print the inventory of ``logdir``; the exit status (0 clean, 1 problems found).

    A reader that stops early (``inspect --json | head``) ends the output quietly: the rest
    goes nowhere, with no traceback."""
    out = out or sys.stdout
    runs = reader.inspect_logdir(logdir)
    try:
        if as_json:
            json.dump(reader.report_json(runs), out, indent=1)
            out.write("\n")
        else:
            out.write(reader.format_report(logdir, runs))
        out.flush()
    except BrokenPipeError:
        # Python's recipe: point stdout at /dev/null so the interpreter's final flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 1 if any(run.all_problems() for run in runs) else 0


def plain_text(doc: str) -> str:
    """A docstring as the terminal shows it: reST's inline literals (````x````) and roles
    (``:func:`x```) reduced to their text, ``~`` and leading dots of a role's target dropped."""
    doc = re.sub(r":[a-z]+:`[~.]*([^`]+)`", r"\1", doc)
    return re.sub(r"``([^`]+)``", r"\1", doc)


def _command_description(name: str) -> str:
    """What the module docstring's bullet for the subcommand ``name`` says it does (the text
    after its usage), as one plain paragraph for argparse to wrap."""
    (bullet,) = [b for b in __doc__.split("\n- ") if b.startswith(f"``{name} ")]
    says = " ".join(bullet.split("``: ", 1)[1].split())
    return plain_text(says[0].upper() + says[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gpu-summary",
        description=plain_text(__doc__),
        formatter_class=argparse.RawTextHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="simulate a small training run and log every kind",
        description=_command_description("demo"),
    )  # fmt: skip
    demo.add_argument("--logdir", default="runs/demo", help="where to write (default runs/demo)")
    demo.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    demo.add_argument(
        "--device", choices=("auto", "cpu", "cuda"), default="auto",
        help="where the network and its tensors live (default auto: a GPU when CuPy sees one)",
    )  # fmt: skip
    look = commands.add_parser(
        "inspect", help="list runs, tags and steps; report damaged records",
        description=_command_description("inspect"),
    )  # fmt: skip
    look.add_argument("logdir", help="a log directory (or one run's directory)")
    look.add_argument("--json", action="store_true", help="print the inventory as JSON")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.steps <= 0:
            parser.error("--steps must be > 0")
        try:
            run_demo(args.logdir, args.steps, device=args.device)
        except RuntimeError as exc:
            if not str(exc).startswith("--device"):
                raise
            parser.error(str(exc))
        return 0
    if not os.path.isdir(args.logdir):
        parser.error(f"inspect: {args.logdir!r} is not a directory")
    return inspect_command(args.logdir, args.json)


if __name__ == "__main__":
    sys.exit(main())
