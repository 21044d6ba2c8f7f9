"""The compiled host reductions (numba) against the specification (``reduce``), and the path
without them.

Counts, min and max must equal the specification bit for bit and sums stay within
``MOMENT_RTOL`` of the sum of magnitudes, for every dtype, NaN/±Inf, subnormals, values at and
on either side of every ladder limit, int64 beyond 2**53, and strided, F-order, read-only, 0-d
and empty inputs; arrays split over threads (more parts than this machine's cores, forced)
merge exactly. Without numba (hidden from a fresh interpreter) or with
``GPU_SUMMARY_COMPILED=0`` every reduction takes the specification's path, and the writer's
histograms read back the same.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DTYPES, MOMENT_RTOL, assert_stats_match, run_python, sample_values
from gpu_summary._backend import numpy as host_backend
from gpu_summary._backend.numpy import compiled, compiled_reports
from gpu_summary._backend.numpy import compiled_runtime as runtime
from gpu_summary._backend.numpy import reduce as spec
from gpu_summary._core import ladder as _ladder
from support.numba_path import HAVE_NUMBA, compiled_kernels, needs_numba  # noqa: F401

pytestmark = pytest.mark.usefixtures("compiled_kernels")  # the kernels compiled first


def _edge_values(dtype) -> np.ndarray:
    """Every ladder limit and its neighbours in ``dtype``, subnormals, extremes, NaN, ±Inf."""
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.array([True, False, True, True])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        near = [info.min, info.min + 1, -1, 0, 1, info.max - 1, info.max]
        if dtype.itemsize == 8:  # doubles round these: the conversion itself is checked
            near += [2**53 - 1, 2**53, 2**53 + 1, 2**62 + 513, info.max - 511]
        return np.array([v for v in near if info.min <= v <= info.max], dtype=dtype)
    finfo = np.finfo(dtype)
    with np.errstate(over="ignore"):
        limits = _ladder.LIMITS.astype(dtype)
        values = np.concatenate([
            limits,
            np.nextafter(limits, np.array(np.inf, dtype)),
            np.nextafter(limits, np.array(-np.inf, dtype)),
            np.array([finfo.smallest_subnormal, -finfo.smallest_subnormal, finfo.tiny,
                      finfo.tiny / 2, finfo.max, -finfo.max, 0.0, -0.0, np.nan, np.inf,
                      -np.inf, 1e-12, -1e-12]).astype(dtype),
        ])  # fmt: skip
    return values


def _same(got, want, values) -> None:
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.limits, want.limits)
    assert_stats_match(got.stats, want.stats, values)


_EDGES = np.append(np.linspace(-1e3, 1e3, 101), _ladder.DBL_MAX)


def _check_all(values) -> None:
    _same(compiled.histogram_fixed(values, None).result(),
          spec.histogram_fixed(values, None).result(), values)  # fmt: skip
    _same(compiled.histogram_fixed(values, _EDGES).result(),
          spec.histogram_fixed(values, _EDGES).result(), values)  # fmt: skip
    _same(compiled.histogram_even(values, 30).result(),
          spec.histogram_even(values, 30).result(), values)  # fmt: skip
    assert_stats_match(compiled.tensor_stats(values).result(),
                       spec.tensor_stats(values).result(), values)  # fmt: skip


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_dtype_equals_the_specification(dtype):
    values = sample_values(dtype, 50_001)
    edges = _edge_values(dtype)
    values[: edges.size] = edges[: values.size]
    _check_all(values)
    _check_all(edges)
    assert runtime.variant_of(values) in runtime._state  # the compiled path ran, not the spec


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_ladder_limit_and_its_neighbours(dtype):
    values = _edge_values(dtype)
    rng = np.random.default_rng(2)
    for _ in range(3):  # each order puts limits, neighbours and NaN in different blocks
        shuffled = values[rng.permutation(values.size)]
        _check_all(shuffled)
        _check_all(np.repeat(shuffled, 5))  # blocks of 4,096 with and without non-finite


@needs_numba
@pytest.mark.parametrize(
    "make",
    [
        lambda a: a.T,
        lambda a: np.asfortranarray(a),
        lambda a: a[::3, 1:-1],
        lambda a: a[::-1, ::-2],
        lambda a: a.reshape(6, 10, 5, 8)[:, ::2, :, ::3],
        lambda a: a[5, 7, ...],
        lambda a: a[:0],
        lambda a: np.broadcast_to(a[:1], (4, 40)),
        lambda a: a.astype(">f8"),  # big-endian: no kernel reads it, the specification does
    ],
    ids=[
        "transposed",
        "fortran",
        "sliced",
        "reversed",
        "4-d strided",
        "0-d",
        "empty",
        "broadcast",
        "big-endian",
    ],
)
def test_layouts(make):
    _check_all(make(sample_values(np.float64, 2400).reshape(60, 40)))


@needs_numba
def test_read_only_and_slabs_of_a_large_strided_array(monkeypatch):
    values = sample_values(np.float32, 3 * runtime.SLAB + 17)
    values.setflags(write=False)
    _check_all(values)
    monkeypatch.setattr(runtime, "SLAB", 1000)  # many slab copies of a strided view
    _check_all(values.reshape(-1, 1)[::2])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.uint8, np.float16])
def test_parts_on_threads_merge_exactly(monkeypatch, dtype):
    monkeypatch.setattr(runtime, "PART", 1000)
    monkeypatch.setattr(runtime, "workers", lambda: 5)  # more parts than cores, uneven sizes
    values = sample_values(dtype, 23_456)
    _check_all(values)
    first = compiled.histogram_fixed(values, None).result()
    second = compiled.histogram_fixed(values, None).result()
    assert first.stats == second.stats  # a fixed merge order: sums repeat exactly


@needs_numba
def test_many_tensors_shared_over_threads(monkeypatch):
    monkeypatch.setattr(runtime, "PART", 1000)
    rng = np.random.default_rng(4)
    tensors = [sample_values(np.float32, int(n), seed=k)
               for k, n in enumerate(rng.integers(1, 9000, 25))]  # fmt: skip
    tensors += [sample_values(np.float64, 5000), np.float32(3.5).reshape(()), np.zeros(0)]
    got = compiled.histograms(tensors).result()
    want = spec.histograms(tensors).result()
    for g, w, t in zip(got, want, tensors, strict=True):
        _same(g, w, t)


def test_the_backend_runs_the_compiled_path_where_it_can():
    assert host_backend.histogram_fixed is compiled.histogram_fixed
    assert host_backend.tensor_stats is compiled.tensor_stats
    assert compiled.enabled() == HAVE_NUMBA


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("GPU_SUMMARY_COMPILED", "0")
    assert not compiled.enabled()
    assert compiled._reduce(np.ones(10, np.float32), compiled.LADDER) is None
    values = sample_values(np.float32, 1000)
    _same(compiled.histogram_fixed(values, None).result(),
          spec.histogram_fixed(values, None).result(), values)  # fmt: skip


def test_switched_off_the_ladder_is_counted_by_its_cell_table(monkeypatch):
    """The fallback hands the specification the ladder itself (None), which it counts by the
    cell table, not the ladder's limits, which it would search value by value (10x slower)."""
    monkeypatch.setenv("GPU_SUMMARY_COMPILED", "0")
    seen = []
    reference = spec.histogram_fixed
    monkeypatch.setattr(spec, "histogram_fixed", lambda v, limits: seen.append(limits) or
                        reference(v, limits))  # fmt: skip
    values = sample_values(np.float32, 1000)
    got = compiled.histogram_fixed(values, None).result()
    got_many = compiled.histograms([values, values[:10]]).result()
    assert seen == [None, None, None]
    assert got.limits is _ladder.LIMITS and all(r.limits is _ladder.LIMITS for r in got_many)


_WITHOUT_NUMBA = """
    import importlib.abc, json, sys

    class HideNumba(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "numba" or name.startswith("numba."):
                raise ImportError("numba hidden for this test")
            return None

    sys.meta_path.insert(0, HideNumba())
    import numpy as np
    import gpu_summary as gs
    from gpu_summary._backend.numpy import compiled

    values = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    values[::7] = np.nan
    with gs.SummaryWriter(LOGDIR) as writer:
        writer.add_histogram("h", values, 3)
        writer.add_histogram("even", values, 3, bins=20)
    print(json.dumps({"enabled": compiled.enabled(), "prepared": compiled.prepare(),
                      "numba": "numba" in sys.modules}))
"""


def test_without_numba_the_specification_writes_the_same(tmp_path):
    from tensorboard.backend.event_processing import event_accumulator

    code = _WITHOUT_NUMBA.replace("LOGDIR", repr(str(tmp_path / "run")))
    done = run_python(code, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "enabled": False, "prepared": False, "numba": False,
    }  # fmt: skip
    accumulator = event_accumulator.EventAccumulator(str(tmp_path / "run"))
    accumulator.Reload()
    values = np.random.default_rng(0).standard_normal(100_000).astype(np.float32)
    values[::7] = np.nan
    want = spec.histogram_fixed(values, None).result()
    got = accumulator.Histograms("h")[0].histogram_value
    assert got.num == want.stats.count
    assert (got.min, got.max) == (want.stats.min, want.stats.max)
    assert sum(got.bucket) == want.stats.count
    assert accumulator.Histograms("even")[0].histogram_value.num == want.stats.count


@needs_numba
def test_a_first_call_never_waits_for_the_compiler():
    # The compile is held until the first call has returned: were the call waiting for it,
    # the interpreter would hang (and the test time out) instead of printing.
    done = run_python(
        """
        import json, threading
        import numpy as np
        from gpu_summary._backend.numpy import compiled, reduce as spec
        from gpu_summary._backend.numpy import compiled_runtime as runtime
        release = threading.Event()
        compile_now = runtime._compile
        runtime._compile = lambda variant: (release.wait(), compile_now(variant))
        import sys
        small = compiled.histogram_fixed(np.ones(1000, np.float32), None).result()
        quiet = not runtime._state and "numba" not in sys.modules  # too small to compile for
        values = np.linspace(-3, 3, 100_001, dtype=np.float32)
        first = compiled.histogram_fixed(values, None).result()
        state = runtime._state[runtime.variant_of(values)]
        release.set()
        for thread in threading.enumerate():
            if thread.name == "gpu_summary compile":
                thread.join()
        again = compiled.histogram_fixed(values, None).result()
        want = spec.histogram_fixed(values, None).result()
        print(json.dumps({"quiet": quiet, "state": state,
                          "same": bool((first.counts == want.counts).all()),
                          "again": bool((again.counts == want.counts).all()),
                          "ready": runtime._state[runtime.variant_of(values)]}))
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "quiet": True, "state": "compiling", "same": True, "again": True, "ready": "ready",
    }  # fmt: skip


@needs_numba
@pytest.mark.parametrize(
    ("shape", "max_size"),
    [
        ((3, 37, 53, 3), 10),
        ((2, 100, 7, 1), 13),
        ((2, 301, 299, 4), 64),
        ((1, 5, 5, 3), 4),
        ((5, 64, 64, 3), 63),
        ((2, 2, 900, 1), 7),
    ],
)
def test_thumbnails_equal_the_specification(shape, max_size):
    from gpu_summary._backend.numpy import images as spec_images

    rng = np.random.default_rng(sum(shape))
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    floats = rng.random(shape)
    floats[0, 0, 0, 0] = np.nan
    for images in (pixels, floats, pixels > 128, pixels.transpose(0, 2, 1, 3)):
        got = compiled_reports.thumbnails(images, max_size).result()
        np.testing.assert_array_equal(got, spec_images.thumbnails(images, max_size).result())
    nchw = np.ascontiguousarray(pixels.transpose(0, 3, 1, 2))
    nchw.setflags(write=False)
    view = nchw.transpose(0, 2, 3, 1)  # read-only and strided, as add_images(NCHW) hands it
    np.testing.assert_array_equal(compiled_reports.thumbnails(view, max_size).result(),
                                  spec_images.thumbnails(view, max_size).result())  # fmt: skip
    assert host_backend.thumbnails is compiled_reports.thumbnails


def _same_report(got, want) -> None:
    for field in ("positions", "position_values", "order_stats", "heat_count", "heat_nonfinite"):
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=field)
    assert (got.shape, got.below, got.above) == (want.shape, want.below, want.above)
    np.testing.assert_array_equal(got.histogram.counts, want.histogram.counts)
    with np.errstate(over="ignore"):  # cells summing to ±DBL_MAX: an infinite scale
        scale = np.abs(want.heat_sum).sum() + 1.0
    assert np.abs(got.heat_sum - want.heat_sum).max(initial=0.0) <= MOMENT_RTOL * scale


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_anomaly_report_equals_the_specification(dtype):
    from gpu_summary._backend.numpy.anomaly import anomaly as spec_anomaly

    values = sample_values(dtype, 30_007)
    edges = _edge_values(dtype)
    values[: edges.size] = edges[: values.size]
    for view in (values, values[::3], values.reshape(1, -1)[:, 1:]):
        for bounds in ((None, None), (-1.0, 2.0), (0.0, None)):
            for keep in (0, 7, 100_000):
                got = compiled_reports.anomaly(view, *bounds, keep, 64).result()
                want = spec_anomaly(view, *bounds, keep, 64).result()
                _same_report(got, want)
                assert_stats_match(got.stats, want.stats, view)


@needs_numba
def test_anomaly_order_statistics_in_crowded_buckets():
    from gpu_summary._backend.numpy.anomaly import anomaly as spec_anomaly

    rng = np.random.default_rng(9)
    for values in (np.full(5000, 2.5), rng.integers(0, 3, 7001).astype(np.float32),
                   np.concatenate([np.full(900, -0.0), np.full(100, np.nan)]),
                   np.float64(7.0).reshape(()), rng.standard_normal((64, 33)).T):  # fmt: skip
        _same_report(compiled_reports.anomaly(values, None, None, 10, 8).result(),
                     spec_anomaly(values, None, None, 10, 8).result())  # fmt: skip


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_compiles_what_its_parent_was_compiling():
    done = run_python(
        """
        import os
        import numpy as np
        from gpu_summary._backend.numpy import compiled_runtime as runtime
        runtime._state[(np.dtype(np.float32), False)] = "compiling"
        runtime._state[(np.dtype(np.float64), False)] = "ready"
        pid = os.fork()
        if pid == 0:
            ok = list(runtime._state.values()) == ["ready"] and runtime._pool is None
            os._exit(0 if ok else 3)
        print(os.waitpid(pid, 0)[1])
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


@needs_numba
def test_anomaly_reads_other_dtypes_a_slab_at_a_time(monkeypatch):
    from gpu_summary._backend.numpy.anomaly import anomaly as spec_anomaly

    monkeypatch.setattr(runtime, "SLAB", 1000)  # many converted slabs, positions across them
    ints = sample_values(np.int16, 30_007)
    floats = sample_values(np.float32, 30_007)
    floats.setflags(write=False)  # read-only: viewed, not copied
    for values in (ints, ints[:30_000].reshape(6, -1)[:, ::2], floats):
        got = compiled_reports.anomaly(values, -3.0, 5.0, 500, 64).result()
        _same_report(got, spec_anomaly(values, -3.0, 5.0, 500, 64).result())


@needs_numba
def test_small_arrays_adding_up_start_the_compile():
    # A model of small tensors: no compile (nor numba's import) for the first few, one once
    # their values add up to COMPILE_FROM, and the compiled path for all of them after it.
    done = run_python(
        """
        import json, sys, threading
        import numpy as np
        from gpu_summary._backend.numpy import compiled, reduce as spec
        from gpu_summary._backend.numpy import compiled_runtime as runtime
        tensors = [np.linspace(-1, 1, 4096, dtype=np.float32) * k for k in range(1, 17)]
        for tensor in tensors[:-1]:
            compiled.histogram_fixed(tensor, None).result()
        quiet = not runtime._state and "numba" not in sys.modules
        compiled.histogram_fixed(tensors[-1], None).result()
        state = runtime._state[runtime.variant_of(tensors[-1])]
        for thread in threading.enumerate():
            if thread.name == "gpu_summary compile":
                thread.join()
        same = all((compiled.histogram_fixed(t, None).result().counts
                    == spec.histogram_fixed(t, None).result().counts).all() for t in tensors)
        print(json.dumps({"quiet": quiet, "state": state, "same": bool(same),
                          "ready": runtime.usable(runtime.variant_of(tensors[0]), 4096)}))
        """,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {"quiet": True, "state": "compiling", "same": True, "ready": True}


def test_the_reductions_never_call_blas(monkeypatch):
    # np.dot wakes BLAS's thread pool: a millisecond of CPU a call on small arrays.
    def refuse(*args, **kwargs):
        raise AssertionError("np.dot called")

    monkeypatch.setattr(np, "dot", refuse)
    for dtype in (np.float32, np.float64, np.int16, np.float16):
        for size in (100, 5000, 70_000):
            values = sample_values(dtype, size)
            for module in (spec, compiled):
                module.tensor_stats(values).result()
                module.histogram_fixed(values, None).result()
                module.histogram_fixed(values, _EDGES).result()
                module.histogram_even(values, 30).result()
