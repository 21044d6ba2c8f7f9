"""What an adversarial pass broke (issue 21), each case held to the promise: a clear
``ValueError``/``TypeError`` at the call naming the argument, or the value logged as it is —
never another exception type, never an error from a later call."""

from __future__ import annotations

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader

BIG = 10**400  # a Python int beyond float64


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda w: w.add_scalar("s", 1.0, 3, walltime=BIG), "walltime must be a finite"),
        (lambda w: w.add_histogram("h", np.arange(3.0), 0, bins=[0, BIG]), "edges must be finite"),
        (lambda w: w.add_anomaly("a", np.arange(3.0), 0, lower=BIG), "lower must be a finite"),
        (lambda w: w.add_anomaly("a", np.arange(3.0), 0, upper=-BIG), "upper must be a finite"),
        (lambda w: w.add_hparams({"x": BIG}, {"m": 1.0}), "'x' = 1000.*finite float64"),
        (lambda w: w.add_hparams({"x": 1}, {}, {"x": [1, BIG]}), "ValueSet numbers must be"),
        (lambda w: gs.IntegerRange(0, BIG), "IntegerRange bounds must be finite"),
        (lambda w: gs.ValueSet([1, BIG]), "ValueSet numbers must be finite"),
        (lambda w: gs.SummaryWriter(w.log_dir, flush_secs=BIG), "flush_secs must be a finite"),
        (lambda w: w.add_scalar("s", 1.0, BIG), "step must fit in int64"),
    ],
)  # fmt: skip
def test_ints_beyond_float64_are_a_value_error_where_a_finite_number_is_needed(
    tmp_path, call, match
):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=match):
            call(writer)
        writer.flush()  # nothing deferred


def test_ints_beyond_float64_are_logged_as_infinities_where_a_value_may_be_one(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_scalar("s", BIG, 0)  # the hot path
        writer.add_scalar("s", -BIG, 1, walltime=5.0)  # the general path
        writer.add_scalar("t", BIG, 0, new_style=True)
        writer.add_hparams({"x": 1}, {"m": BIG}, run_name="r")  # a metric may be ±inf
    acc = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("s")] == [(0, np.inf), (1, -np.inf)]
    assert legacy_reader(tmp_path / "r").Scalars("m")[0].value == np.inf
    assert "t" in acc.Tags()["tensors"]


def test_the_cell_table_is_built_once_however_many_threads_ask_first(monkeypatch):
    import threading
    import time

    from gpu_summary._core import ladder

    builds = []
    real_build = ladder._build_cell_table

    def slow_build(dtype):
        builds.append(dtype)
        time.sleep(0.2)  # every thread is waiting at the table by now (or already has it)
        return real_build(dtype)

    monkeypatch.setattr(ladder, "_tables", {})
    monkeypatch.setattr(ladder, "_build_cell_table", slow_build)
    start = threading.Barrier(16)
    tables = []

    def first_histogram():
        start.wait()
        tables.append(ladder.cell_table(np.dtype(np.float32)))

    threads = [threading.Thread(target=first_histogram) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert builds == [np.dtype(np.float32)]  # without the lock: one build per thread
    assert len(tables) == 16 and all(t is tables[0] for t in tables)
