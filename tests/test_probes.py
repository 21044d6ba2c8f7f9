"""writer.probe / writer.collect: statistics from inside torch.compile(fullgraph=True) code,
read back through TensorBoard's reader and compared with add_histogram of the same values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout

torch = pytest.importorskip("torch", reason="probes are torch operators: needs PyTorch")


_references = itertools.count()


def _histogram(logdir, tag):
    events = legacy_reader(logdir).Histograms(tag)
    return [(e.step, e.histogram_value) for e in events]


def _reference(tmp_path, name, arrays):
    """The record add_histogram writes for the concatenation of ``arrays``."""
    folder = tmp_path / f"reference_{name}_{next(_references)}"
    with gs.SummaryWriter(folder) as writer:
        writer.add_histogram("h", np.concatenate([np.ravel(a) for a in arrays]), 0)
    ((_, value),) = _histogram(folder, "h")
    return value


def _assert_same_histogram(got, want):
    assert got.num == want.num
    assert got.min == want.min and got.max == want.max
    assert list(got.bucket_limit) == list(want.bucket_limit)
    assert list(got.bucket) == list(want.bucket)
    assert got.sum == pytest.approx(want.sum, rel=1e-9, abs=1e-9)
    assert got.sum_squares == pytest.approx(want.sum_squares, rel=1e-9)


def _step(x):  # the computation the probes watch, without probes: the oracle of outputs
    hidden = torch.tanh(x * 1.5)
    return hidden, (hidden * hidden).sum()


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_compiled_probes_no_break_exact_histogram_and_reset(tmp_path, backend):
    writer = gs.SummaryWriter(tmp_path / "run")
    p_in, p_hidden = writer.probe("probe/input"), writer.probe("probe/hidden")

    def step(x):
        hidden = torch.tanh(p_in(x) * 1.5)
        p_hidden(hidden)
        return hidden, (hidden * hidden).sum()

    compiled = torch.compile(step, fullgraph=True, backend=backend)
    generator = torch.Generator().manual_seed(1)
    inputs = [torch.randn(37, 11, generator=generator) * (k + 1) for k in range(6)]
    inputs[2][0, 0] = 0.0
    hiddens = []  # what the probe saw: the compiled graph's own values (inductor fuses tanh)
    for k, x in enumerate(inputs):
        got, loss = compiled(x)
        hiddens.append(got.numpy().copy())
        want, want_loss = _step(x)
        assert torch.equal(got, want) if backend == "aot_eager" else torch.allclose(got, want)
        assert torch.allclose(loss, want_loss)
        if k == 2:
            writer.collect(3)
    stats = torch._dynamo.utils.counters["stats"]
    assert stats["unique_graphs"] == 1  # one graph for six calls of new values: no recompile
    assert not torch._dynamo.utils.counters["graph_break"]
    writer.collect(6)
    writer.close()
    for tag, arrays in (("probe/input", [x.numpy() for x in inputs]),
                        ("probe/hidden", hiddens)):  # fmt: skip
        (first_step, first), (second_step, second) = _histogram(tmp_path / "run", tag)
        assert (first_step, second_step) == (3, 6)
        _assert_same_histogram(first, _reference(tmp_path, "first", arrays[:3]))
        _assert_same_histogram(second, _reference(tmp_path, "second", arrays[3:]))


def test_eager_probe_returns_its_input_and_counts_nonfinite(tmp_path):
    reports = []
    writer = gs.SummaryWriter(tmp_path, on_anomaly=reports.append)
    probe = writer.probe("grad")
    x = torch.tensor([1.0, float("nan"), float("inf"), -float("inf"), -2.0, 0.0])
    assert probe(x) is x
    probe(torch.arange(5, dtype=torch.int32))
    writer.collect(global_step=4)
    writer.close()
    ((step, value),) = _histogram(tmp_path, "grad")
    assert (step, value.num, value.min, value.max) == (4, 8, -2.0, 4.0)
    _assert_same_histogram(value, _reference(tmp_path, "eager", [[1.0, -2.0, 0.0], range(5)]))
    scalars = legacy_reader(tmp_path).Scalars("grad/nonfinite")
    assert [(s.step, s.value) for s in scalars] == [(4, 3.0)]
    (report,) = reports
    assert (report.tag, report.step, report.nan, report.posinf, report.neginf) == (
        "grad", 4, 1, 1, 1)  # fmt: skip
    assert report.tensors[0] == "grad"


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64, torch.int64])
def test_probe_dtypes_match_add_histogram(tmp_path, dtype):
    writer = gs.SummaryWriter(tmp_path / "run")
    probe = writer.probe("x")
    compiled = torch.compile(lambda t: probe(t) * 2, fullgraph=True, backend="aot_eager")
    values = [(torch.randn(300) * 50).to(dtype), (torch.randn(7, 5) * 1e3).to(dtype)]
    for v in values:
        compiled(v)
    writer.collect(1)
    writer.close()
    ((_, got),) = _histogram(tmp_path / "run", "x")
    want = _reference(tmp_path, "dtype", [v.float().numpy() for v in values])
    _assert_same_histogram(got, want)


def test_probe_in_a_compiled_training_step_with_backward(tmp_path):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("activations/hidden")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    seen = []

    def loss_of(x):
        hidden = probe(model[1](model[0](x)))
        seen.append(None)
        return model[2](hidden).pow(2).mean()

    compiled = torch.compile(loss_of, fullgraph=True, backend="aot_eager")
    hidden_values = []
    for _ in range(3):
        x = torch.randn(4, 8)
        with torch.no_grad():
            hidden_values.append(model[1](model[0](x)).numpy().copy())
        loss = compiled(x)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model[0].weight.grad is not None
    writer.collect(2)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "activations/hidden")
    _assert_same_histogram(got, _reference(tmp_path, "train", hidden_values))


def test_collect_without_calls_writes_nothing_and_empties(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("quiet")
    writer.collect(0)
    probe(torch.ones(3))
    writer.collect(1)
    writer.collect(2)  # emptied by the collect at 1: nothing more
    writer.close()
    assert [step for step, _ in _histogram(tmp_path, "quiet")] == [1]
    state = probe.states["cpu"].numpy()
    assert np.array_equal(state, probe_layout.empty(0))


def test_probe_of_a_tag_is_one_probe(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        assert writer.probe("a") is writer.probe("a")
        assert repr(writer.probe("a")) == "Probe('a')"


def test_probe_argument_errors_at_the_call(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    with pytest.raises(ValueError, match="bins='tensorflow'"):
        writer.probe("a", bins=30)
    probe = writer.probe("a")
    with pytest.raises(TypeError, match="takes a torch tensor"):
        probe(np.ones(3))
    with pytest.raises(
        TypeError, match="bool, integer or floating-point numbers, got dtype complex64"
    ):
        probe(torch.ones(3, dtype=torch.complex64))
    # compiled: the fake kernel's TypeError, at trace time (torch wraps it in its own error)
    with pytest.raises(
        (TypeError, RuntimeError), match="floating-point numbers, got dtype complex64"
    ):
        torch.compile(lambda t: probe(t), fullgraph=True, backend="aot_eager")(
            torch.ones(2, dtype=torch.complex64))  # fmt: skip
    for layered in (torch.eye(2).to_sparse(), torch.eye(2).to_sparse_csr(),
                    torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])):  # fmt: skip
        with pytest.raises(TypeError, match="reads dense tensors"):
            probe(layered)
    with pytest.raises(TypeError):
        writer.probe(3)
    writer.collect(0)
    writer.close()
    assert not legacy_reader(tmp_path).Tags()["histograms"]


def test_probe_accumulator_layout_is_the_kernels_stats_words():
    from gpu_summary._backend.cuda_kernels import reduce as reduce_abi

    assert probe_layout.STATS == _ladder.N_LIMITS
    assert probe_layout.STATS_WORDS == reduce_abi.STATS_WORDS
    empty = probe_layout.empty(2, 3)
    assert empty.size == probe_layout.words(2, 3) == _ladder.N_LIMITS + 8 + 4 + 1 + 24
    counts, stats, formats = probe_layout.parse(empty, 2)
    assert not counts.any() and not formats.any()
    assert (stats.count, stats.min, stats.max, stats.sum) == (0, 0.0, 0.0, 0.0)


_NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(),
                                 reason="needs a CUDA device and torch built for CUDA")  # fmt: skip


@pytest.mark.gpu
@_NEEDS_CUDA
def test_gpu_probe_captured_in_a_cuda_graph_replays_like_eager(tmp_path):
    writer = gs.SummaryWriter(tmp_path / "run")
    probe = writer.probe("captured")
    weight = torch.randn(64, 64, device="cuda")
    static_x = torch.randn(32, 64, device="cuda")

    def forward(x):
        return probe(torch.relu(x @ weight))

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            forward(static_x)
    torch.cuda.current_stream().wait_stream(side)
    writer.collect(0)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_out = forward(static_x)
        with pytest.raises(RuntimeError, match="capturing"):
            writer.collect(99)  # refused inside the capture: nothing recorded into it
    seen = []
    for step in range(5):
        static_x.copy_(torch.randn(32, 64, device="cuda") * (step + 1))
        graph.replay()
        seen.append(static_out.cpu().numpy().copy())
    writer.collect(1)
    eager = writer.probe("eager")
    for values in seen:
        eager(torch.from_numpy(values).cuda())
    writer.collect(1)
    writer.close()
    ((step0, warm), (step1, got)) = _histogram(tmp_path / "run", "captured")
    assert (step0, step1, warm.num) == (0, 1, 3 * 32 * 64)
    _assert_same_histogram(got, _reference(tmp_path, "captured", seen))
    ((_, eager_record),) = _histogram(tmp_path / "run", "eager")
    _assert_same_histogram(eager_record, got)


@pytest.mark.gpu
@_NEEDS_CUDA
def test_gpu_probe_compiled_with_inductor_matches_the_host(tmp_path):
    writer = gs.SummaryWriter(tmp_path / "run")
    probe = writer.probe("hidden")
    compiled = torch.compile(lambda t: probe(torch.tanh(t) * 3) + 1, fullgraph=True)
    values = [torch.randn(1000, 33, device="cuda", dtype=dtype)
              for dtype in (torch.float32, torch.float32, torch.bfloat16)]  # fmt: skip
    values[1][5, 5] = float("nan")
    seen = []
    for v in values:
        compiled(v)
        seen.append((torch.tanh(v) * 3).float().cpu().numpy())
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # two dtypes
    writer.collect(3)
    writer.close()
    ((_, got),) = _histogram(tmp_path / "run", "hidden")
    assert got.num == sum(s.size for s in seen) - 1
    finite = [s[np.isfinite(s)] for s in seen]
    want = _reference(tmp_path, "inductor", finite)
    assert got.num == want.num and abs(got.min - want.min) < 1e-2


def test_compiled_probe_format_counts_equal_casting_with_torch(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("lowp", formats=("float16", "bfloat16"))
    compiled = torch.compile(lambda t: probe(t * 1.0) + 1, fullgraph=True, backend="aot_eager")
    generator = torch.Generator().manual_seed(3)
    edges = torch.tensor([65519.0, 65520.0, 7e4, -7e4, 2.0**-25, 2.0**-24, -(2.0**-26), 1e-40,
                          1e-41, -3e-42, 0.0, float("inf"), float("nan"), 3.4e38])  # fmt: skip
    inputs = [torch.randn(500, generator=generator) * 10.0 ** torch.randint(-30, 30, (500,),
              generator=generator) for _ in range(3)] + [edges]  # fmt: skip
    for x in inputs:
        compiled(x)
    writer.collect(7)
    writer.close()
    together = torch.cat(inputs)
    finite = together.isfinite()
    scalars = legacy_reader(tmp_path)
    for name, dtype in (("float16", torch.float16), ("bfloat16", torch.bfloat16)):
        cast = together.to(dtype)
        overflow = int((finite & cast.isinf()).sum())
        underflow = int((finite & (together != 0) & (cast == 0)).sum())
        assert overflow and underflow
        ((over,),) = [[e.value for e in scalars.Scalars(f"lowp/lowp/{name}/overflow")]]
        ((under,),) = [[e.value for e in scalars.Scalars(f"lowp/lowp/{name}/underflow")]]
        assert (over, under) == (overflow, underflow), name


def test_probe_formats_are_checked_at_the_call(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="formats"):
            writer.probe("a", formats=("float7",))
        writer.probe("a", formats="float16")
        with pytest.raises(ValueError, match="formats"):
            writer.probe("a", formats=("bfloat16",))


def test_probe_first_used_in_inference_mode_adds_from_compiled_code_outside_it(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("evaluated")
    with torch.inference_mode():
        probe(torch.ones(3))  # first use: the accumulator must not be an inference tensor
    assert not probe.states["cpu"].is_inference()
    compiled = torch.compile(lambda t: probe(t) * 2, fullgraph=True, backend="aot_eager")
    compiled(torch.full((4,), 2.0))
    writer.collect(0)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "evaluated")
    _assert_same_histogram(got, _reference(tmp_path, "inference", [[1.0] * 3, [2.0] * 4]))


def test_probe_first_used_while_torch_export_traces_counts_the_exported_runs(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("exported")

    class Doubled(torch.nn.Module):
        def forward(self, x):
            return probe(x * 2) + 1

    exported = torch.export.export(Doubled(), (torch.ones(3),)).module()
    assert type(probe.states["cpu"]) is torch.Tensor  # not the trace's fake tensor
    exported(torch.ones(3))
    exported(torch.full((3,), -1.0))
    writer.collect(0)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "exported")
    _assert_same_histogram(got, _reference(tmp_path, "export", [[2.0] * 3, [-2.0] * 3]))


def test_a_copied_model_shares_its_probe_which_is_not_pickled(tmp_path):
    import copy
    import pickle

    writer = gs.SummaryWriter(tmp_path)
    model = torch.nn.Linear(2, 2)
    model.probe = writer.probe("shared")
    twin = copy.deepcopy(model)  # what torch.optim.swa_utils.AveragedModel does
    assert twin.probe is model.probe and copy.copy(model.probe) is model.probe
    twin.probe(torch.ones(5))
    with pytest.raises(TypeError, match="cannot be sent to another process"):
        pickle.dumps(model)
    writer.collect(0)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "shared")
    assert got.num == 5


def test_probe_under_vmap_counts_every_sample(tmp_path):
    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("v")
    batch = torch.randn(5, 7)
    shared = torch.arange(3.0)
    out = torch.vmap(lambda row: probe(row) * 2)(batch)
    torch.vmap(lambda row: row + probe(shared).sum())(batch)  # not batched: computed once
    assert torch.equal(out, batch * 2)
    writer.collect(0)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "v")
    _assert_same_histogram(got, _reference(tmp_path, "vmap", [batch.numpy(), shared]))


def _child_adds_three(probe, queue):
    state = probe.states["cpu"].numpy()
    before = int(state[probe_layout.STATS])
    probe(torch.ones(3))
    queue.put((before, int(probe.states["cpu"].numpy()[probe_layout.STATS])))


def test_a_forked_child_starts_its_probes_empty(tmp_path):
    import multiprocessing

    writer = gs.SummaryWriter(tmp_path)
    probe = writer.probe("forked")
    probe(torch.ones(8))
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child_adds_three, args=(probe, queue))
    child.start()
    assert queue.get(timeout=60) == (0, 3)  # the parent's 8 are the parent's to collect
    child.join(60)
    assert child.exitcode == 0
    writer.collect(0)
    writer.close()
    ((_, got),) = _histogram(tmp_path, "forked")
    assert got.num == 8


@pytest.mark.gpu
@_NEEDS_CUDA
def test_gpu_probe_under_reduce_overhead_is_recorded_in_inductors_cuda_graph(tmp_path):
    writer = gs.SummaryWriter(tmp_path / "run")
    probe = writer.probe("graphed")
    compiled = torch.compile(lambda t: probe(torch.relu(t)) * 2, mode="reduce-overhead",
                             fullgraph=True)  # fmt: skip
    seen = []
    for step in range(6):
        x = torch.randn(4096, device="cuda") * (step + 1)
        compiled(x)
        seen.append(torch.relu(x).cpu().numpy())
    # The accumulator's address is static: the graph is recorded, not skipped for mutating it.
    assert torch._dynamo.utils.counters["inductor"]["cudagraph_skips"] == 0
    writer.collect(5)
    writer.close()
    ((_, got),) = _histogram(tmp_path / "run", "graphed")
    _assert_same_histogram(got, _reference(tmp_path, "graphed", seen))
