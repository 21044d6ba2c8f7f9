"""add_pr_curve: the NumPy reference equals torch's writer on the same calls, the device
kernel (emulated) equals the NumPy reference, and what cannot be binned is counted and told."""

from __future__ import annotations

import numpy as np
import pytest
from tensorboard.util import tensor_util

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary._backend.numpy import curves as host_curves
from gpu_summary.summaries import pr_curve as pr_summaries


def _curve(logdir, tag):
    events = legacy_reader(logdir).Tensors(tag)
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto)) for e in events]


def _torch_writer_curves(logdir, calls):
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    writer = torch_tb.SummaryWriter(str(logdir))
    for args, kwargs in calls:
        writer.add_pr_curve(*args, **kwargs)
    writer.close()


def _cases():
    rng = np.random.default_rng(7)
    n = 5000
    labels = rng.integers(0, 2, n)
    p64 = rng.random(n)
    # thresholds exactly, and values just around them, where the product's rounding matters
    edges = np.arange(127) / 126
    p64[:127] = edges
    p64[127:254] = np.nextafter(edges, 1)
    p64[254:381] = np.nextafter(edges, 0).clip(0, 1)
    return [
        ("float64_int_labels", (labels, p64), {}),
        ("float32_bool_labels", (labels.astype(bool), p64.astype(np.float32)), {}),
        ("float16", (labels, p64.astype(np.float16)), {}),
        ("int_weights", (labels, p64.astype(np.float32)),
         {"weights": rng.integers(0, 4, n).astype(np.float64)}),
        ("float_weights", (labels, p64), {"weights": rng.random(n)}),
        ("soft_labels", (rng.random(n), p64), {}),
        ("ten_thresholds", (labels, p64), {"num_thresholds": 10}),
    ]  # fmt: skip


@pytest.mark.parametrize("name,args,kwargs", _cases(), ids=[c[0] for c in _cases()])
def test_equal_to_torchs_writer(tmp_path, name, args, kwargs):
    labels, predictions = args
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_pr_curve("pr", labels, predictions, 3, **kwargs)
    _torch_writer_curves(tmp_path / "torch", [(("pr", labels, predictions, 3), kwargs)])
    ((step, ours),) = _curve(tmp_path / "ours", "pr")
    ((their_step, theirs),) = _curve(tmp_path / "torch", "pr")
    assert step == their_step == 3
    assert ours.shape == theirs.shape == (6, kwargs.get("num_thresholds", 127))
    if name in ("float_weights", "soft_labels"):
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-3)
    else:
        np.testing.assert_array_equal(ours[:4], theirs[:4])  # the counts, exactly
        np.testing.assert_allclose(ours[4:], theirs[4:], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_product_rounds_as_numpy_multiplies_in_the_dtype(dtype):
    rng = np.random.default_rng(3)
    for thresholds in (2, 3, 10, 127, 128, 1000, 1024):
        p = np.concatenate([rng.random(20000), np.arange(thresholds) / (thresholds - 1),
                            [0.0, 1.0, 1e-8, 6e-8, 1e-30]]).astype(dtype)  # fmt: skip
        native = np.floor(p * dtype(thresholds - 1))
        ours = np.floor(host_curves.round_significand(p.astype(np.float64) * (thresholds - 1),
                                                      np.dtype(dtype).name))  # fmt: skip
        np.testing.assert_array_equal(ours, native.astype(np.float64))


def test_bfloat16_rounds_as_its_own_multiply():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    p = np.random.default_rng(1).random(5000).astype(ml_dtypes.bfloat16)
    native = np.floor((p * ml_dtypes.bfloat16(126)).astype(np.float64))
    ours = np.floor(host_curves.round_significand(p.astype(np.float64) * 126, "bfloat16"))
    np.testing.assert_array_equal(ours, native)


def _dataset(rng, n, prediction_dtype, label_dtype, weighted, special):
    p = rng.random(n)
    p[: n // 50] = np.arange(n // 50) % 127 / 126  # on the thresholds
    if special:
        p[5], p[17], p[40], p[41] = np.nan, -0.25, 1.5, np.inf
    labels = rng.integers(0, 2, n).astype(label_dtype)
    weights = None
    if weighted == "int":
        weights = rng.integers(0, 5, n).astype(np.int32)
    elif weighted == "float":
        weights = rng.random(n).astype(np.float32)
        if special:
            weights[60] = np.nan
    return p.astype(prediction_dtype), labels, weights


@pytest.mark.parametrize("prediction_dtype", [np.float16, np.float32, np.float64, np.int64])
@pytest.mark.parametrize("label_dtype", [np.bool_, np.int64, np.uint8, np.float32])
def test_device_kernel_equals_the_numpy_reference(emulated_cupy, prediction_dtype, label_dtype):
    from gpu_summary._backend import cuda

    rng = np.random.default_rng(11)
    cp = emulated_cupy
    for weighted in (None, "int", "float"):
        special = prediction_dtype != np.int64
        p, labels, weights = _dataset(rng, 20011, prediction_dtype, label_dtype, weighted, special)
        if prediction_dtype == np.int64:
            p = (p > 0.5).astype(np.int64) if False else rng.integers(0, 2, p.size)
        host = host_curves.pr_counts(p, labels, weights, 127).result()
        device_weights = None if weights is None else cuda.adopt(cp.asarray(weights), "weights")
        found = cuda.pr_counts(cuda.adopt(cp.asarray(p), "predictions"),
                               cuda.adopt(cp.asarray(labels), "labels"), device_weights,
                               127).result()  # fmt: skip
        assert (found.nan, found.below, found.above) == (host.nan, host.below, host.above)
        if weighted == "float":
            scale = np.abs(weights[np.isfinite(weights)]).sum()
            assert np.abs(found.tp - host.tp).max() <= host_curves.PR_RTOL * scale
            assert np.abs(found.fp - host.fp).max() <= host_curves.PR_RTOL * scale
        else:
            np.testing.assert_array_equal(found.tp, host.tp)
            np.testing.assert_array_equal(found.fp, host.fp)


def test_device_bfloat16_and_strided_inputs(emulated_cupy):
    from gpu_summary._backend import cuda

    cp = emulated_cupy
    rng = np.random.default_rng(5)
    p32 = rng.random((300, 40)).astype(np.float32)
    bits = (p32.view(np.uint32) >> 16).astype(np.uint16)  # truncated to bfloat16
    as_float = (bits.astype(np.uint32) << 16).view(np.float32)
    labels = rng.integers(0, 2, (40, 300)).T  # a transposed (strided) view
    host = host_curves.pr_counts(as_float, labels, None, 64, "bfloat16").result()
    device_p = cuda.adopt(cp.asarray(bits), "predictions")
    from gpu_summary._backend.cuda.device_tensor import BFLOAT16

    device_p = type(device_p)(device_p.array, device_p.stream, BFLOAT16, None)
    found = cuda.pr_counts(device_p, cuda.adopt(cp.asarray(labels), "labels"), None, 64).result()
    np.testing.assert_array_equal(found.tp, host.tp)
    np.testing.assert_array_equal(found.fp, host.fp)
    assert found.tp.sum() + found.fp.sum() == p32.size


def test_device_curve_through_the_writer_equals_the_host_one(emulated_cupy, tmp_path):
    cp = emulated_cupy
    rng = np.random.default_rng(2)
    labels, p = rng.integers(0, 2, 9999), rng.random(9999).astype(np.float32)
    with gs.SummaryWriter(str(tmp_path / "host")) as writer:
        writer.add_pr_curve("pr", labels, p, 0, num_thresholds=33)
    with gs.SummaryWriter(str(tmp_path / "device")) as writer:
        writer.add_pr_curve("pr", cp.asarray(labels), cp.asarray(p), 0, num_thresholds=33)
        assert emulated_cupy.waits == []  # the caller never waited for the device
    ((_, host),) = _curve(tmp_path / "host", "pr")
    ((_, device),) = _curve(tmp_path / "device", "pr")
    np.testing.assert_array_equal(host, device)
    launches = [entry for entry in cp.log if entry[0] == "launch"]
    assert [entry[1] for entry in launches] == ["gs_pr_counts"]  # one launch


def test_device_out_of_range_and_nan_are_reported(emulated_cupy, tmp_path):
    cp = emulated_cupy
    reports = []
    p = np.array([0.1, np.nan, 1.5, -1.0, 0.9, 0.4])
    labels = np.array([1, 1, 0, 1, 0, 0])
    with gs.SummaryWriter(str(tmp_path), on_anomaly=reports.append) as writer:
        writer.add_pr_curve("pr", cp.asarray(labels), cp.asarray(p), 4, num_thresholds=5)
    (report,) = reports
    assert (report.tag, report.step, report.nan, report.below, report.above, report.count) == (
        "pr", 4, 1, 1, 1, 3,
    )  # fmt: skip
    ((_, curve),) = _curve(tmp_path, "pr")
    assert curve[0, 0] + curve[1, 0] == 3  # the three usable pairs


def test_host_nan_is_counted_and_warned_not_binned(tmp_path):
    p = np.array([0.2, np.nan, 0.8, 0.6])
    labels = np.array([0, 1, 1, 0])
    with pytest.warns(RuntimeWarning, match="1 pairs with a NaN prediction"):
        with gs.SummaryWriter(str(tmp_path)) as writer:
            writer.add_pr_curve("pr", labels, p, 0, num_thresholds=3)
            writer.flush()
    ((_, curve),) = _curve(tmp_path, "pr")
    # buckets floor(2p): 0.2 -> 0 (negative), 0.8 -> 1 (positive), 0.6 -> 1 (negative)
    expected = pr_summaries.curve(np.array([0.0, 1.0, 0.0]), np.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(curve, expected.astype(np.float32))


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda w: w.add_pr_curve("t", [0, 1], [0.5, 1.2]), ValueError, "lie in \\[0, 1\\]"),
        (lambda w: w.add_pr_curve("t", [0, 1], [-0.1, 0.2]), ValueError, "1 are below 0"),
        (lambda w: w.add_pr_curve("t", [0, 1, 1], [0.5, 0.2]), ValueError, "labels has 3"),
        (lambda w: w.add_pr_curve("t", [0, 1], [0.5, 0.2], weights=[1]), ValueError,
         "weights has 1"),
        (lambda w: w.add_pr_curve("t", [], []), ValueError, "empty"),
        (lambda w: w.add_pr_curve("t", [0], [0.5], num_thresholds=1), ValueError, "at least 2"),
        (lambda w: w.add_pr_curve("t", [0], [0.5], num_thresholds=5000), ValueError, "1024"),
        (lambda w: w.add_pr_curve("t", [0], [0.5], num_thresholds=2.5), TypeError, "int"),
        (lambda w: w.add_pr_curve("t", ["a"], [0.5]), TypeError, "labels"),
        (lambda w: w.add_pr_curve_raw("t", [1, 2], [1, 2], [1, 2], [1, 2], [1, 2], [1, 2, 3]),
         ValueError, "recall has 3 values"),
        (lambda w: w.add_pr_curve_raw("t", *[[[1, 2]]] * 6), ValueError, "1-D"),
    ],
)  # fmt: skip
def test_bad_calls_raise_at_the_call_and_write_nothing(tmp_path, call, error, match):
    with gs.SummaryWriter(str(tmp_path)) as writer:
        with pytest.raises(error, match=match):
            call(writer)
    assert legacy_reader(tmp_path).Tags()["tensors"] == []


def test_pr_curve_raw_as_torchs(tmp_path):
    rng = np.random.default_rng(4)
    rows = [rng.integers(0, 50, 20).astype(np.float64) for _ in range(4)] + [
        rng.random(20),
        rng.random(20),
    ]
    with gs.SummaryWriter(str(tmp_path / "ours")) as writer:
        writer.add_pr_curve_raw("raw", *rows, global_step=2, num_thresholds=20)
    torch_tb = pytest.importorskip("torch.utils.tensorboard")
    theirs_writer = torch_tb.SummaryWriter(str(tmp_path / "torch"))
    theirs_writer.add_pr_curve_raw("raw", *rows, global_step=2, num_thresholds=20)
    theirs_writer.close()
    ((step, ours),) = _curve(tmp_path / "ours", "raw")
    ((_, theirs),) = _curve(tmp_path / "torch", "raw")
    assert step == 2
    np.testing.assert_array_equal(ours, theirs)


def test_the_pr_curves_plugin_reads_it(tmp_path):
    """TensorBoard's own plugin code (through the plugin loader's multiplexer)."""
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.pr_curve import pr_curves_plugin

    rng = np.random.default_rng(0)
    labels, p = rng.integers(0, 2, 1000), rng.random(1000)
    with gs.SummaryWriter(str(tmp_path / "run")) as writer:
        for step in range(2):
            writer.add_pr_curve("pr", labels, p ** (step + 1), step, num_thresholds=11)
    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(tmp_path))
    context = base_plugin.TBContext(data_provider=provider, logdir=str(tmp_path))
    plugin = pr_curves_plugin.PrCurvesPlugin(context)
    from tensorboard import context as tb_context

    ctx = tb_context.RequestContext()
    tags = plugin.tags_impl(ctx, "")
    assert list(tags["run"]) == ["pr"]
    entries = plugin.pr_curves_impl(ctx, "", ["run"], "pr")["run"]
    assert [e["step"] for e in entries] == [0, 1]
    positives = int(labels.sum())
    assert entries[0]["true_positives"][0] == positives  # threshold 0: every positive
    assert len(entries[0]["thresholds"]) == 10  # the last (p = 1 only: none) trimmed by TB
    assert entries[0]["recall"][0] == pytest.approx(1.0)


def test_every_backend_writes_the_host_curve(xp, tmp_path):
    """The same curve from NumPy arrays, the emulated device and (``-m gpu``) a real GPU:
    float32 and float16 predictions, bool and int labels, integer weights, thresholds
    around every bucket edge."""
    rng = np.random.default_rng(9)
    n = 300_000
    p = rng.random(n)
    p[:1024] = np.arange(1024) / 1023
    labels = rng.integers(0, 2, n)
    weights = rng.integers(0, 3, n).astype(np.float32)
    cases = [("f32", p.astype(np.float32), labels.astype(bool), None, 127),
             ("f16", p.astype(np.float16), labels, None, 1024),
             ("weighted", p, labels, weights, 50)]  # fmt: skip
    for name, predictions, label_values, weight_values, thresholds in cases:
        kwargs = {"num_thresholds": thresholds}
        with gs.SummaryWriter(str(tmp_path / f"host_{name}")) as writer:
            writer.add_pr_curve("pr", label_values, predictions, 0, weights=weight_values,
                                **kwargs)  # fmt: skip
        device_weights = None if weight_values is None else xp.asarray(weight_values)
        with gs.SummaryWriter(str(tmp_path / f"dev_{name}")) as writer:
            writer.add_pr_curve("pr", xp.asarray(label_values), xp.asarray(predictions), 0,
                                weights=device_weights, **kwargs)  # fmt: skip
        ((_, host),) = _curve(tmp_path / f"host_{name}", "pr")
        ((_, device),) = _curve(tmp_path / f"dev_{name}", "pr")
        np.testing.assert_array_equal(host, device, err_msg=name)


def test_a_callback_that_raises_never_costs_the_curve(tmp_path):
    def explode(report):
        raise RuntimeError(f"saw {report.nan} NaN")

    writer = gs.SummaryWriter(str(tmp_path), on_anomaly=explode)
    writer.add_pr_curve("pr", [0, 1, 1], [0.1, np.nan, 0.7], 0, num_thresholds=4)
    with pytest.raises(gs.WriterError) as raised:
        writer.flush()
    assert "saw 1 NaN" in str(raised.value.__cause__)
    writer.close()
    ((_, curve),) = _curve(tmp_path, "pr")
    assert curve[0, 0] + curve[1, 0] == 2  # the curve of the two usable pairs is there
