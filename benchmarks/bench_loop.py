"""Training-loop benchmark: what logging every parameter and gradient each step costs a CPU
training loop, as process CPU (every thread: the writers' own threads included) over the same
loop without logging.

Usage: python benchmarks/bench_loop.py [--steps 20] [--peer-steps 4] [--repeat 3]
                                       [--only none,plain,histograms,watch,tensorboardX,torch]

The model is a torch MLP of nine ``Linear(608, 608)`` layers with bias (3.33M parameters in
18 tensors), trained with SGD on random batches of 64 with ``torch.set_num_threads(1)``. Each
logging step writes 36 histograms (6.6M values). Modes:

- ``none``: the loop alone (the baseline);
- ``plain``: gpu_summary, one ``add_histogram`` per parameter and per gradient;
- ``histograms``: gpu_summary, one ``add_histograms`` for the parameters, one for the gradients;
- ``watch``: gpu_summary, ``gs.watch(model, writer, log="all")``;
- ``tensorboardX`` and ``torch``: their writers, one ``add_histogram`` per tensor.

One untimed run of every mode comes first (numba compiles its kernels on first use). Each
mode runs a fresh writer: two untimed warm-up steps, then ``--steps`` timed steps and
``close()`` (what the writer thread still has to do counts). Every repeat runs all modes in
turn, so each overhead is against the ``none`` run of its own repeat; the range over repeats is
printed. Needs torch and tensorboardX.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import tensorboardX
import torch
from torch.utils.tensorboard import SummaryWriter as TorchWriter

import gpu_summary as gs

_WIDTH, _LAYERS, _BATCH = 608, 9, 64
_MODES = ("none", "plain", "histograms", "watch", "tensorboardX", "torch")


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for i in range(_LAYERS):
        layers.append(torch.nn.Linear(_WIDTH, _WIDTH))
        if i < _LAYERS - 1:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _run(mode: str, steps: int) -> tuple[float, float]:
    """(process CPU seconds, wall seconds) per step of ``steps`` timed steps of ``mode``."""
    model = _model()
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    x = torch.randn(_BATCH, _WIDTH)
    y = torch.randn(_BATCH, _WIDTH)
    with tempfile.TemporaryDirectory() as folder:
        writer = None
        if mode in ("plain", "histograms", "watch"):
            writer = gs.SummaryWriter(folder)
        elif mode == "tensorboardX":
            writer = tensorboardX.SummaryWriter(folder)
        elif mode == "torch":
            writer = TorchWriter(folder)
        if mode == "watch":
            gs.watch(model, writer, log="all")
        named = list(model.named_parameters())

        def step(i: int) -> None:
            optimiser.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            if mode in ("plain", "tensorboardX", "torch"):
                for name, p in named:
                    writer.add_histogram("parameters/" + name, p.detach(), i)
                    writer.add_histogram("gradients/" + name, p.grad, i)
            elif mode == "histograms":
                writer.add_histograms(named, i, prefix="parameters/")
                writer.add_histograms(((n, p.grad) for n, p in named), i, prefix="gradients/")
            optimiser.step()

        for i in range(2):
            step(i)
        if writer is not None:
            writer.flush()
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(2, 2 + steps):
            step(i)
        if writer is not None:
            writer.close()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / steps, wall / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--peer-steps", type=int, default=4, help="timed steps of the peers")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default=",".join(_MODES))
    args = parser.parse_args()
    modes = [m for m in args.only.split(",") if m]
    if "none" not in modes:
        modes.insert(0, "none")
    torch.set_num_threads(1)
    n_params = sum(p.numel() for p in _model().parameters())
    print(
        f"MLP {_LAYERS} x Linear({_WIDTH}, {_WIDTH}): {n_params / 1e6:.2f}M parameters in "
        f"{2 * _LAYERS} tensors, batch {_BATCH}, 1 torch thread; torch {torch.__version__}, "
        f"tensorboardX {tensorboardX.__version__}"
    )
    for mode in modes:  # compiles what each mode runs (numba's kernels) before any timing
        _run(mode, 1)
    results: dict[str, list[tuple[float, float, float]]] = {m: [] for m in modes}
    for r in range(args.repeat):
        base = None
        for mode in modes:
            steps = args.peer_steps if mode in ("tensorboardX", "torch") else args.steps
            cpu, wall = _run(mode, steps)
            if mode == "none":
                base = cpu
            overhead = 100 * (cpu - base) / base
            results[mode].append((cpu, wall, overhead))
            print(
                f"  repeat {r + 1} {mode:>12}: cpu {cpu * 1e3:8.1f} ms/step, "
                f"wall {wall * 1e3:8.1f} ms/step, overhead {overhead:7.1f} %",
                flush=True,
            )
    print("mode          cpu ms/step        wall ms/step       CPU overhead over none")
    for mode in modes:
        cpus, walls, overheads = zip(*results[mode], strict=True)
        print(
            f"{mode:>12}  {min(cpus) * 1e3:7.1f}-{max(cpus) * 1e3:<7.1f}  "
            f"{min(walls) * 1e3:7.1f}-{max(walls) * 1e3:<7.1f}  "
            f"{min(overheads):6.0f}-{max(overheads):.0f} %"
        )


if __name__ == "__main__":
    main()
