"""add_anomaly: counts, positions, exact quantiles and the heat map against NumPy ground truth,
read back through TensorBoard; the on_anomaly callback; bad input."""

from __future__ import annotations

import importlib.util
import io
import math
import threading

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs
from conftest import DTYPES, _cuda_available, legacy_reader, sample_values, tensor_values
from gpu_summary._core import anomaly as _anomaly
from gpu_summary.summaries import anomaly as anomaly_summaries


@pytest.fixture
def writer(tmp_path):
    with gs.SummaryWriter(tmp_path) as w:
        yield w


def _truth(values, lower, upper):
    """Counts, offending flat indices (C order) and quantiles, by plain NumPy."""
    with np.errstate(over="ignore", invalid="ignore"):
        x = np.asarray(values).astype(np.float64).reshape(-1)
    finite = np.isfinite(x)
    below = finite & (x < lower) if lower is not None else np.zeros_like(finite)
    above = finite & (x > upper) if upper is not None else np.zeros_like(finite)
    offending = ~finite | below | above
    q = np.quantile(x[finite], _anomaly.QUANTILES) if finite.any() else None
    return {
        "nan": int(np.isnan(x).sum()),
        "posinf": int((x == np.inf).sum()),
        "neginf": int((x == -np.inf).sum()),
        "below": int(below.sum()),
        "above": int(above.sum()),
        "positions": np.flatnonzero(offending),
        "x": x,
        "quantiles": q,
    }


def _check_report(report, values, lower, upper, max_positions):
    truth = _truth(values, lower, upper)
    for kind in ("nan", "posinf", "neginf", "below", "above"):
        assert getattr(report, kind) == truth[kind], kind
    want = truth["positions"][:max_positions]
    shape = np.shape(values)
    got_flat = [np.ravel_multi_index(p.index, shape) if shape else 0 for p in report.positions]
    np.testing.assert_array_equal(got_flat, want)
    got_values = np.array([p.value for p in report.positions])
    np.testing.assert_array_equal(got_values, truth["x"][want])  # NaN == NaN here
    if truth["quantiles"] is None:
        assert report.quantiles == {} and report.whiskers is None
    else:
        got = np.array([report.quantiles[q] for q in _anomaly.QUANTILES])
        np.testing.assert_array_equal(got, truth["quantiles"])  # exact, as numpy.quantile


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_against_numpy(writer, xp, dtype):
    values = sample_values(dtype, 3003, seed=5).reshape(3, 7, -1)
    if np.issubdtype(dtype, np.floating):
        lower, upper = -1e5, 1e5
    elif dtype == np.bool_:
        lower, upper = None, 0
    else:
        info = np.iinfo(dtype)
        lower, upper = info.min / 2, info.max / 2
    handle = writer.add_anomaly("t", xp.asarray(values), 0, lower=lower, upper=upper,
                                max_positions=50)  # fmt: skip
    _check_report(handle.result(), values, lower, upper, 50)


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x[:, ::3],  # strided
        lambda x: x.T,  # transposed: positions are in the view's C order
        lambda x: x[::-1],  # reversed
        lambda x: x[5:6, 7:8].reshape(()),  # 0-d
        lambda x: x.reshape(2, 3, 5, 2, 3, 2, 2, 2, 2)[
            :, ::2, :, :, :, :, :, ::-1
        ],  # beyond six dimensions
    ],
)
def test_layouts_report_positions_in_c_order(writer, xp, make):
    base = np.random.default_rng(2).standard_normal((60, 48))
    base[::7, ::5] = np.nan
    base[3, :] = np.inf
    base[:, 11] = -7.0
    view = make(base)
    device_view = make(xp.asarray(base))
    handle = writer.add_anomaly("t", device_view, 0, lower=-2.0, upper=2.5, max_positions=40)
    _check_report(handle.result(), view, -2.0, 2.5, 40)


def test_quantile_edge_cases(writer, xp):
    cases = {
        "all_nan": np.full(10, np.nan),
        "one": np.array([np.nan, 3.5, np.inf]),
        "two": np.array([1.0, -1.0]),
        "ties": np.array([2.0] * 7 + [1.0] * 5),
        "signed_zeros": np.array([-0.0, 0.0, -0.0, 1.0]),
        "extremes": np.array([-1.7976931348623157e308, 1.7976931348623157e308, 0.0]),
        "int64_wide": np.array([-(2**62), 2**62 + 1, 3, 2**53 + 1], dtype=np.int64),
        "tiny": np.array([5e-324, -5e-324, 1e-310]),
    }
    for name, values in cases.items():
        handle = writer.add_anomaly(name, xp.asarray(values), 0)
        report = handle.result()
        truth = _truth(values, None, None)
        if truth["quantiles"] is None:
            assert report.quantiles == {} and report.count == 0, name
            continue
        got = np.array([report.quantiles[q] for q in _anomaly.QUANTILES])
        with np.errstate(over="ignore", invalid="ignore"):
            np.testing.assert_array_equal(got, truth["quantiles"], err_msg=name)
        q1, q3 = float(truth["quantiles"][3]), float(truth["quantiles"][5])
        finite = truth["x"][np.isfinite(truth["x"])].tolist()
        if math.isfinite(q3 - q1):
            low = max(min(finite), q1 - 1.5 * (q3 - q1))
            assert report.whiskers == (low, min(max(finite), q3 + 1.5 * (q3 - q1))), name


def _heat_truth(values, cells):
    """Cell means by a plain loop over the near-square grid."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    rows, width, cell_rows, cell_columns = _anomaly.heat_grid(x.size, cells)
    r_bounds = [i * rows // cell_rows for i in range(cell_rows + 1)]
    c_bounds = [j * width // cell_columns for j in range(cell_columns + 1)]
    sums = np.zeros((cell_rows, cell_columns))
    counts = np.zeros((cell_rows, cell_columns), dtype=np.int64)
    bad = np.zeros((cell_rows, cell_columns), dtype=np.int64)
    for i in range(cell_rows):
        for j in range(cell_columns):
            for r in range(r_bounds[i], r_bounds[i + 1]):
                for c in range(c_bounds[j], c_bounds[j + 1]):
                    k = r * width + c
                    if k < x.size:
                        if np.isfinite(x[k]):
                            sums[i, j] += x[k]
                            counts[i, j] += 1
                        else:
                            bad[i, j] += 1
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan), bad


@pytest.mark.parametrize("n", [1, 10, 37, 5000, 70 * 70 + 3])
def test_heat_map_cells(writer, xp, n):
    values = np.random.default_rng(n).standard_normal(n)
    values[:: max(1, n // 7)] = np.nan
    report = writer.add_anomaly("h", xp.asarray(values), 0).result()
    means, bad = _heat_truth(values, _anomaly.HEATMAP_CELLS)
    np.testing.assert_allclose(report.heatmap, means, rtol=1e-12, atol=1e-15)
    rows, width, cell_rows, cell_columns = _anomaly.heat_grid(n, _anomaly.HEATMAP_CELLS)
    assert report.heatmap.shape == (cell_rows, cell_columns)
    assert rows * width >= n > (rows - 1) * width and abs(rows - width) <= 1
    pixels = anomaly_summaries.heatmap_pixels(report, bad)
    red = np.all(pixels == anomaly_summaries.NONFINITE_COLOR, axis=-1)
    scale = pixels.shape[0] // cell_rows
    np.testing.assert_array_equal(red[::scale, ::scale], bad > 0)


def test_read_back_through_tensorboard(tmp_path, xp):
    values = np.arange(-50, 150, dtype=np.float32).reshape(10, 20) / 10
    values[1, 2] = np.nan
    values[9, 19] = -np.inf
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_anomaly("grad/w", xp.asarray(values), 7, lower=-4.0, upper=12.0)
    acc = legacy_reader(tmp_path)
    truth = _truth(values, -4.0, 12.0)

    def scalar(tag):
        (event,) = acc.Scalars(tag)
        assert event.step == 7
        return event.value

    for kind in ("nan", "posinf", "neginf", "below", "above"):
        assert scalar(f"grad/w/anomaly/{kind}") == truth[kind]
    for q, want in zip(_anomaly.QUANTILES, truth["quantiles"], strict=True):
        assert scalar(anomaly_summaries.quantile_tag("grad/w", q)) == np.float32(want)
    assert scalar("grad/w/quantile/p100") == np.float32(np.nanmax(values[np.isfinite(values)]))
    assert "grad/w/quantile/whisker_low" in acc.Tags()["scalars"]
    (histo,) = acc.Histograms("grad/w/anomaly/values")
    assert histo.histogram_value.num == np.isfinite(values).sum()
    ((step, text),) = tensor_values(tmp_path, "grad/w/anomaly/positions")
    table = text.item().decode()
    assert (
        step == 7 and "| (1, 2) | nan | nan |" in table and "| (9, 19) | -inf | neginf |" in table
    )
    assert (
        f"{sum(truth[k] for k in ('nan', 'posinf', 'neginf', 'below', 'above'))} offending" in table
    )
    ((_, image),) = tensor_values(tmp_path, "grad/w/anomaly/heatmap")
    width, height = int(image[0]), int(image[1])
    png = Image.open(io.BytesIO(image[2]))
    assert png.size == (width, height) and png.mode == "RGB"
    # A 200-value tensor: a 15-column grid of 14 rows, each cell 18 px.
    assert (width, height) == (15 * 17, 14 * 17)


def test_unbounded_call_logs_no_bound_counts(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_anomaly("x", np.ones(5), 0)
    scalars = legacy_reader(tmp_path).Tags()["scalars"]
    assert "x/anomaly/nan" in scalars and "x/anomaly/below" not in scalars


def test_callback_runs_on_the_writer_thread_only_when_something_offends(tmp_path):
    seen = []

    def on_anomaly(report):
        seen.append((report.tag, report.step, report.nan, threading.current_thread().name))

    with gs.SummaryWriter(tmp_path, on_anomaly=on_anomaly) as writer:
        writer.add_anomaly("clean", np.ones(100), 1)
        writer.add_anomaly("dirty", np.array([1.0, np.nan, np.nan]), 2)
        writer.flush()
        assert [s[:3] for s in seen] == [("dirty", 2, 2)]
        assert seen[0][3] != threading.current_thread().name


def test_a_failing_callback_surfaces_on_the_next_call_and_the_summary_is_kept(tmp_path):
    def on_anomaly(report):
        raise RuntimeError("stop training")

    writer = gs.SummaryWriter(tmp_path, on_anomaly=on_anomaly)
    writer.add_anomaly("x", np.array([np.nan]), 0)
    with pytest.raises(gs.WriterError) as info:
        writer.flush()
    assert isinstance(info.value.__cause__, RuntimeError)
    writer.add_scalar("after", 1.0, 0)  # the writer goes on
    writer.close()
    acc = legacy_reader(tmp_path)
    assert acc.Scalars("x/anomaly/nan")[0].value == 1
    assert acc.Scalars("after")[0].value == 1


def test_steps_default_to_zero_or_count_up_per_tag(writer, tmp_path):
    assert [writer.add_anomaly("a", np.ones(3)).step for _ in range(3)] == [0, 0, 0]
    with gs.SummaryWriter(tmp_path / "counted", count_steps=True) as counted:
        assert [counted.add_anomaly("a", np.ones(3)).step for _ in range(3)] == [0, 1, 2]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"lower": 2.0, "upper": 1.0}, ValueError, "must not exceed"),
        ({"lower": float("nan")}, ValueError, "lower must be a finite"),
        ({"upper": "3"}, TypeError, "upper must be a number"),
        ({"max_positions": -1}, ValueError, "max_positions must be between"),
        ({"max_positions": 2.5}, TypeError, "max_positions must be an int"),
        ({"values": np.zeros((0, 3))}, ValueError, "values is empty"),
        ({"values": np.array(["a"])}, TypeError, "values must hold"),
        ({"tag": ""}, ValueError, "tag must not be empty"),
    ],
)
def test_bad_input_is_refused_before_anything_is_queued(tmp_path, kwargs, error, match):
    arguments = {"tag": "t", "values": np.ones(4), **kwargs}
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            writer.add_anomaly(**arguments)
    assert legacy_reader(tmp_path).Tags()["scalars"] == []


def test_max_positions_zero_and_cap(writer):
    values = np.full(1000, np.nan)
    assert writer.add_anomaly("a", values, 0, max_positions=0).result().positions == ()
    report = writer.add_anomaly("b", values, 0, max_positions=999).result()
    assert len(report.positions) == 999 and report.nan == 1000


def test_device_launches_stay_on_the_stream_and_copy_back_once(emulated_cupy, tmp_path):
    """The whole report is launched on the producer's stream; one device-to-host copy at the
    end brings all of it (the histogram comes from the report's own ladder pass)."""
    fake = emulated_cupy
    values = fake.asarray(np.linspace(-3, 3, 5000).reshape(50, 100))
    stream = fake.cuda.Stream(non_blocking=True)
    with gs.SummaryWriter(tmp_path) as writer, stream:
        fake.log.clear()
        handle = writer.add_anomaly("s", values, 0, lower=-2.0, max_positions=10)
        operations = list(fake.log)
    streams = {op[-1] for op in operations}
    assert streams == {stream.ptr}, operations
    copies_back = [op for op in operations if op[0] == "memcpy" and op[2] == 2]
    assert len(copies_back) == 1  # the whole report, its histogram included
    assert operations[-1] == copies_back[0]  # the last operation of the call
    launches = [op[1] for op in operations if op[0] == "launch"]
    assert launches.count("gs_select_count") == 8  # 8 bytes of float64 order keys
    assert {"gs_anomaly_scan", "gs_anomaly_collect", "gs_heatmap"} <= set(launches)
    assert handle.result().below == int((np.linspace(-3, 3, 5000) < -2).sum())


# -- on a GPU (pytest -m gpu; benchmarks/gpu_check.sh) ----------------------------------------

_NEEDS_GPU = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device and CuPy")
_HAS_TORCH = importlib.util.find_spec("torch") is not None


@pytest.mark.gpu
@_NEEDS_GPU
@pytest.mark.skipif(not _HAS_TORCH, reason="needs PyTorch")
def test_torch_inputs_and_no_host_sync(tmp_path):
    """bfloat16 and strided torch tensors against NumPy; no call syncs (torch's sync debug
    mode raises on any synchronising CUDA call of the caller's thread)."""
    import torch

    host = sample_values(np.float32, 300_000, seed=9).reshape(600, 500)
    tensor = torch.from_numpy(host).cuda()
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_anomaly("warm", tensor, 0, lower=-1e3, upper=1e3).result()  # compiles
        writer.add_anomaly("warm16", tensor.to(torch.bfloat16), 0).result()
        torch.cuda.set_sync_debug_mode("error")
        try:
            handles = [
                writer.add_anomaly("a", tensor.t(), 1, lower=-1e3, upper=1e3, max_positions=500),
                writer.add_anomaly("b", tensor.to(torch.bfloat16)[::3], 1),
            ]
        finally:
            torch.cuda.set_sync_debug_mode(0)
        _check_report(handles[0].result(), host.T, -1e3, 1e3, 500)
        bf16 = tensor.to(torch.bfloat16)[::3].float().cpu().numpy()
        _check_report(handles[1].result(), bf16, None, None, 100)


@pytest.mark.gpu
@_NEEDS_GPU
def test_large_tensor_quantiles_and_positions(tmp_path):
    import cupy

    rng = np.random.default_rng(10)
    host = rng.standard_normal(1 << 24).astype(np.float32)
    host[rng.integers(0, host.size, 1000)] = np.nan
    with gs.SummaryWriter(tmp_path) as writer:
        report = writer.add_anomaly("big", cupy.asarray(host), 0, lower=-4, upper=4,
                                    max_positions=100_000).result()  # fmt: skip
    _check_report(report, host, -4, 4, 100_000)
    means, _ = _heat_truth_fast(host, _anomaly.HEATMAP_CELLS)
    np.testing.assert_allclose(report.heatmap, means, rtol=1e-9)


def _heat_truth_fast(values, cells):
    from gpu_summary._backend import numpy as numpy_backend

    result = numpy_backend.anomaly(values, None, None, 0, cells).result()
    with np.errstate(invalid="ignore"):
        return result.heat_sum / result.heat_count, result.heat_nonfinite
