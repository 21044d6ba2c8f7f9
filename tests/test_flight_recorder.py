"""gs.watch(..., flight_recorder=K): the last K steps of every watched tensor's statistics,
kept where the tensors live, and the table the writer logs at the first NaN/±Inf."""

from __future__ import annotations

import importlib.util
import re
import warnings

import numpy as np
import pytest

import gpu_summary as gs
from conftest import _cuda_available, plugin_reader, sample_values, tensor_values
from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._core import flight as layout
from gpu_summary._writer import flight_recorder

HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="PyTorch is optional; gs.watch needs it")
TAG = "flight_recorder/text_summary"
ROW = re.compile(r"^\| `([^`]+)` \| (\d+) \|(.*)\|$")


def _tables(logdir) -> list[tuple[int, str]]:
    return [(step, value.ravel()[0].decode()) for step, value in tensor_values(logdir, TAG)]


def _parse(markdown: str) -> dict[str, dict[int, tuple]]:
    """{tag: {step: (min, max, mean, rms, nonfinite, zeros)}}, None for a missing number."""
    rows: dict[str, dict[int, tuple]] = {}
    for line in markdown.splitlines():
        match = ROW.match(line)
        if match:
            cells = [c.strip().strip("*") for c in match.group(3).split("|")]
            values = [None if c == "—" else float(c.replace(",", "")) for c in cells]
            rows.setdefault(match.group(1), {})[int(match.group(2))] = tuple(values)
    return rows


def _first(markdown: str) -> tuple[str, int]:
    match = re.search(r"First NaN/±Inf: `([^`]+)` at step (\d+)", markdown)
    return match.group(1), int(match.group(2))


def _expected(values: np.ndarray) -> tuple:
    x = np.asarray(values, np.float64).ravel()
    finite = x[np.isfinite(x)]
    nonfinite, zeros = x.size - finite.size, int(np.count_nonzero(x == 0))
    if not finite.size:
        return (None, None, None, None, nonfinite, zeros)
    return (finite.min(), finite.max(), finite.mean(), np.sqrt(np.mean(finite**2)), nonfinite,
            zeros)  # fmt: skip


def _assert_row(got: tuple, want: tuple) -> None:
    for g, w in zip(got[:4], want[:4], strict=True):
        assert (g is None) == (w is None)
        if w is not None:
            assert g == pytest.approx(w, rel=1e-5, abs=1e-9)
    assert got[4:] == want[4:]


def _model():
    import torch

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(4, 6)
            self.out = torch.nn.Linear(6, 1)

        def forward(self, x):
            return self.out(torch.relu(self.fc(x)))

    torch.manual_seed(0)
    return Net()


def _train(model, writer, steps, *, poison=None, watch=None, extra_loss=None):
    """Train ``model`` for ``steps`` steps under ``gs.watch``; ``poison(step)`` runs before a
    step's forward pass. Returns (parameters before each forward, gradients after each
    backward, the order backward produced them), as NumPy arrays by name."""
    import torch

    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    order: list[str] = []
    names = {id(p): n for n, p in model.named_parameters()}
    for p in model.parameters():
        p.register_post_accumulate_grad_hook(lambda q: order.append(names[id(q)]))
    watched = gs.watch(model, writer, **(watch or {"log": "all", "flight_recorder": 8}))
    parameters, gradients, orders = [], [], []
    generator = torch.Generator().manual_seed(1)
    for step in range(steps):
        if poison is not None:
            poison(step)
        parameters.append({n: p.detach().numpy().copy() for n, p in model.named_parameters()})
        loss = model(torch.randn(16, 4, generator=generator)).pow(2).mean()
        if extra_loss is not None:
            loss = loss + extra_loss(step)
        optimizer.zero_grad()
        order.clear()
        loss.backward()
        gradients.append({n: p.grad.numpy().copy() for n, p in model.named_parameters()})
        orders.append(list(order))
        optimizer.step()
    return watched, parameters, gradients, orders


@needs_torch
def test_a_nan_in_a_parameter_at_step_9_names_it_first_with_steps_2_to_9(tmp_path):
    import torch

    model = _model()

    def poison(step: int) -> None:
        if step == 9:
            with torch.no_grad():
                model.fc.weight[0, 0] = float("nan")

    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        _, parameters, gradients, orders = _train(model, writer, 12, poison=poison)
    ((step, markdown),) = _tables(tmp_path)  # one table, for the first NaN
    assert step == 9
    assert _first(markdown) == ("parameters/fc.weight", 9)
    rows = _parse(markdown)
    names = [n for n, _ in model.named_parameters()]
    assert set(rows) == {f"{kind}/{n}" for kind in ("parameters", "gradients") for n in names}
    for name in names:
        for kind, saved in (("parameters", parameters), ("gradients", gradients)):
            per_step = rows[f"{kind}/{name}"]
            assert sorted(per_step) == list(range(2, 10))
            for s in range(2, 10):
                _assert_row(per_step[s], _expected(saved[s][name]))
    # Rows: the bad step's parameters in named_parameters() order, then its gradients as
    # backward produced them.
    shown = list(dict.fromkeys(re.findall(r"^\| `([^`]+)`", markdown, flags=re.MULTILINE)))
    assert shown == [f"parameters/{n}" for n in names] + [f"gradients/{n}" for n in orders[9]]
    (report,) = [r for r in reports if r.tag == "flight_recorder"]
    assert report.step == 9 and report.tensors[0] == "parameters/fc.weight"
    assert (report.nan, report.posinf, report.neginf, report.count) == (1, 0, 0, 23)
    offenders = [f"gradients/{n}" for n in orders[9]
                 if not np.isfinite(gradients[9][n]).all()]  # fmt: skip
    assert report.tensors == ("parameters/fc.weight", *offenders)


@needs_torch
def test_a_nan_first_in_gradients_names_the_one_backward_produced_first(tmp_path):
    import torch

    model = _model()

    def extra_loss(step: int):
        if step != 5:
            return 0.0
        nan = torch.tensor(float("nan"))  # a NaN gradient for both weights, none for biases
        return (model.fc.weight.sum() + model.out.weight.sum()) * nan

    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        _, _, gradients, orders = _train(model, writer, 8, extra_loss=extra_loss)
    bad = [n for n in orders[5] if not np.isfinite(gradients[5][n]).all()]
    assert set(bad) == {"fc.weight", "out.weight"}
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (5, (f"gradients/{bad[0]}", 5))
    assert bad[0] == "out.weight"  # backward reaches the output layer first
    rows = _parse(markdown)
    assert sorted(rows["parameters/fc.weight"]) == list(range(0, 6))
    assert rows["parameters/fc.weight"][5][4] == 0  # the parameters were still finite
    (report,) = [r for r in reports if r.tag == "flight_recorder"]
    assert report.tensors == tuple(f"gradients/{n}" for n in bad)


@needs_torch
def test_no_table_without_a_nan_and_every_thins_only_the_histograms(tmp_path):
    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        watched, *_ = _train(_model(), writer, 6,
                             watch={"log": "all", "every": 4, "flight_recorder": 3})  # fmt: skip
        watched.remove()
    assert TAG not in plugin_reader(tmp_path).Tags()["tensors"]
    assert reports == []


@needs_torch
def test_every_step_is_recorded_whatever_every_is(tmp_path):
    import torch

    model = _model()

    def poison(step: int) -> None:
        if step == 6:
            with torch.no_grad():
                model.out.bias.fill_(float("inf"))

    with gs.SummaryWriter(tmp_path) as writer:
        _, parameters, _, _ = _train(model, writer, 8, poison=poison,
                                     watch={"log": "parameters", "every": 5,
                                            "flight_recorder": 4})  # fmt: skip
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (6, ("parameters/out.bias", 6))
    rows = _parse(markdown)
    assert not any(tag.startswith("gradients/") for tag in rows)
    assert sorted(rows["parameters/fc.bias"]) == [3, 4, 5, 6]
    for s in (3, 4, 5, 6):
        _assert_row(rows["parameters/fc.bias"][s], _expected(parameters[s]["fc.bias"]))
    assert rows["parameters/out.bias"][6][:5] == (None, None, None, None, 1)


@needs_torch
@pytest.mark.parametrize("how", ["close", "unwatch"])
def test_a_nan_at_the_last_step_is_logged_at_close_or_unwatch(tmp_path, how):
    import torch

    model = _model()
    with gs.SummaryWriter(tmp_path) as writer:
        watched = gs.watch(model, writer, log="parameters", flight_recorder=2)
        for step in range(3):
            if step == 2:
                with torch.no_grad():
                    model.fc.bias[1] = float("-inf")
            model(torch.zeros(1, 4))
        if how == "unwatch":
            gs.unwatch(model)
            assert watched.flight not in writer._state.monitors
            writer.flush()
            assert len(_tables(tmp_path)) == 1
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (2, ("parameters/fc.bias", 2))
    assert "(1 -Inf of 6 values)" in markdown
    assert sorted(_parse(markdown)["parameters/fc.bias"]) == [1, 2]


@needs_torch
def test_zeros_of_either_sign_are_counted(tmp_path):
    import torch

    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.0, -0.0, 1.0], [float("nan"), 0.0, -2.0]]))
        model.bias.zero_()
    with gs.SummaryWriter(tmp_path) as writer:
        gs.watch(model, writer, log="parameters", flight_recorder=1)
        model(torch.zeros(1, 3))
    ((_, markdown),) = _tables(tmp_path)
    rows = _parse(markdown)
    _assert_row(rows["parameters/weight"][0], (-2.0, 1.0, -0.2, np.sqrt(1.0), 1, 3))
    _assert_row(rows["parameters/bias"][0], (0.0, 0.0, 0.0, 0.0, 0, 2))


@needs_torch
@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (0, ValueError, r"flight_recorder must be between 1 and 1000"),
        (1001, ValueError, r"flight_recorder must be between 1 and 1000"),
        (2.5, TypeError, r"flight_recorder must be None \(off\) or an int"),
        (True, TypeError, r"flight_recorder must be None \(off\) or an int"),
        ("8", TypeError, r"flight_recorder must be None \(off\) or an int"),
    ],
)
def test_flight_recorder_argument_errors_install_nothing(tmp_path, value, error, match):
    model = _model()
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(error, match=match):
            gs.watch(model, writer, log="all", flight_recorder=value)
        assert not model._forward_pre_hooks
        assert all(not p._post_accumulate_grad_hooks for p in model.parameters())
        assert writer._state.monitors == []
    assert flight_recorder.check_slots(np.int64(8)) == 8
    with pytest.raises(TypeError, match=r"needs a gpu_summary\.SummaryWriter"):
        gs.watch(model, object(), log="all", flight_recorder=4)
    assert not model._forward_pre_hooks
    assert all(not p._post_accumulate_grad_hooks for p in model.parameters())


@needs_torch
def test_a_failing_recorder_warns_and_the_training_goes_on(tmp_path, monkeypatch):
    import torch

    def broken(*args):
        raise RuntimeError("no ring today")

    monkeypatch.setattr(numpy_backend, "flight_add", broken)
    model = _model()
    with gs.SummaryWriter(tmp_path) as writer:
        watched = gs.watch(model, writer, log="all", flight_recorder=4)
        with pytest.warns(RuntimeWarning, match="flight recorder stopped.*no ring today"):
            model(torch.zeros(2, 4)).sum().backward()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # warned once: the recorder is off
            model(torch.zeros(2, 4)).sum().backward()
        assert watched.flight.finished
    assert TAG not in plugin_reader(tmp_path).Tags()["tensors"]


def test_the_host_ring_keeps_the_last_slots_and_stops_after_the_first_bad_step():
    a = np.array([1.0, -0.0, 3.0], np.float32)
    b = np.arange(6, dtype=np.int64).reshape(2, 3)
    ring = numpy_backend.flight_open(3, 2, a)
    for step in range(5):
        word = numpy_backend.flight_add(ring, [a + step, b], [0, 1], [1, 0], step).result()
        assert word == layout.NONE
    records = layout.FlightRecords(numpy_backend.flight_result(ring).result(), 3, 2)
    assert records.first_bad is None
    assert [records.at(s, 0) is not None for s in range(5)] == [False, False, True, True, True]
    got = records.at(3, 0)
    assert (got.count, got.zeros, got.order, got.min, got.max) == (3, 0, 1, 3.0, 6.0)
    assert got.mean == pytest.approx(13 / 3) and got.rms == pytest.approx(np.sqrt(61 / 3))
    assert records.at(4, 1).zeros == 1 and records.at(4, 1).max == 5.0
    bad = np.array([np.nan, np.inf, -np.inf, 0.0])
    assert numpy_backend.flight_add(ring, [bad], [1], [0], 5).result() == 5
    assert numpy_backend.flight_add(ring, [a], [0], [1], 5).result() == 5  # the same step
    assert numpy_backend.flight_add(ring, [a * 0], [0], [1], 6).result() == 5  # not written
    records = layout.FlightRecords(numpy_backend.flight_result(ring).result(), 3, 2)
    assert records.first_bad == 5 and records.at(6, 0) is None and records.at(3, 0) is not None
    got = records.at(5, 1)
    assert (got.count, got.nan, got.posinf, got.neginf, got.zeros) == (1, 1, 1, 1, 1)
    assert (got.min, got.max, got.mean, got.rms) == (0.0, 0.0, 0.0, 0.0)
    assert (records.at(5, 0).min, records.at(5, 0).max, records.at(5, 0).zeros) == (0.0, 3.0, 1)


def _ring_records(backend, xp, steps, slots, dtypes, seed=0):
    """Feed the same steps to a ring of ``backend`` (arrays made by ``xp``); its records."""
    rng = np.random.default_rng(seed)
    host = []
    for step in range(steps):
        arrays = []
        for k, dtype in enumerate(dtypes):
            values = sample_values(dtype, 200 + 70_000 * (k == 0), seed=seed + step + k)
            if np.issubdtype(dtype, np.floating) or dtype == np.int64:
                values[rng.integers(0, values.size, 5)] = 0
                if np.issubdtype(dtype, np.floating):
                    values[rng.integers(0, values.size, 3)] = -0.0
            if step < steps - 1 and np.issubdtype(dtype, np.floating):
                values = np.where(np.isfinite(values), values, 1).astype(dtype)
            arrays.append(values)
        host.append(arrays)
    ring = None
    words = []
    for step, arrays in enumerate(host):
        adopted = [backend_for(xp.asarray(a), "a")[1] for a in arrays]
        ring = ring or backend.flight_open(slots, len(dtypes) + 1, adopted[0])
        columns = list(range(len(dtypes)))[::-1]
        orders = list(range(len(dtypes)))
        words.append(backend.flight_add(ring, adopted, columns, orders, step))
    words = [w.result() for w in words]
    return words, layout.FlightRecords(backend.flight_result(ring).result(), slots, len(dtypes) + 1)


_DTYPES = [np.float32, np.float16, np.float64, np.int64, np.bool_, np.uint8]


def test_the_device_ring_equals_the_host_ring(emulated_cupy):
    from gpu_summary._backend import cuda

    host_words, want = _ring_records(numpy_backend, np, 5, 3, _DTYPES)
    device_words, got = _ring_records(cuda, emulated_cupy, 5, 3, _DTYPES)
    assert device_words == host_words == [layout.NONE] * 4 + [4]
    assert got.first_bad == want.first_bad == 4
    for step in range(7):
        for column in range(len(_DTYPES) + 1):
            a, b = got.at(step, column), want.at(step, column)
            assert (a is None) == (b is None), (step, column)
            if a is None:
                continue
            assert (a.step, a.order, a.count, a.nan, a.posinf, a.neginf, a.zeros, a.min, a.max) == (
                b.step,
                b.order,
                b.count,
                b.nan,
                b.posinf,
                b.neginf,
                b.zeros,
                b.min,
                b.max,
            )
            assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-300)
            assert a.rms == pytest.approx(b.rms, rel=1e-9, abs=1e-300)
    assert got.at(4, len(_DTYPES)) is None  # a column no step wrote


def test_a_device_step_is_one_launch_per_dtype_and_one_word_back(emulated_cupy, tmp_path):
    fake = emulated_cupy
    rng = np.random.default_rng(3)
    tensors = [fake.asarray(rng.standard_normal(n).astype(np.float32)) for n in (10, 0, 70_000)]
    tensors.append(fake.asarray(rng.standard_normal((6, 8)).astype(np.float64)[:, ::2]))
    tags = [f"parameters/t{k}" for k in range(4)]
    with gs.SummaryWriter(tmp_path) as writer:
        recorder = flight_recorder.FlightRecorder(writer._state, 2, tags, "parameters")
        recorder.record("parameters", 0, [(k, k, t) for k, t in enumerate(tensors)])
        fake.log.clear()
        recorder.record("parameters", 1, [(k, k, t) for k, t in enumerate(tensors)])
        operations = list(fake.log)
        tensors[1] = fake.asarray(np.full(3, np.nan, np.float32))
        recorder.record("parameters", 2, [(k, k, t) for k, t in enumerate(tensors)])
        writer.flush()
        assert recorder.detected == 2
        recorder.record("parameters", 3, [(k, k, t) for k, t in enumerate(tensors)])
        assert recorder.finished
    launches = [op[1] for op in operations if op[0] == "launch"]
    assert launches == ["gs_flight", "gs_flight"]
    copies_back = [op for op in operations if op[0] == "memcpy" and op[2] == 2]
    assert [op[1] for op in copies_back] == [8]
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (2, ("parameters/t1", 2))
    rows = _parse(markdown)
    assert sorted(rows["parameters/t0"]) == [1, 2]
    host = [np.asarray(t.get()) for t in tensors]
    for k in range(4):
        _assert_row(rows[f"parameters/t{k}"][2], _expected(host[k]))


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA device and CuPy")
def test_the_device_ring_equals_the_host_ring_on_a_gpu():
    import cupy

    from gpu_summary._backend import cuda

    _, want = _ring_records(numpy_backend, np, 5, 3, _DTYPES)
    _, got = _ring_records(cuda, cupy, 5, 3, _DTYPES)
    assert got.first_bad == want.first_bad == 4
    for step in range(2, 5):
        for column in range(len(_DTYPES)):
            a, b = got.at(step, column), want.at(step, column)
            assert (a.count, a.nan, a.posinf, a.neginf, a.zeros, a.min, a.max, a.order) == (
                b.count, b.nan, b.posinf, b.neginf, b.zeros, b.min, b.max, b.order)  # fmt: skip
            assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-300)


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available() or not HAS_TORCH, reason="needs a CUDA device and torch")
def test_a_cuda_model_is_recorded_without_a_sync(tmp_path):
    """On a GPU: every step of a CUDA model recorded under torch's sync debug mode (any
    synchronising call raises); a NaN put into a weight at step 5 names it first, with the
    statistics of steps 2-5 equal to the saved tensors'."""
    import torch

    model = _model().cuda()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x = torch.randn(16, 4, device="cuda")
    saved = []
    reports = []
    with gs.SummaryWriter(tmp_path, on_anomaly=reports.append) as writer:
        gs.watch(model, writer, log="all", flight_recorder=4)
        model(x).pow(2).mean().backward()  # step 0: compiles the kernels
        optimizer.step()
        optimizer.zero_grad()
        writer.flush()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for step in range(1, 7):
                if step == 5:
                    with torch.no_grad():
                        model.fc.weight[0, 0] = float("nan")
                saved.append({n: p.detach().clone() for n, p in model.named_parameters()})
                model(x).pow(2).mean().backward()
                optimizer.step()
                optimizer.zero_grad()
        finally:
            torch.cuda.set_sync_debug_mode(0)
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (5, ("parameters/fc.weight", 5))
    rows = _parse(markdown)
    for name in ("fc.weight", "fc.bias", "out.weight"):
        assert sorted(rows[f"parameters/{name}"]) == [2, 3, 4, 5]
        for s in (2, 3, 4, 5):
            want = _expected(saved[s - 1][name].cpu().numpy())
            _assert_row(rows[f"parameters/{name}"][s], want)
    (report,) = [r for r in reports if r.tag == "flight_recorder"]
    assert report.tensors[0] == "parameters/fc.weight"


def test_at_most_one_check_waits_in_the_writers_queue(tmp_path, monkeypatch):
    import threading

    gate = threading.Event()
    waiting, most = [0], [0]
    with gs.SummaryWriter(tmp_path) as writer:
        recorder = flight_recorder.FlightRecorder(writer._state, 4, ["parameters/w"], "parameters")
        queue = writer._state.events.add

        def add(job):
            if job.kind is flight_recorder._CHECK:
                waiting[0] += 1
                most[0] = max(most[0], waiting[0])
            queue(job)

        check = recorder._check

        def slow_check():
            gate.wait(10)  # the writer thread held up, as by a device that lags
            waiting[0] -= 1
            check()

        monkeypatch.setattr(writer._state.events, "add", add)
        monkeypatch.setattr(recorder, "_check", slow_check)
        for step in range(30):
            values = np.full(5, np.nan if step == 20 else 1.0)
            recorder.record("parameters", step, [(0, 0, values)])
        gate.set()
        writer.flush()
        assert recorder.detected == 20 and most[0] == 1
        recorder.record("parameters", 30, [(0, 0, np.ones(5))])
    ((step, markdown),) = _tables(tmp_path)
    assert (step, _first(markdown)) == (20, ("parameters/w", 20))
    assert sorted(_parse(markdown)["parameters/w"]) == [17, 18, 19, 20]
