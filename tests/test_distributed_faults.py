"""A distributed writer inside a real job can never hurt it: the training's own collectives
stay exact, every mismatch is an error on every rank, dead, stalled and early-closing ranks
end in errors within the writer's timeout, and destroying the training's groups leaves the
writer's own alone. Real ranks: gloo on 127.0.0.1, mpiexec from the mpich wheel; each run is
killed (and fails) if it outlives its deadline, so a hang costs at most a minute."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import legacy_reader
from gpu_summary._backend import numpy as numpy_backend
from support import dist_faults, dist_runner, dist_worker

needs_torch, needs_mpi = dist_runner.needs_torch, dist_runner.needs_mpi


def _run(backend: str, tmp_path, size: int, name: str, option: str = "", **kwargs):
    if backend == "torch":
        return dist_runner.run_torch(tmp_path, size, name, option, **kwargs)
    return dist_runner.run_mpi(tmp_path, size, name, option, **kwargs)


BACKENDS = [pytest.param("torch", marks=needs_torch), pytest.param("mpi", marks=needs_mpi)]


def _nonzero(counts) -> np.ndarray:
    counts = np.asarray(counts)
    return counts[counts > 0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow
def test_the_training_s_all_reduces_stay_exact_while_logging(tmp_path, backend):
    size = 3
    reports = _run(backend, tmp_path, size, "training")
    for report in reports:  # another thread, then the same thread as the writer's calls
        assert report["wrong"] == {"thread": 0, "same": 0}
    acc = legacy_reader(tmp_path / "logs")
    shards = [dist_worker.shard(rank) for rank in range(size)]
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
        (step, pytest.approx(step + (size - 1) / 2)) for step in range(60)]  # fmt: skip
    grads = acc.Histograms("grad")
    assert [e.step for e in grads] == list(range(60))
    for event in grads[::13]:
        want = numpy_backend.histogram_fixed(
            np.concatenate(shards) * (event.step + 1), None).result()  # fmt: skip
        np.testing.assert_array_equal(_nonzero(event.histogram_value.bucket),
                                      _nonzero(want.counts))  # fmt: skip
    assert len(acc.Histograms("many/b")) == 30


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_kind_of_mismatch_is_an_error_on_every_rank(tmp_path, backend):
    reports = _run(backend, tmp_path, 2, "mismatches")
    expected = {
        "tag": [
            "add_histogram('a', step=0, bins=tensorflow, float32) logged by rank 0 only",
            "add_histogram('b', step=0, bins=tensorflow, float32) logged by rank 1 only",
        ],
        "skipped add_histograms": [
            "add_histograms('x' float32, 'y' float32, step=2) logged by rank 0 only"
        ],
        "add_histograms size": ["add_histograms('x' float32, step=4) logged by rank 1 only"],
        "dtype": ["add_histogram('d', step=6, bins=tensorflow, float16) logged by rank 1 only"],
        "bins": ["add_histogram('n', step=8, bins=16, float32) logged by rank 1 only"],
        "edges": ["bins=3 edges"],
        "reduce": ["add_scalar('r', step=12, reduce='max') logged by rank 1 only"],
        "skipped step": ["ranks disagree about the step: rank 0 at step 14, rank 1 at step 15"],
    }
    for report in reports:
        errors = report["errors"]
        assert len(errors) == len(dist_faults.ROUNDS), errors
        for error, kind in zip(errors, dist_faults.ROUNDS, strict=True):
            assert error.startswith("MismatchError: ranks disagree"), error
            for part in expected[kind]:
                assert part in error, (kind, error)
    acc = legacy_reader(tmp_path / "logs")
    # What the ranks agreed on merged; nothing of a disagreeing step did.
    assert [e.step for e in acc.Scalars("sync")] == [1, 3, 5, 7, 9, 11, 13, 15]
    assert [e.value for e in acc.Scalars("sync")] == [0.5] * 8
    assert acc.Scalars("after/loss")[0].value == 0.5
    assert acc.Tags()["scalars"].count("loss") == 0
    assert sorted(acc.Tags()["histograms"]) == ["after"]
    everything = np.concatenate([dist_worker.shard(rank) for rank in range(2)])
    (after,) = acc.Histograms("after")
    assert after.histogram_value.num == np.isfinite(everything).sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_rank_that_skips_its_last_call_then_meets_the_barrier(tmp_path, backend):
    reports = _run(backend, tmp_path, 2, "skip_last")
    for report in reports:
        assert report["barrier"]
        assert report["close"].startswith("MismatchError: ranks disagree at step 4")
        assert (
            "add_histogram('h', step=4, bins=tensorflow, float32) not logged by rank 1"
            in report["close"]
            or "logged by rank 0 only" in report["close"]
        )
    acc = legacy_reader(tmp_path / "logs")
    assert [e.step for e in acc.Histograms("h")] == [0, 1, 2, 3]
    assert [e.step for e in acc.Scalars("loss")] == [0, 1, 2, 3]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("closer", [0, 1], ids=["rank 0 closes early", "rank 1 closes early"])
@pytest.mark.slow
def test_a_rank_closing_early_is_an_error_on_every_rank(tmp_path, backend, closer):
    reports = _run(backend, tmp_path, 3, "early_close", str(closer))
    for report in reports:
        first = report["errors"][0]
        assert first.startswith(f"MismatchError: rank {closer} closed the distributed writer "
                                "while")  # fmt: skip
        assert "logged step 3" in first
        assert all("MismatchError" in e or "merges nothing more" in e for e in report["errors"])
    acc = legacy_reader(tmp_path / "logs")  # rank 0's file: the steps merged before
    assert [e.step for e in acc.Histograms("h")] == [0, 1, 2]
    assert [e.value for e in acc.Scalars("loss")] == [0.0, 1.0, 2.0]


@needs_torch
@pytest.mark.slow
def test_a_killed_rank_is_an_error_within_the_timeout(tmp_path):
    reports = dist_runner.run_torch(tmp_path, 3, "kill", expect_dead=(1,))
    for report in (reports[0], reports[2]):
        assert report["error"].startswith("AggregationError: ")
        assert "lost contact" in report["error"] or "merges nothing more" in report["error"]
        # the writer's timeout (3 s, with room for a loaded machine), not the group's 30 min
        assert report["after"] < dist_faults.SHORT + 20
        assert report["close_seconds"] < dist_faults.SHORT + 20
    acc = legacy_reader(tmp_path / "logs")
    assert [e.step for e in acc.Histograms("h")][:3] == [0, 1, 2]
    everything = np.concatenate([dist_worker.shard(rank) for rank in range(3)])
    assert acc.Histograms("h")[0].histogram_value.num == np.isfinite(everything).sum()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow
def test_a_stalled_rank_is_an_error_on_every_rank_within_the_timeout(tmp_path, backend):
    reports = _run(backend, tmp_path, 2, "stall")
    assert reports[0]["error"].startswith("AggregationError: ")
    assert reports[0]["after"] < dist_faults.SHORT + 20
    assert reports[1]["error"] is not None or "close" in reports[1]  # it learns once awake
    acc = legacy_reader(tmp_path / "logs")
    assert [e.step for e in acc.Histograms("h")][:2] == [0, 1]


@needs_torch
@pytest.mark.slow
def test_destroying_the_training_s_groups_leaves_the_writer_s_merges_whole(tmp_path):
    dist_runner.run_torch(tmp_path, 2, "destroy")
    acc = legacy_reader(tmp_path / "logs")
    assert [e.step for e in acc.Histograms("h")] == list(range(40))
    assert [e.value for e in acc.Scalars("loss")] == [step + 0.5 for step in range(40)]
    everything = np.concatenate([dist_worker.shard(rank) for rank in range(2)])
    want = numpy_backend.histogram_fixed(everything * 40, None).result()
    np.testing.assert_array_equal(_nonzero(acc.Histograms("h")[-1].histogram_value.bucket),
                                  _nonzero(want.counts))  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_writers_left_open_are_closed_at_exit_with_their_last_step(tmp_path, backend):
    _run(backend, tmp_path, 2, "unclosed")
    acc = legacy_reader(tmp_path / "logs")
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [
        (step, step + 0.5) for step in range(5)]  # fmt: skip
    assert [e.step for e in acc.Histograms("h")] == list(range(5))


@needs_torch
@pytest.mark.slow
def test_a_writer_over_a_subgroup_merges_its_ranks_only(tmp_path):
    reports = dist_runner.run_torch(tmp_path, 3, "subgroup")
    assert [r.get("pair_rank") for r in reports] == [0, None, 1]
    assert [e.value for e in legacy_reader(tmp_path / "logs" / "pair").Scalars("loss")] == [1.0]
    assert [e.value for e in legacy_reader(tmp_path / "logs" / "all").Scalars("loss")] == [1.0]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow
def test_a_rank_that_never_creates_the_writer_is_an_error_within_the_timeout(tmp_path, backend):
    reports = _run(backend, tmp_path, 3, "absent")
    for report in (reports[0], reports[2]):
        assert report["error"].startswith("AggregationError: the writer's own ")
        assert "create the distributed SummaryWriter on every rank" in report["error"]
        assert report["seconds"] < dist_faults.SHORT + 20
