"""Rank-0 aggregation with real processes on 127.0.0.1: torch.distributed (gloo) and MPI
(mpiexec from the mpich wheel); the merged logs equal NumPy on the concatenated shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader, plugin_reader, tensor_values
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import formats as _formats
from gpu_summary.summaries import pr_curve as pr_summaries
from support import dist_runner, dist_worker

_HAS_TORCH = dist_runner.HAS_TORCH
needs_torch, needs_mpi = dist_runner.needs_torch, dist_runner.needs_mpi


def histogram_events(acc, tag):
    return [(e.step, e.histogram_value) for e in acc.Histograms(tag)]


def _check_scenario(tmp_path, results, size):
    logdir = tmp_path / "logs"
    shards = [dist_worker.shard(rank) for rank in range(size)]
    everything = np.concatenate(shards)
    # Only rank 0 made files: one event file, its graph and projector files.
    assert results[0]["file"] is not None
    assert all(r["file"] is None for r in results[1:])
    events = [p for p in logdir.iterdir() if "tfevents" in p.name]
    assert [p.name for p in events] == [Path(results[0]["file"]).name]
    acc = legacy_reader(logdir)

    def histogram(tag):
        (event,) = acc.Histograms(tag)
        return event.histogram_value

    # Fixed edges: exactly the histogram of the concatenated data.
    want = numpy_backend.histogram_fixed(everything, None).result()
    got = histogram("h/ladder")
    nonzero = want.counts[want.counts > 0]
    np.testing.assert_array_equal(np.asarray(got.bucket)[np.asarray(got.bucket) > 0], nonzero)
    assert got.num == want.stats.count
    assert (got.min, got.max) == (want.stats.min, want.stats.max)
    assert got.sum == pytest.approx(want.stats.sum, rel=1e-9, abs=1e-9)
    limits = np.array([-2.0, 0.0, 0.5, 3.0, np.finfo(np.float64).max])
    want = numpy_backend.histogram_fixed(everything, limits).result()
    np.testing.assert_array_equal(histogram("h/edges").bucket, want.counts)
    # Even bins over the global range: numpy.histogram of everything.
    want = numpy_backend.histogram_even(everything, 17).result()
    got = histogram("h/even")
    np.testing.assert_array_equal(got.bucket, want.counts)
    np.testing.assert_array_equal(got.bucket_limit, want.limits)
    finite = everything[np.isfinite(everything)].astype(np.float64)
    assert np.asarray(got.bucket).sum() == finite.size

    # add_histograms: every tensor merged by one pair of collectives.
    for tag, part in (
        ("many/a", everything),
        ("many/b", np.concatenate([v[::3] * 2 for v in shards])),
    ):
        want = numpy_backend.histogram_fixed(part, None).result()
        got = histogram(tag)
        np.testing.assert_array_equal(np.asarray(got.bucket)[np.asarray(got.bucket) > 0],
                                      want.counts[want.counts > 0])  # fmt: skip
        assert (got.num, got.min, got.max) == (want.stats.count, want.stats.min, want.stats.max)

    def scalar(tag):
        return [(e.step, e.value) for e in acc.Scalars(tag)]

    # formats=: every rank's counts summed, exactly those of the concatenated data.
    for tag, part, formats in (
        ("lowp/h", [v * 3e4 for v in shards], ("float16", "float8_e4m3fn")),
        ("lowp/a", [v * 1e-7 for v in shards], ("float8_e5m2",)),
        ("lowp/b", [v * 1e5 for v in shards], ("float8_e5m2",)),
    ):
        want = numpy_backend.format_counts(np.concatenate(part), formats).result().ravel()
        assert sum(want) > 0
        assert [scalar(t) for t in _formats.count_tags(tag, formats)] == [
            [(0, float(c))] for c in want
        ]

    assert scalar("s/mean") == [(0, pytest.approx((size - 1) / 2))]
    assert scalar("s/sum") == [(0, size * (size + 1) / 2)]
    assert scalar("s/min") == [(0, 10.0 - (size - 1))]
    assert scalar("s/max") == [(0, (size - 1) * 2.5)]
    assert scalar("s/rank0") == [(0, 100.0)]
    assert [v for _, v in scalar("s/steps")] == [
        pytest.approx(step * size + (size - 1) / 2) for step in range(3)
    ]
    # Windows merged across ranks once per window: the histogram of every rank's values of
    # every step of the window; scalars reduced over every (rank, step).
    windows = [(1, [0, 1]), (2, [2])]
    for (step, got), (want_step, members) in zip(histogram_events(acc, "win/h"), windows,
                                                 strict=True):  # fmt: skip
        assert step == want_step
        together = np.concatenate([v * (k + 1) for k in members for v in shards])
        want = numpy_backend.histogram_fixed(together, None).result()
        np.testing.assert_array_equal(np.asarray(got.bucket)[np.asarray(got.bucket) > 0],
                                      want.counts[want.counts > 0])  # fmt: skip
        assert (got.num, got.min, got.max) == (want.stats.count, want.stats.min, want.stats.max)
    ranks = np.arange(size)
    assert scalar("win/s") == [(1, pytest.approx((ranks.mean() * 2 + 1) / 2)),
                               (2, pytest.approx(ranks.mean() + 2))]  # fmt: skip
    assert scalar("win/s/max") == [(1, size), (2, size + 1)]
    assert scalar("win/s/last") == [(1, pytest.approx(ranks.mean() + 1)),
                                    (2, pytest.approx(ranks.mean() + 2))]  # fmt: skip
    if results[0]["probed"]:  # a probe's collect: merged as a one-step window
        together = np.concatenate([part for v in shards for part in (v, v[::2] * 3)])
        want = numpy_backend.histogram_fixed(together, None).result()
        got = histogram("probe/x")
        np.testing.assert_array_equal(np.asarray(got.bucket)[np.asarray(got.bucket) > 0],
                                      want.counts[want.counts > 0])  # fmt: skip
        assert (got.num, got.min, got.max) == (want.stats.count, want.stats.min, want.stats.max)
        assert scalar("probe/x/nonfinite") == [(0, np.count_nonzero(~np.isfinite(together)))]
    # The PR curve of every rank's pairs: the counts summed, exactly.
    pairs = [dist_worker.pr_shard(values) for values in shards]
    want = numpy_backend.pr_counts(
        np.concatenate([s for _, s in pairs]), np.concatenate([lab for lab, _ in pairs]), None, 33
    ).result()
    ((_, curve),) = tensor_values(logdir, "pr")
    np.testing.assert_array_equal(curve, pr_summaries.curve(want.tp, want.fp).astype(np.float32))
    assert curve[0, 0] + curve[1, 0] == everything.size
    ((_, text),) = tensor_values(logdir, "t/text_summary")
    assert [t.decode() for t in text] == ["rank 0 says hello"]
    assert len(plugin_reader(logdir).Tensors("i")) == 1
    assert "_hparams_/experiment" in plugin_reader(logdir).PluginTagToContent("hparams")
    assert (logdir / "graph" / "structure_graph.json").is_file()
    config = (logdir / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 1
    # Anomaly counts summed over ranks; positions tagged with their rank; on every rank.
    x = everything.astype(np.float64)
    fin = np.isfinite(x)
    want_counts = {
        "nan": int(np.isnan(x).sum()),
        "posinf": int((x == np.inf).sum()),
        "neginf": int((x == -np.inf).sum()),
        "below": int((fin & (x < -2)).sum()),
        "above": int((fin & (x > 3)).sum()),
        "count": int(fin.sum()),
    }
    first = []
    for rank, values in enumerate(shards):
        v = values.astype(np.float64)
        bad = ~np.isfinite(v) | (v < -2) | (v > 3)
        first += [[rank, [int(i)]] for i in np.flatnonzero(bad)[:6]]
    for result in results:
        report = result["anomaly"]
        assert {k: report[k] for k in want_counts} == want_counts
        assert [p[:2] for p in report["positions"]] == first[:6]
        assert "distributed writer does not reopen" in result["after_close"]
        assert report["quantile_count"] == len(_anomaly.QUANTILES)
    assert acc.Scalars("a/anomaly/nan")[0].value == want_counts["nan"]
    assert histogram("a/anomaly/values").num == want_counts["count"]
    ((_, table),) = tensor_values(logdir, "a/anomaly/positions")
    assert "| rank | index | value | kind |" in table.item().decode()


@needs_torch
@pytest.mark.parametrize(
    "size",
    [1, 2, pytest.param(4, marks=pytest.mark.slow), pytest.param(16, marks=pytest.mark.slow)],
)
def test_torch_gloo_ranks_merge_exactly(tmp_path, size):
    results = dist_runner.run_torch(tmp_path, size, "scenario")
    assert all(r["probed"] for r in results)  # torch is loaded: the probes ran too
    _check_scenario(tmp_path, results, size)


@needs_mpi
@pytest.mark.parametrize("size", [1, 3, 8])
def test_mpi_ranks_merge_exactly(tmp_path, size):
    results = dist_runner.run_mpi(tmp_path, size, "scenario")
    _check_scenario(tmp_path, results, size)


@needs_mpi
def test_device_tensors_merge_through_the_aggregation_thread(tmp_path, _emulated_kernels):
    """The CUDA backend's path (emulated kernels, 2 MPI ranks): equal to NumPy on everything."""
    folder = _emulated_kernels.built_in
    results = dist_runner.run_mpi(tmp_path, 2, "device", GS_EMULATED_KERNELS=str(folder))
    everything = np.concatenate([dist_worker.shard(rank) for rank in range(2)])
    acc = legacy_reader(tmp_path / "logs")
    want = numpy_backend.histogram_even(everything, 17).result()
    (even,) = acc.Histograms("h/even")
    np.testing.assert_array_equal(even.histogram_value.bucket, want.counts)
    (ladder,) = acc.Histograms("h/ladder")
    assert ladder.histogram_value.num == want.stats.count
    assert acc.Scalars("s/mean")[0].value == 0.5
    x = everything.astype(np.float64)
    for result in results:
        assert result["anomaly"] == {
            "nan": int(np.isnan(x).sum()),
            "below": int((np.isfinite(x) & (x < -2)).sum()),
            "count": int(np.isfinite(x).sum()),
        }
        assert {"gs_reduce", "gs_anomaly_scan"} <= set(result["launches"])


def test_bad_distributed_arguments(tmp_path):
    with pytest.raises(ValueError, match="distributed must be 'torch', 'mpi'"):
        gs.SummaryWriter(tmp_path, distributed="nccl")
    if _HAS_TORCH:
        import torch.distributed

        if not torch.distributed.is_initialized():
            with pytest.raises(ValueError, match="init_process_group"):
                gs.SummaryWriter(tmp_path, distributed="torch")
    with pytest.raises(ValueError, match="timeout bounds the collectives"):
        gs.SummaryWriter(tmp_path, timeout=5)
    for bad, error in ((0, ValueError), (-1.0, ValueError), (float("inf"), ValueError),
                       ("60", TypeError), (True, TypeError)):  # fmt: skip
        with pytest.raises(error, match="timeout must be"):
            gs.SummaryWriter(tmp_path, distributed="torch", timeout=bad)
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="reduce must be one of"):
            writer.add_scalar("x", np.float64(1.0), 0, reduce="median")
