"""Command line: ``python -m gpu_summary demo`` (also the ``gpu-summary`` console script)."""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

import gpu_summary as gs


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


def _log_embedding(writer, inputs, hidden, targets, step: int) -> None:
    """The hidden layer's activations of 200 inputs, labelled by target sign and value, with
    a small swatch per point (its first three inputs as a colour) for the sprite."""
    points = slice(0, 200)
    labels = [
        ("positive" if t > 0 else "negative", f"{t:.3f}") for t in targets[points, 0].tolist()
    ]
    colour = 1 / (1 + np.exp(-inputs[points, :3]))  # squashed to 0..1
    swatches = np.broadcast_to(colour[:, None, None, :], (200, 8, 8, 3))
    writer.add_embedding(hidden[points], labels, swatches, tag="hidden", step=step,
                         metadata_header=["sign", "target"], label_img_format="NHWC")  # fmt: skip


def run_demo(logdir: str, steps: int, out=sys.stdout) -> None:
    """Train a small two-layer network on a toy regression with NumPy and log every kind of
    summary: scalars, histograms of weights and gradients, images, text, hyperparameters, the
    model's structure graph, an embedding of the hidden layer's activations and anomaly checks
    of the gradients."""
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((512, 16)).astype(np.float32)
    targets = np.sin(inputs @ rng.standard_normal((16, 1))).astype(np.float32)
    w1 = (rng.standard_normal((16, 64)) * 0.3).astype(np.float32)
    w2 = (rng.standard_normal((64, 1)) * 0.3).astype(np.float32)
    lr = 0.05
    started = time.perf_counter()
    anomalies: list[gs.AnomalyReport] = []
    with gs.SummaryWriter(logdir, on_anomaly=anomalies.append) as writer:
        writer.add_text("about", "A toy **two-layer network** trained by `gpu_summary demo`.", 0)
        writer.add_graph(_DEMO_LAYERS)
        writer.add_hparams(
            {
                gs.HParam("learning_rate", gs.RealRange(1e-3, 1e-1)): lr,
                gs.HParam("hidden_units", gs.IntegerRange(8, 256)): 64,
                gs.HParam("optimizer", gs.ValueSet(["sgd", "adam"])): "sgd",
            },
            {gs.Metric("train/loss"): None},
        )
        for step in range(steps):
            hidden = np.maximum(inputs @ w1, 0)
            error = hidden @ w2 - targets
            loss = float(np.mean(error**2))
            grad_out = 2 * error / len(inputs)
            grad_w2 = hidden.T @ grad_out
            grad_w1 = inputs.T @ ((grad_out @ w2.T) * (hidden > 0))
            w1 -= lr * grad_w1
            w2 -= lr * grad_w2

            writer.add_scalar("train/loss", loss, step)
            writer.add_scalar("train/learning_rate", lr, step)
            writer.add_histograms({"layer1": w1, "layer2": w2}, step, prefix="weights/")
            writer.add_histograms(
                {"layer1": grad_w1, "layer2": grad_w2}, step, prefix="gradients/",
                check_nonfinite=True,
            )  # fmt: skip
            writer.add_histogram("activations/hidden", hidden, step, bins=30)
            if step % max(1, steps // 5) == 0 or step == steps - 1:
                writer.add_images(
                    "samples", _demo_images(step), step, dataformats="NCHW", max_size=64
                )
                writer.add_image(
                    "weights/layer1_as_image", (w1 - w1.min()) / np.ptp(w1), step, dataformats="HW"
                )
                writer.add_text("notes", [f"step {step}", f"loss {loss:.4f}"], step)
                writer.add_anomaly("gradients/layer1", grad_w1, step, lower=-0.05, upper=0.05)
                _log_embedding(writer, inputs, hidden, targets, step)
            done = (step + 1) * 30 // steps
            print(
                f"\r[{'#' * done}{'.' * (30 - done)}] step {step + 1}/{steps} loss {loss:.4f}",
                end="",
                file=out,
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        f"\nwrote {steps} steps of scalars, histograms, images, text, hparams, the graph, "
        f"embeddings and anomaly reports to {os.path.abspath(logdir)} in {elapsed:.1f} s",
        file=out,
    )
    if anomalies:
        last = anomalies[-1]
        print(
            f"anomaly checks flagged {len(anomalies)} step(s); the last, step {last.step}: "
            f"{last.below} gradient(s) below -0.05, {last.above} above 0.05",
            file=out,
        )
    print(f"view them with:  tensorboard --logdir {logdir}", file=out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gpu-summary", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="simulate a small training run and log it")
    demo.add_argument("--logdir", default="runs/demo", help="where to write (default runs/demo)")
    demo.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        if args.steps <= 0:
            parser.error("--steps must be > 0")
        run_demo(args.logdir, args.steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
