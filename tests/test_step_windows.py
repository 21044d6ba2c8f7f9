"""window=K: one record per K steps holding every value of every step — the histogram of the
concatenated steps (counts and min/max exact), the scalar reductions, the first non-finite
step — on the NumPy backend, the emulated device and (``-m gpu``) a real GPU."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import ladder as _ladder


def _steps(rng, count, size=3000, dtype=np.float32):
    steps = [(rng.standard_normal(size) * (k + 1) + k).astype(dtype) for k in range(count)]
    steps[1][::97] = np.nan
    steps[1][5] = np.inf
    steps[3][7] = -np.inf
    return steps


def _histograms(logdir, tag):
    return [(e.step, e.histogram_value) for e in legacy_reader(logdir).Histograms(tag)]


def _check(got, values, limits):
    want = numpy_backend.histogram_fixed(values, limits).result()
    nonzero = want.counts[want.counts > 0]
    np.testing.assert_array_equal(np.asarray(got.bucket)[np.asarray(got.bucket) > 0], nonzero)
    assert got.num == want.stats.count
    assert (got.min, got.max) == (want.stats.min, want.stats.max)
    scale = np.abs(values[np.isfinite(values)].astype(np.float64)).sum()
    assert abs(got.sum - want.stats.sum) <= kernel_sources.MOMENT_RTOL * scale + 1e-9


@pytest.mark.parametrize("bins", ["tensorflow", [-2.0, 0.0, 0.5, 3.0]], ids=["ladder", "edges"])
def test_a_window_is_the_histogram_of_its_steps_together(xp, tmp_path, bins):
    rng = np.random.default_rng(4)
    steps = _steps(rng, 8)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        for k, values in enumerate(steps):
            writer.add_histogram("w", xp.asarray(values), 10 + k, bins=bins, window=3)
    records = _histograms(tmp_path, "w")
    # two full windows at their last steps, the partial one (2 steps) at close
    assert [step for step, _ in records] == [12, 15, 17]
    limits = None if bins == "tensorflow" else np.append(bins, _ladder.DBL_MAX)
    for (_, got), members in zip(records, ([0, 1, 2], [3, 4, 5], [6, 7]), strict=True):
        _check(got, np.concatenate([steps[k] for k in members]), limits)


def test_device_steps_launch_only_and_copy_once_a_window(emulated_cupy, tmp_path):
    cp = emulated_cupy
    rng = np.random.default_rng(1)
    steps = [cp.asarray(v) for v in _steps(rng, 4)]
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_histogram("warm", steps[0], 0, window=1)  # compiles, then a fresh log
        writer.flush()
        cp.log.clear()
        for k, values in enumerate(steps):
            writer.add_histogram("w", values, k, window=4)
            if k < 3:  # inside the window: one launch a step, nothing else on the device
                kinds = [entry[0] for entry in cp.log]
                assert kinds == ["memset"] + ["launch"] * (k + 1), kinds
        assert threading.get_ident() not in cp.waits  # the caller never waited
        copies = [entry for entry in cp.log if entry[0] == "memcpy"]
        assert len(copies) == 1  # the window's counts and stats, once
    ((step, got),) = _histograms(tmp_path, "w")
    assert step == 3
    _check(got, np.concatenate([s.get() for s in steps]), None)


def test_the_first_non_finite_step_is_written_and_reported(xp, tmp_path):
    reports = []
    clean = np.ones(100, np.float32)
    dirty = clean.copy()
    dirty[[3, 4]] = [np.nan, np.inf]
    with gs.SummaryWriter(str(tmp_path), on_anomaly=reports.append) as writer:
        for k, values in enumerate([clean, clean, dirty, dirty, clean]):
            writer.add_histogram("g", xp.asarray(values), k, window=5)
    reader = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in reader.Scalars("g/window/first_nonfinite_step")] == [
        (4, 2.0)
    ]
    assert [e.value for e in reader.Scalars("g/window/nonfinite")] == [4.0]
    (report,) = reports
    assert (report.tag, report.step, report.nan, report.posinf, report.count) == ("g", 2, 2, 2, 496)


def test_scalar_windows_reduce_every_step(xp, tmp_path):
    values = [0.5, 2.0, np.nan, -1.0, 4.0, 3.0, 7.0]
    with gs.SummaryWriter(str(tmp_path)) as writer:
        for k, value in enumerate(values):
            device_value = xp.asarray(np.float32(value))  # a 0-d tensor, as a loss is
            writer.add_scalar("loss", device_value, k, window=3,
                              reduce=("mean", "min", "max", "sum", "last"))  # fmt: skip
            writer.add_scalar("plain_numbers", value, k, window=4)
    reader = legacy_reader(tmp_path)

    def series(tag):
        return [(e.step, e.value) for e in reader.Scalars(tag)]

    assert series("loss") == [(2, pytest.approx(1.25)), (5, pytest.approx(2.0)), (6, 7.0)]
    assert series("loss/min") == [(2, 0.5), (5, -1.0), (6, 7.0)]
    assert series("loss/max") == [(2, 2.0), (5, 4.0), (6, 7.0)]
    assert series("loss/sum") == [(2, 2.5), (5, 6.0), (6, 7.0)]
    last = series("loss/last")
    assert [s for s, _ in last] == [2, 5, 6] and np.isnan(last[0][1]) and last[1:] == [
        (5, 3.0), (6, 7.0)]  # fmt: skip
    assert series("loss/window/first_nonfinite_step") == [(2, 2.0)]
    assert series("plain_numbers") == [(3, pytest.approx(0.5)), (6, pytest.approx(14 / 3))]


def test_bad_window_calls_raise_at_the_call(tmp_path):
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_histogram("h", np.ones(3), 0, window=2)
        with pytest.raises(ValueError, match="logged with window=2"):
            writer.add_histogram("h", np.ones(3), 1)
        with pytest.raises(ValueError, match="keeps its size"):
            writer.add_histogram("h", np.ones(3), 1, window=3)
        with pytest.raises(ValueError, match="stay put"):
            writer.add_histogram("e", np.ones(3), 0, bins=10, window=2)
        with pytest.raises(ValueError, match="stay put"):
            writer.add_histogram("e", np.ones(3), 0, bins="auto", window=2)
        with pytest.raises(ValueError, match="same bins"):
            writer.add_histogram("h", np.ones(3), 1, bins=[0.0, 1.0], window=2)
        with pytest.raises(ValueError, match="at least 1"):
            writer.add_histogram("x", np.ones(3), 0, window=0)
        with pytest.raises(TypeError, match="window must be an int"):
            writer.add_histogram("x", np.ones(3), 0, window=2.5)
        writer.add_scalar("s", 1.0, 0, window=2)
        with pytest.raises(ValueError, match="logged with window=2"):
            writer.add_scalar("s", 1.0, 1)
        with pytest.raises(ValueError, match="reduce must be one of"):
            writer.add_scalar("t", 1.0, 0, window=2, reduce="rank0")
        with pytest.raises(ValueError, match="single number"):
            writer.add_scalar("t", np.ones(2), 0, window=2)
        with pytest.raises(ValueError, match="drop new_style"):
            writer.add_scalar("t", 1.0, 0, window=2, new_style=True)
        writer.add_scalar("unwindowed", 1.0, 0)  # other tags are unaffected
    assert [e.step for e in legacy_reader(tmp_path).Histograms("h")] == [0]  # partial, at close


def test_add_histograms_windows_each_tensor(xp, tmp_path):
    rng = np.random.default_rng(6)
    steps = [{"a": rng.standard_normal(500).astype(np.float32),
              "b": rng.standard_normal((20, 30)).astype(np.float32)} for _ in range(4)]  # fmt: skip
    steps[2]["b"][3, 4] = np.nan
    with gs.SummaryWriter(str(tmp_path)) as writer:
        for k, tensors in enumerate(steps):
            writer.add_histograms({n: xp.asarray(t) for n, t in tensors.items()}, k,
                                  prefix="grad/", window=2)  # fmt: skip
        with pytest.raises(ValueError, match="logged with window=2"):
            writer.add_histograms({"a": np.ones(3)}, 9, prefix="grad/")
    reader = legacy_reader(tmp_path)
    for name in ("a", "b"):
        records = _histograms(tmp_path, f"grad/{name}")
        assert [s for s, _ in records] == [1, 3]
        for (_, got), members in zip(records, ([0, 1], [2, 3]), strict=True):
            _check(got, np.concatenate([steps[k][name].ravel() for k in members]), None)
    assert [(e.step, e.value) for e in reader.Scalars("grad/b/window/first_nonfinite_step")] == [
        (3, 2.0)]  # fmt: skip


def test_watch_windows_every_backward_pass(tmp_path):
    torch = pytest.importorskip("torch")
    model = torch.nn.Linear(4, 3)
    with gs.SummaryWriter(str(tmp_path)) as writer:
        handle = gs.watch(model, writer, window=3)
        grads = []
        for _ in range(6):
            model.zero_grad()
            model(torch.randn(8, 4)).sum().backward()
            grads.append(model.weight.grad.clone().numpy().ravel())
        handle.remove()
    records = _histograms(tmp_path, "gradients/weight")
    assert [s for s, _ in records] == [2, 5]
    for (_, got), members in zip(records, ([0, 1, 2], [3, 4, 5]), strict=True):
        _check(got, np.concatenate([grads[k] for k in members]), None)


def test_add_histograms_on_a_device_is_one_launch_a_step(emulated_cupy, tmp_path):
    cp = emulated_cupy
    rng = np.random.default_rng(8)
    tensors = {f"t{k}": cp.asarray(rng.standard_normal(100 * (k + 1)).astype(np.float32))
               for k in range(3)}  # fmt: skip
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_histograms(tensors, 0, prefix="warm/", window=1)  # compiles
        writer.flush()
        cp.log.clear()
        for step in range(3):
            writer.add_histograms(tensors, step, prefix="g/", window=3)
        launches = [e for e in cp.log if e[0] == "launch"]
        assert [e[1] for e in launches] == ["gs_multi_ladder"] * 3  # one per step, all tensors
        device_to_host = [e for e in cp.log if e[0] == "memcpy" and e[2] == 2]
        assert len(device_to_host) == 1  # the window's one copy back
        assert threading.get_ident() not in cp.waits
    for name, values in tensors.items():
        ((step, got),) = _histograms(tmp_path, f"g/{name}")
        assert step == 2
        _check(got, np.concatenate([values.get()] * 3), None)
