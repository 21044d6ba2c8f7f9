"""One rank of the distributed tests (tests/test_distributed.py): started as a process per rank,
over torch.distributed (gloo, 127.0.0.1) or MPI (``mpiexec -n N python dist_worker.py ...``).

Every rank logs the same calls with its own shard; the rank writes a JSON summary of what its
calls returned to ``<out>/rank<r>.json`` for the test to compare with NumPy on the
concatenated shards.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

import numpy as np

# Under mpiexec this file runs as a script: its siblings are imported as ``support.*``.
_TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

SHARD_SIZES = (1000, 1337, 64, 2500)


def shard(rank: int) -> np.ndarray:
    """Rank r's values: its own scale and offset, NaN and ±Inf sprinkled in."""
    rng = np.random.default_rng(100 + rank)
    values = rng.standard_normal(SHARD_SIZES[rank % len(SHARD_SIZES)]) * (rank + 1) + rank
    values[:: 41 + rank] = np.nan
    values[3 + rank] = np.inf
    values[7] = -np.inf
    return values.astype(np.float32)


def pr_shard(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A rank's labels (value > 0) and scores (a logistic of the value) for add_pr_curve."""
    finite = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=50.0, neginf=-50.0)
    return values > 0, (1 / (1 + np.exp(-finite))).astype(np.float32)


def scenario(writer_module, logdir: str, rank: int, size: int, distributed: object) -> dict:
    """Every kind of call; returns what the handles and writer report on this rank."""
    gs = writer_module
    values = shard(rank)
    out: dict = {"rank": rank}
    with gs.SummaryWriter(logdir, distributed=distributed) as writer:
        out["file"] = writer.file_path
        writer.add_histogram("h/ladder", values, 0)
        writer.add_histogram("h/edges", values, 0, bins=[-2.0, 0.0, 0.5, 3.0])
        writer.add_histogram("h/even", values, 0, bins=17)
        writer.add_histograms({"a": values, "b": values[::3] * 2}, 0, prefix="many/")
        writer.add_histogram("lowp/h", values * 3e4, 0, formats=("float16", "float8_e4m3fn"))
        writer.add_histograms({"a": values * 1e-7, "b": values * 1e5}, 0, prefix="lowp/",
                              formats="float8_e5m2")  # fmt: skip
        writer.add_scalar("s/mean", float(rank), 0)
        writer.add_scalar("s/sum", rank + 1, 0, reduce="sum")
        writer.add_scalar("s/min", 10.0 - rank, 0, reduce="min")
        writer.add_scalar("s/max", np.float64(rank * 2.5), 0, reduce="max")
        writer.add_scalar("s/rank0", 100.0 + rank, 0, reduce="rank0")
        for step in range(3):
            writer.add_scalar("s/steps", float(step * size + rank), reduce="mean")
        writer.add_text("t", f"rank {rank} says hello", 0)
        labels, scores = pr_shard(values)
        writer.add_pr_curve("pr", labels, scores, 0, num_thresholds=33)
        for step in range(3):  # a window of two steps, then one left open until close
            writer.add_histogram("win/h", values * (step + 1), step, window=2)
            writer.add_scalar("win/s", float(rank + step), step, window=2,
                              reduce=("mean", "max", "last"))  # fmt: skip
        torch = sys.modules.get("torch")
        out["probed"] = torch is not None
        if torch is not None:  # probes are torch operators: the gloo runs
            probe = writer.probe("probe/x")
            probe(torch.from_numpy(values))
            probe(torch.from_numpy(values[::2] * 3))
            writer.collect(0)
        writer.add_image("i", np.full((4, 5), rank / max(1, size - 1)), 0, dataformats="HW")
        writer.add_hparams({"lr": 0.1, "rank_specific": "same"}, {"s/mean": None}, run_name=".")
        writer.add_graph([{"name": "x", "class_name": "InputLayer", "config": {}}])
        writer.add_embedding(np.eye(3) * (rank + 1), ["a", "b", "c"], tag="e")
        report = writer.add_anomaly("a", values, 0, lower=-2.0, upper=3.0, max_positions=6)
        result = report.result()
        out["anomaly"] = {
            "nan": result.nan,
            "posinf": result.posinf,
            "neginf": result.neginf,
            "below": result.below,
            "above": result.above,
            "count": result.count,
            "positions": [[p.rank, list(p.index), p.kind] for p in result.positions],
            "quantile_count": len(result.quantiles),
        }
    try:  # a distributed writer does not reopen after close(), unlike a lone one
        writer.add_scalar("after", 1.0, 0)
    except ValueError as exc:
        out["after_close"] = str(exc)
    return out


def device(writer_module, logdir: str, rank: int, size: int, distributed: object) -> dict:
    """Device tensors through the CUDA backend, on the CPU stand-in for CuPy (the kernels the
    test process built, in $GS_EMULATED_KERNELS): reductions launched by the caller,
    collectives run by the aggregation thread, the even-bins pass over a device snapshot."""
    from support import fake_cupy

    sys.modules["cupy"] = fake_cupy.install(os.environ["GS_EMULATED_KERNELS"], reuse=True)
    gs = writer_module
    values = fake_cupy.asarray(shard(rank))
    out: dict = {"rank": rank}
    with gs.SummaryWriter(logdir, distributed=distributed) as writer:
        writer.add_histogram("h/ladder", values, 0)
        writer.add_histogram("h/even", values, 0, bins=17)
        writer.add_scalar("s/mean", fake_cupy.asarray(np.float32(rank)), 0)
        result = writer.add_anomaly("a", values, 0, lower=-2.0, upper=3.0, max_positions=6)
        report = result.result()
        out["anomaly"] = {"nan": report.nan, "below": report.below, "count": report.count}
        out["launches"] = sorted({op[1] for op in fake_cupy.log if op[0] == "launch"})
    return out


class Context:
    """What a scenario knows of its job: its rank, the writer's ``distributed`` argument, and
    the training's own collectives (torch's default group, or MPI's COMM_WORLD)."""

    def __init__(self, rank: int, size: int, logdir: str, distributed: object,
                 option: str) -> None:  # fmt: skip
        self.rank, self.size, self.logdir = rank, size, logdir
        self.distributed, self.option = distributed, option
        self.destroy_group = True  # the runner's destroy_process_group() at the end

    def all_reduce(self, values: np.ndarray) -> np.ndarray:
        """The training's SUM all-reduce (its own group, never the writer's)."""
        if self.distributed == "torch":
            import torch
            import torch.distributed as dist

            tensor = torch.from_numpy(np.array(values, dtype=np.float64))
            dist.all_reduce(tensor)
            return tensor.numpy()
        from mpi4py import MPI

        out = np.empty_like(values, dtype=np.float64)
        MPI.COMM_WORLD.Allreduce(np.asarray(values, dtype=np.float64), out)
        return out

    def barrier(self) -> None:
        if self.distributed == "torch":
            import torch.distributed as dist

            dist.barrier()
        else:
            from mpi4py import MPI

            MPI.COMM_WORLD.Barrier()


def _scenarios() -> dict:
    from support import dist_faults

    return {"scenario": scenario, "device": device, **dist_faults.SCENARIOS}


def _call(name: str, gs: object, ctx: Context) -> dict:
    function = _scenarios()[name]
    if name in ("scenario", "device"):
        return function(gs, ctx.logdir, ctx.rank, ctx.size, ctx.distributed)
    return function(gs, ctx)


def run_torch(rank: int, size: int, port: int, logdir: str, out: str, name: str,
              option: str = "") -> None:  # fmt: skip
    """multiprocessing entry point: gloo on 127.0.0.1."""
    import torch.distributed as dist

    import gpu_summary as gs

    try:
        dist.init_process_group(
            "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
        )
        ctx = Context(rank, size, logdir, "torch", option)
        result = _call(name, gs, ctx)
        if ctx.destroy_group and dist.is_initialized():
            dist.destroy_process_group()
    except BaseException:  # noqa: BLE001 - reported to the test
        result = {"rank": rank, "crash": traceback.format_exc()}
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as file:
        json.dump(result, file)


def run_mpi(logdir: str, out: str, name: str, option: str = "") -> None:
    """mpiexec entry point."""
    from mpi4py import MPI

    import gpu_summary as gs

    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    try:
        result = _call(name, gs, Context(rank, size, logdir, "mpi", option))
    except BaseException:  # noqa: BLE001 - reported to the test
        result = {"rank": rank, "crash": traceback.format_exc()}
    with open(os.path.join(out, f"rank{rank}.json"), "w", encoding="utf-8") as file:
        json.dump(result, file)


if __name__ == "__main__":
    run_mpi(*sys.argv[1:5])
