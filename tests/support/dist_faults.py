"""Scenarios of tests/test_distributed_faults.py, one rank each (started by dist_worker's
runners): a distributed writer beside the training's own collectives, ranks that disagree,
close early or late, die, stall, or destroy the training's process group under the writer.

Each returns a JSON-able summary of what its calls did on this rank; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np

from support.dist_worker import Context, shard

SHORT = 3.0  # the writer's timeout where a rank is meant to fail


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def training(gs, ctx: Context) -> dict:
    """The training all-reduces on another thread while this one logs, then DDP-style on this
    thread: all-reduce, then log. Every training result must be exact."""
    values = shard(ctx.rank)
    want = {i: sum(r + i for r in range(ctx.size)) for i in range(400)}
    wrong = {"thread": 0, "same": 0}

    def trainer() -> None:
        for i in range(150):
            got = ctx.all_reduce(np.full(4, float(ctx.rank + i)))
            wrong["thread"] += int(not (got == want[i]).all())

    with gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30) as writer:
        thread = threading.Thread(target=trainer)
        thread.start()
        for step in range(30):
            writer.add_histogram("grad", values * (step + 1), step)
            writer.add_scalar("loss", float(ctx.rank + step), step)
            writer.add_histograms({"a": values, "b": values[::2]}, step, prefix="many/")
        thread.join()
        for step in range(30, 60):
            got = ctx.all_reduce(np.full(8, float(ctx.rank + step)))
            wrong["same"] += int(not (got == want[step]).all())
            writer.add_histogram("grad", values * (step + 1), step)
            writer.add_scalar("loss", float(ctx.rank + step), step)
    return {"rank": ctx.rank, "wrong": wrong}


# Rank 1 differs from the others in one way a round; "skipped step" is last (its error
# reaches the rank that skipped at its next flush).
ROUNDS = ("tag", "skipped add_histograms", "add_histograms size", "dtype", "bins", "edges",
          "reduce", "skipped step")  # fmt: skip


def mismatches(gs, ctx: Context) -> dict:
    """One round per kind of difference; every rank must raise, none may hang or abort, and
    the writer goes on merging once the ranks agree again."""
    values = shard(ctx.rank)
    errors = []
    deviate = ctx.rank == 1
    with gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30) as writer:
        for k, kind in enumerate(ROUNDS):
            step = 2 * k
            if not (deviate and kind == "skipped step"):
                writer.add_scalar("loss", 1.0, step)
                _deviation(writer, kind, deviate, values, step)
            writer.add_scalar("sync", float(ctx.rank), step + 1)  # seals the round's step
            try:
                writer.flush()  # waits for that step's exchange
            except gs.MismatchError as exc:
                errors.append(_error(exc))
        writer.add_histogram("after", values, 100)
        writer.add_scalar("after/loss", float(ctx.rank), 100)
        try:
            writer.flush()
        except gs.MismatchError as exc:
            errors.append(_error(exc))
    return {"rank": ctx.rank, "errors": errors}


def _deviation(writer, kind: str, deviate: bool, values: np.ndarray, step: int) -> None:
    if kind == "tag":
        writer.add_histogram("b" if deviate else "a", values, step)
    elif kind == "skipped add_histograms":
        if not deviate:
            writer.add_histograms({"x": values, "y": values}, step)
    elif kind == "add_histograms size":
        writer.add_histograms({"x": values} if deviate else {"x": values, "y": values}, step)
    elif kind == "dtype":
        writer.add_histogram("d", values.astype(np.float16 if deviate else np.float32), step)
    elif kind == "bins":
        writer.add_histogram("n", values, step, bins=16 if deviate else 17)
    elif kind == "edges":
        writer.add_histogram("e", values, step, bins=[0.0, 1.0] if deviate else [0.0, 1.0, 2.0])
    elif kind == "reduce":
        writer.add_scalar("r", 1.0, step, reduce="max" if deviate else "min")


def skip_last(gs, ctx: Context) -> dict:
    """Rank 1 skips its last call, then every rank closes and meets in the training's
    barrier (as every job ends): errors on every rank, no hang."""
    values = shard(ctx.rank)
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30)
    for step in range(5):
        writer.add_scalar("loss", float(step), step)
        if not (ctx.rank == 1 and step == 4):
            writer.add_histogram("h", values, step)
    out: dict = {"rank": ctx.rank}
    try:
        writer.close()
    except gs.MismatchError as exc:
        out["close"] = _error(exc)
    ctx.barrier()
    out["barrier"] = True
    return out


def early_close(gs, ctx: Context) -> dict:
    """Rank ``option`` closes after 3 steps; the others log 6. Every rank raises, the training's
    barrier is met, rank 0's file keeps the steps merged before."""
    closer = int(ctx.option)
    values = shard(ctx.rank)
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30)
    errors = []
    for step in range(3 if ctx.rank == closer else 6):
        try:
            writer.add_scalar("loss", float(step), step)
            writer.add_histogram("h", values, step)
        except (gs.MismatchError, gs.AggregationError) as exc:
            errors.append(_error(exc))
    try:
        writer.close()
    except (gs.MismatchError, gs.AggregationError) as exc:
        errors.append(_error(exc))
    ctx.barrier()
    return {"rank": ctx.rank, "errors": errors}


def _log_until_error(gs, writer, values: np.ndarray, first: int, steps: int) -> dict:
    """Log steps from ``first`` until a call raises (or ``steps`` ran): what raised, and how
    long after ``first`` began."""
    start = time.monotonic()
    for step in range(first, first + steps):
        try:
            writer.add_scalar("loss", float(step), step)
            writer.add_histogram("h", values, step)
        except (gs.MismatchError, gs.AggregationError) as exc:
            return {"error": _error(exc), "after": time.monotonic() - start, "step": step}
        time.sleep(0.02)
    return {"error": None, "after": time.monotonic() - start}


def kill(gs, ctx: Context) -> dict:
    """Rank 1 dies (SIGKILL) after three merged steps; the others' next calls raise within the
    writer's timeout, and their close() returns."""
    values = shard(ctx.rank)
    ctx.destroy_group = False  # a member is gone
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=SHORT)
    for step in range(3):
        writer.add_scalar("loss", float(step), step)
        writer.add_histogram("h", values, step)
    writer.add_scalar("loss", 3.0, 3)  # seals step 2
    writer.flush()  # steps 0-2 merged and written
    if ctx.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    out = {"rank": ctx.rank, **_log_until_error(gs, writer, values, 4, 2000)}
    start = time.monotonic()
    try:
        writer.close()
    except (gs.MismatchError, gs.AggregationError) as exc:
        out["close"] = _error(exc)
    out["close_seconds"] = time.monotonic() - start
    return out


def stall(gs, ctx: Context) -> dict:
    """Rank 1 stalls for three timeouts; the others' next calls raise within the timeout; the
    stalled rank raises too once it wakes; all meet in the training's barrier."""
    values = shard(ctx.rank)
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=SHORT)
    for step in range(3):
        writer.add_scalar("loss", float(step), step)
        writer.add_histogram("h", values, step)
    if ctx.rank == 1:
        time.sleep(3 * SHORT)
    out = {"rank": ctx.rank, **_log_until_error(gs, writer, values, 3, 2000)}
    try:
        writer.close()
    except (gs.MismatchError, gs.AggregationError) as exc:
        out["close"] = _error(exc)
    ctx.barrier()
    return out


def destroy(gs, ctx: Context) -> dict:
    """The training destroys its process groups while merges are queued, then closes the
    writer: the writer's own group is not the training's, so every merge completes."""
    import torch.distributed as dist

    values = shard(ctx.rank)
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30)
    for step in range(40):
        writer.add_histogram("h", values * (step + 1), step)
        writer.add_scalar("loss", float(ctx.rank + step), step)
    dist.destroy_process_group()
    writer.close()
    return {"rank": ctx.rank}


def unclosed(gs, ctx: Context) -> dict:
    """Every rank logs and never closes its writer: at exit each closes it (its ranks' last
    step merged), before the event files close."""
    writer = gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=30)
    for step in range(5):
        writer.add_scalar("loss", float(ctx.rank + step), step)
        writer.add_histogram("h", shard(ctx.rank), step)
    return {"rank": ctx.rank}


def subgroup(gs, ctx: Context) -> dict:
    """A writer over a subgroup (ranks 0 and 2 of 3: only they create it), then one over
    every rank: each its own group, its own keys in the store."""
    import torch.distributed as dist

    group = dist.new_group([0, 2])
    out: dict = {"rank": ctx.rank}
    if ctx.rank in (0, 2):
        with gs.SummaryWriter(f"{ctx.logdir}/pair", distributed=group, timeout=30) as writer:
            out["pair_rank"] = writer.rank
            writer.add_scalar("loss", float(ctx.rank), 0)
    with gs.SummaryWriter(f"{ctx.logdir}/all", distributed=ctx.distributed, timeout=30) as w:
        w.add_scalar("loss", float(ctx.rank), 0)
    return out


def absent(gs, ctx: Context) -> dict:
    """Rank 1 never creates the writer: the others' SummaryWriter() raises within the timeout,
    and every rank meets in the training's barrier."""
    out: dict = {"rank": ctx.rank}
    if ctx.rank != 1:
        start = time.monotonic()
        try:
            gs.SummaryWriter(ctx.logdir, distributed=ctx.distributed, timeout=SHORT)
        except gs.AggregationError as exc:
            out["error"] = _error(exc)
        out["seconds"] = time.monotonic() - start
    ctx.barrier()
    return out


SCENARIOS = {
    name: globals()[name]
    for name in ("absent", "unclosed", "subgroup", "training", "mismatches", "skip_last",
                 "early_close", "kill", "stall", "destroy")
}  # fmt: skip
