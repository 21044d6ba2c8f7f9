"""Live latency: from an ``add_scalar``/``add_histogram`` call to a running ``tensorboard``
serving that step over its HTTP API, with nothing flushed by hand.

Usage: python benchmarks/bench_live.py [--steps 10] [--reload 1 5] [--cap 20]

For each TensorBoard loader (``--load_fast=false``: the Python one; ``true``: the Rust data
server) and each ``--reload_interval`` given (TensorBoard's default is 5 s), one server is
started on 127.0.0.1 over a fresh logdir; a writer logs one scalar and one 10k-value histogram
per step (from step 0, once the server is up and has scanned the new run's folder; each at a
random moment of the reload cycle), and the
script polls the scalars and histograms endpoints every 20 ms until the step is served.
gpu_summary runs with its default ``flush_secs=1.0``; tensorboardX, in the same
process on the same server, with its defaults (``flush_secs=120``, ``max_queue=10``), the
peers' usual setting. A step not served within ``--cap`` seconds counts as the cap (and is
marked) and ends that writer's case. Prints median / worst latency per case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **query: str) -> object:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _served_step(base: str, path: str, run: str, tag: str) -> int | None:
    try:
        answer = _get(base, path, run=run, tag=tag)
    except (OSError, ValueError):
        return None
    return answer[-1][1] if answer else None


def _wait_for(base: str, run: str, tag: str, path: str, step: int, cap: float) -> float | None:
    """Seconds until ``step`` is the last one served, or None past ``cap``."""
    start = time.monotonic()
    while time.monotonic() - start < cap:
        if _served_step(base, path, run, tag) == step:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


class _Server:
    def __init__(self, logdir: str, load_fast: bool, reload_s: int) -> None:
        self.base = f"http://127.0.0.1:{_free_port()}"
        self.reload_s = reload_s
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
             "--port", self.base.rsplit(":", 1)[1], f"--load_fast={str(load_fast).lower()}",
             "--reload_interval", str(reload_s)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while True:  # up once it answers
            try:
                _get(self.base, "/data/runs")
                break
            except (OSError, ValueError):
                if time.monotonic() > deadline:
                    raise RuntimeError("tensorboard did not come up") from None
                time.sleep(0.2)

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def _measure(writer_kind: str, server: _Server, logdir: str, steps: int, cap: float) -> list:
    run = f"{writer_kind}"
    folder = os.path.join(logdir, run)
    if writer_kind == "gpu_summary":
        import gpu_summary as gs

        writer = gs.SummaryWriter(folder)
    else:
        from tensorboardX import SummaryWriter

        writer = SummaryWriter(folder)
    rng = np.random.default_rng(0)
    time.sleep(server.reload_s + 1.0)  # the server has scanned the new run's folder once
    latencies = []
    for step in range(steps):
        # Log at a random phase of the server's reload cycle: waiting for each step to be
        # served would otherwise lock the logging to just after a reload (the worst phase).
        time.sleep(rng.uniform(0, server.reload_s))
        values = rng.standard_normal(10_000).astype(np.float32)
        start = time.monotonic()
        writer.add_scalar("loss", float(step), step)
        writer.add_histogram("weights", values, step)
        scalar = _wait_for(server.base, run, "loss", "/data/plugin/scalars/scalars", step, cap)
        spent = time.monotonic() - start
        histogram = _wait_for(server.base, run, "weights", "/data/plugin/histograms/histograms",
                              step, max(cap - spent, 0.05))  # fmt: skip
        latencies.append(None if scalar is None or histogram is None else time.monotonic() - start)
        if latencies[-1] is None:
            break  # a capped step: the rest would be too, and cost the cap each
    writer.close()
    return latencies


def _describe(latencies: list, cap: float) -> str:
    capped = sum(1 for x in latencies if x is None)
    values = [cap if x is None else x for x in latencies]
    text = f"median {statistics.median(values):6.2f} s  worst {max(values):6.2f} s"
    if capped:
        text += f"  ({capped} of {len(values)} step(s) not served within {cap:.0f} s)"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--reload", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--cap", type=float, default=20.0)
    args = parser.parse_args()
    try:
        import tensorboardX  # noqa: F401
    except ImportError:
        peers = ["gpu_summary"]
        print("tensorboardX is not installed (pip install '.[bench]'): gpu_summary only")
    else:
        peers = ["gpu_summary", "tensorboardX"]
    import importlib.metadata

    import gpu_summary as gs

    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "-"

    print(f"machine: {platform.machine()} cpus={os.cpu_count()} python "
          f"{platform.python_version()}  gpu_summary {gs.__version__}  tensorboard "
          f"{version('tensorboard')}  data server {version('tensorboard-data-server')}  "
          f"tensorboardX {version('tensorboardX')}")  # fmt: skip
    print(f"{args.steps} steps of one scalar + one 10k-value histogram; polled every 20 ms")
    for load_fast in (False, True):
        for reload_s in args.reload:
            with tempfile.TemporaryDirectory() as logdir:
                server = _Server(logdir, load_fast, reload_s)
                try:
                    for peer in peers:
                        latencies = _measure(peer, server, logdir, args.steps, args.cap)
                        loader = "rust" if load_fast else "python"
                        print(f"{loader:>6} loader  reload {reload_s} s  {peer:<13} "
                              f"{_describe(latencies, args.cap)}", flush=True)  # fmt: skip
                finally:
                    server.close()


if __name__ == "__main__":
    main()
