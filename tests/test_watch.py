"""add_histograms (many tensors, one launch per dtype and device) and gs.watch (torch hooks)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import gpu_summary as gs
from conftest import _cuda_available, legacy_reader
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is optional; gs.watch needs it")


def _histograms(logdir):
    acc = legacy_reader(logdir)
    return {
        tag: [(e.step, e.histogram_value) for e in acc.Histograms(tag)]
        for tag in acc.Tags()["histograms"]
    }


def _tensors(rng):
    big = rng.standard_normal(reduce_abi.MULTI_CHUNK * 2 + 123).astype(np.float32)  # 3 chunks
    big[::1000] = np.nan
    return {
        "w1": rng.standard_normal((64, 33)).astype(np.float32),
        "w1_strided": rng.standard_normal((64, 66)).astype(np.float32)[:, ::2],
        "big": big,
        "b": rng.standard_normal(7).astype(np.float64),
        "h": (rng.standard_normal(100) * 1e3).astype(np.float16),
        "count": rng.integers(-5, 5, 50).astype(np.int64),
        "flag": rng.random(9) < 0.5,
        "scalar": np.float32(3.5).reshape(()),
        "empty": np.zeros((0, 4), np.float32),
        "transposed": rng.standard_normal((5, 6, 7)).astype(np.float32).transpose(2, 0, 1),
    }


def test_equal_to_one_add_histogram_per_tensor(tmp_path, xp):
    host = _tensors(np.random.default_rng(1))
    with gs.SummaryWriter(tmp_path / "many", count_steps=True) as writer:
        writer.add_histograms({n: xp.asarray(v) for n, v in host.items()}, 4, prefix="g/")
        writer.add_histograms([("w1", None), ("b", xp.asarray(host["b"]))], prefix="g/")
    with gs.SummaryWriter(tmp_path / "one", count_steps=True) as writer:
        for name, values in host.items():
            writer.add_histogram(f"g/{name}", values, 4)
        writer.add_histogram("g/b", host["b"])
    many, one = _histograms(tmp_path / "many"), _histograms(tmp_path / "one")
    assert set(many) == set(one) == {f"g/{n}" for n in host}
    for tag in one:
        for (step_a, a), (step_b, b) in zip(many[tag], one[tag], strict=True):
            assert step_a == step_b
            assert (list(a.bucket), list(a.bucket_limit)) == (list(b.bucket), list(b.bucket_limit))
            assert (a.num, a.min, a.max) == (b.num, b.min, b.max), tag
            assert a.sum == pytest.approx(b.sum, rel=1e-12, abs=1e-12), tag
            assert a.sum_squares == pytest.approx(b.sum_squares, rel=1e-12), tag


def test_one_launch_and_one_copy_per_dtype_group(emulated_cupy, tmp_path):
    fake = emulated_cupy
    rng = np.random.default_rng(2)
    named = {f"layer{i}": fake.asarray(rng.standard_normal(100 + i).astype(np.float32))
             for i in range(20)}  # fmt: skip
    named["half"] = fake.asarray(rng.standard_normal(10).astype(np.float16))
    with gs.SummaryWriter(tmp_path) as writer:
        fake.log.clear()
        writer.add_histograms(named, 0)
        operations = list(fake.log)
    launches = [op for op in operations if op[0] == "launch"]
    assert [op[1] for op in launches] == ["gs_multi_ladder", "gs_multi_ladder"]
    copies_back = [op for op in operations if op[0] == "memcpy" and op[2] == 2]
    assert len(copies_back) == 2
    assert len(_histograms(tmp_path)) == 21


def test_nonfinite_check_reports_the_first_tensor(tmp_path):
    found = []
    values = {"a": np.ones(3), "b": np.array([1.0, np.nan, np.inf]), "c": np.array([-np.inf])}
    with gs.SummaryWriter(tmp_path, on_anomaly=found.append) as writer:
        writer.add_histograms({"clean": np.ones(4)}, 0, prefix="g/", check_nonfinite=True)
        writer.add_histograms(values, 1, prefix="g/", check_nonfinite=True)
    (report,) = found
    assert (report.tag, report.step, report.nan, report.posinf) == ("g/b", 1, 1, 1)
    assert report.tensors == ("g/b", "g/c") and report.total == 2
    acc = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("g/nonfinite")] == [(0, 0.0), (1, 3.0)]


@pytest.mark.parametrize(
    ("named", "error", "match"),
    [
        ("weights", TypeError, "mapping"),
        (42, TypeError, "mapping"),
        ([("a", np.ones(2), 3)], TypeError, r"\(name, tensor\) pairs"),
        ({1: np.ones(2)}, TypeError, "names must be str"),
        ({}, ValueError, "holds no tensor"),
        ({"a": None}, ValueError, "holds no tensor"),
        ({"": np.ones(2)}, ValueError, "must not be empty"),
        ({"a": np.array(["x"])}, TypeError, "must hold"),
    ],
)
def test_bad_input_writes_nothing(tmp_path, named, error, match):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            writer.add_histograms(named, 0)
    assert legacy_reader(tmp_path).Tags()["histograms"] == []


@needs_torch
def test_watch_logs_gradients_and_parameters_and_unwatch_removes_every_hook(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    model[2].bias.requires_grad_(False)  # frozen: no gradient histogram
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    found = []
    with gs.SummaryWriter(tmp_path, on_anomaly=found.append) as writer:
        watched = gs.watch(model, writer, log="all", every=2)
        grads = []
        for _ in range(4):
            loss = model(torch.randn(16, 4)).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()
                          if p.grad is not None})  # fmt: skip
            optimizer.step()
        x = torch.randn(16, 4)
        x[0, 0] = float("inf")
        model(x).sum().backward()  # backward pass 4 (logged): NaN/Inf gradients
        gs.unwatch(model)
        assert not watched._handles and not model._forward_pre_hooks
        assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
        model(x).sum().backward()  # not logged any more
    histograms = _histograms(tmp_path)
    assert "gradients/2.bias" not in histograms
    assert [s for s, _ in histograms["gradients/0.weight"]] == [0, 2, 4]
    assert [s for s, _ in histograms["parameters/0.weight"]] == [0, 2, 4]
    # A logged gradient equals the histogram of that gradient by itself.
    with gs.SummaryWriter(tmp_path / "ref") as reference:
        reference.add_histogram("g", grads[2]["0.weight"].numpy(), 2)
    ((_, want),) = _histograms(tmp_path / "ref")["g"]
    (_, got) = histograms["gradients/0.weight"][1]
    assert list(got.bucket) == list(want.bucket) and got.num == want.num
    (report,) = found
    assert report.step == 4 and report.tag.startswith("gradients/")
    assert report.tensors[0] == report.tag and report.total > 0


@needs_torch
def test_watch_arguments():
    import torch

    model = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        gs.watch(object(), None)
    with pytest.raises(ValueError, match="log must be one of"):
        gs.watch(model, None, log="weights")
    with pytest.raises(ValueError, match="every must be > 0"):
        gs.watch(model, None, every=0)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available() or not HAS_TORCH, reason="needs a CUDA device and torch")
def test_cuda_model_watched_without_a_sync(tmp_path):
    """On a GPU: the gradients of a CUDA model (float32 and bfloat16 groups) logged by
    gs.watch under torch's sync debug mode (any synchronising call raises), equal to
    per-tensor histograms."""
    import torch

    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(),
                                torch.nn.Linear(256, 10)).cuda()  # fmt: skip
    model[2].to(torch.bfloat16)
    x = torch.randn(32, 64, device="cuda")
    with gs.SummaryWriter(tmp_path) as writer:
        watched = gs.watch(model, writer)
        model[2](model[1](model[0](x)).to(torch.bfloat16)).float().sum().backward()  # warm-up
        writer.flush()
        torch.cuda.set_sync_debug_mode("error")
        try:
            model[2](model[1](model[0](x)).to(torch.bfloat16)).float().sum().backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        watched.remove()
        grads = {n: p.grad.float().cpu().numpy() for n, p in model.named_parameters()}
    histograms = _histograms(tmp_path)
    with gs.SummaryWriter(tmp_path / "ref") as reference:
        for name, grad in grads.items():
            reference.add_histogram(name, grad, 1)
    want = _histograms(tmp_path / "ref")
    for name in grads:
        (_, got) = histograms[f"gradients/{name}"][1]
        ((_, expected),) = want[name]
        assert list(got.bucket) == list(expected.bucket) and got.num == expected.num


class _FakeTorchTensor:
    """Just what histograms_torch reads of a CUDA torch tensor, over host memory."""

    def __init__(self, array: np.ndarray, torch_dtype: str) -> None:
        self.array, self.dtype = array, torch_dtype
        self.device = type("Device", (), {"index": 0})()
        self.shape = array.shape

    def data_ptr(self) -> int:
        return self.array.__array_interface__["data"][0]

    def stride(self) -> tuple:
        return tuple(s // self.array.itemsize for s in self.array.strides)

    def element_size(self) -> int:
        return self.array.itemsize

    def numel(self) -> int:
        return self.array.size

    def detach(self):
        return self

    def contiguous(self):
        return _FakeTorchTensor(np.ascontiguousarray(self.array), self.dtype)


def test_torch_tensors_are_read_without_wrapping(emulated_cupy, monkeypatch):
    """cuda.histograms_torch on stand-ins for CUDA torch tensors (addresses into host memory,
    the emulated kernels): grouped by dtype, strided and non-mergeable layouts, equal to NumPy."""
    import sys
    import types

    from gpu_summary._backend import cuda
    from gpu_summary._backend import numpy as numpy_backend

    stream = types.SimpleNamespace(cuda_stream=5)
    fake_torch = types.SimpleNamespace(cuda=types.SimpleNamespace(current_stream=lambda d: stream))
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    rng = np.random.default_rng(3)
    arrays = [
        rng.standard_normal((40, 30)).astype(np.float32),
        rng.standard_normal(reduce_abi.MULTI_CHUNK + 5).astype(np.float32)[::2],  # strided
        rng.standard_normal((9, 8)).astype(np.float32)[:, :5],  # two dimensions: copied
        rng.standard_normal(77),  # float64: its own group
    ]
    dtypes = ["torch.float32"] * 3 + ["torch.float64"]
    groups = cuda.histograms_torch(
        [_FakeTorchTensor(a, d) for a, d in zip(arrays, dtypes, strict=True)]
    )
    assert [members for members, _ in groups] == [[0, 1, 2], [3]]
    launches = [op for op in emulated_cupy.log if op[0] == "launch"]
    assert [op[1] for op in launches] == ["gs_multi_ladder"] * 2
    assert all(op[-1] == 5 for op in launches)  # on torch's current stream
    for members, pending in groups:
        for result, k in zip(pending.result(), members, strict=True):
            want = numpy_backend.histogram_fixed(arrays[k], None).result()
            np.testing.assert_array_equal(result.counts, want.counts)
            assert (result.stats.count, result.stats.min, result.stats.max) == (
                want.stats.count, want.stats.min, want.stats.max)  # fmt: skip
    with pytest.raises(TypeError, match="cannot histogram"):
        cuda.histograms_torch([_FakeTorchTensor(np.zeros(2, np.complex64), "torch.complex64")])


@needs_torch
def test_a_backward_pass_that_raises_does_not_stop_the_later_ones(tmp_path):
    import torch

    class Fails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("a backward pass that fails")

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        watched = gs.watch(model, writer, flight_recorder=4)
        for step in range(5):
            hidden = model[0](torch.randn(8, 4))
            if step == 1:  # the last layer's gradients accumulate, then the pass raises
                hidden = Fails.apply(hidden)
            loss = model[1](hidden).pow(2).mean() * (float("nan") if step == 4 else 1.0)
            model.zero_grad()
            if step == 1:
                with pytest.raises(RuntimeError, match="fails"):
                    loss.backward()
            else:
                loss.backward()
    assert watched.backward_passes == 4  # every pass that ended, the failed one not
    assert len(_histograms(tmp_path)["gradients/0.weight"]) == 4
    flight = [r for r in reports if r.tag == "flight_recorder"]
    assert [(r.step, r.tensors[0]) for r in flight] == [(3, "gradients/1.bias")]


@needs_torch
def test_evaluation_passes_between_steps_keep_the_flight_recorders_steps(tmp_path):
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        gs.watch(model, writer, log="all", flight_recorder=4)
        for step in range(8):
            if step == 6:
                with torch.no_grad():
                    model[0].weight[0, 0] = float("nan")
            optimizer.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.step()
            with torch.no_grad():
                model(torch.randn(8, 4))  # an evaluation pass: a forward pass, no backward
    (flight,) = [r for r in reports if r.tag == "flight_recorder"]
    assert (flight.step, flight.tensors[0]) == (6, "parameters/0.weight")
    (event,) = legacy_reader(tmp_path).Tensors("flight_recorder/text_summary")
    markdown = event.tensor_proto.string_val[0].decode()
    for step in (3, 4, 5):  # the parameters of the steps before, not lost to the evaluations
        assert f"| `parameters/0.weight` | {step} | -0." in markdown
