"""Even buckets (``add_histogram(..., bins=n)``) on the host: the specification (``reduce``) and
the compiled kernels (``compiled``) both count exactly ``numpy.histogram`` of the finite values
over ``numpy.linspace(min, max, n + 1)``.

The cases are the ones a wrong bucket shows in: values exactly on every edge, many values equal
to max, negative zero beside zero, spans that overflow float64 or that are a few ulps wide (the
estimate several buckets off), subnormal spans, float16 and integer inputs (int64 beyond 2**53),
NaN and ±Inf among them, and parts counted on threads. The compiled kernel is also run with a
deliberately wrong estimate of the bucket: its walk against the exact edges must still land
every value where the definition puts it.
"""

from __future__ import annotations

import numpy as np
import pytest

from gpu_summary._backend.numpy import compiled
from gpu_summary._backend.numpy import compiled_runtime as runtime
from gpu_summary._backend.numpy import reduce as spec
from support.numba_path import HAVE_NUMBA, compiled_kernels, needs_numba  # noqa: F401

pytestmark = pytest.mark.usefixtures("compiled_kernels")  # the kernels compiled first


def _numpy_counts(values: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """numpy.histogram's counts of the finite values over the even edges from min to max
    (numpy.linspace's; made by the specification where the span overflows float64), and those
    edges. Where numpy can make the bins itself, ``bins=n`` counts the same."""
    x = np.asarray(values).astype(np.float64).ravel()
    x = x[np.isfinite(x)]
    lo, hi = float(x.min()), float(x.max())
    edges = spec.even_edges(lo, hi, bins)
    want = np.histogram(x, edges)[0]
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    if np.isfinite(hi - lo) and (hi - lo) / bins > np.finfo(np.float64).tiny:
        np.testing.assert_array_equal(edges, np.linspace(lo, hi, bins + 1))
        try:
            by_numpy = np.histogram(x, bins=bins)[0]
        except ValueError:  # "Too many bins for data range": numpy cannot make them
            pass
        else:
            np.testing.assert_array_equal(by_numpy, want)
    return want, edges


def _ulps(start: float, count: int) -> np.ndarray:
    values = [start]
    for _ in range(count):
        values.append(np.nextafter(values[-1], np.inf))
    return np.array(values)


def _cases() -> dict[str, tuple[np.ndarray, int]]:
    rng = np.random.default_rng(36)
    normal = rng.standard_normal(20_000).astype(np.float32)
    normal[::97] = normal.max()  # many values equal to max: the last bucket is closed
    with_nonfinite = normal.copy()
    with_nonfinite[5::1001] = np.nan
    with_nonfinite[7::1301] = np.inf
    with_nonfinite[11::1709] = -np.inf
    halves = np.arange(-6, 7, dtype=np.float16) / np.float16(2)
    float16 = np.arange(1 << 16, dtype=np.uint16).view(np.float16)  # every pattern
    wide = np.array([2**53 - 1, 2**53, 2**53 + 1, 2**62 + 513, -(2**63), 2**63 - 1], np.int64)
    return {
        "on every edge, float64": (np.linspace(0.0, 1.0, 101), 100),
        "on every edge, float32": (np.arange(31, dtype=np.float32), 30),
        "on every edge, shuffled": (rng.permutation(np.arange(-300, 301) / 10), 60),
        "many equal to max": (normal, 30),
        "max only once": (np.array([0.0, 0.1, 0.2, 0.3, 3.0], np.float32), 3),
        "NaN and Inf among them": (with_nonfinite, 30),
        "negative zero": (np.array([-0.0, 0.0, -0.0, 1.0, -1.0, 0.5]), 2),
        "negative zero is min": (np.array([-0.0, 0.0, 1.0, 0.5, 0.25]), 4),
        "one value": (np.full(9, -2.5, np.float32), 4),
        "span overflows float64": (np.array([-1.7e308, -1e308, 0.0, 1e308, 1.7e308]), 10),
        "huge span, many values": (np.linspace(-0.8e308, 0.85e308, 5001) * 2, 30),
        "float32 extremes": (np.array([-3.4e38, 0.0, 3.4e38, 1e-45], np.float32), 30),
        "a few ulps wide": (_ulps(1e6, 3), 100),
        "a few ulps wide, float32": (_ulps(1e6, 40).astype(np.float32), 30),
        "subnormal span": (np.arange(40) * 5e-324, 30),
        "float16 halves on edges": (halves, 12),
        "every float16": (float16, 30),
        "every float16, many bins": (float16, 1000),
        "int8": (np.arange(-128, 128, dtype=np.int8), 7),
        "uint8": (rng.integers(0, 256, 5000).astype(np.uint8), 30),
        "int32": (rng.integers(-(2**31), 2**31, 5000).astype(np.int32), 30),
        "int64 beyond 2**53": (wide, 3),
        "uint64": (np.array([0, 1, 2**64 - 1, 2**63], np.uint64), 30),
        "bool": (np.array([True, False, True]), 3),
    }


CASES = _cases()
PATHS = {
    "specification": spec.histogram_even,
    "compiled": pytest.param(compiled.histogram_even, marks=needs_numba),
}


@pytest.mark.parametrize("path", PATHS.values(), ids=PATHS.keys())
@pytest.mark.parametrize("case", CASES, ids=str)
def test_counts_equal_numpy_histogram(path, case):
    values, bins = CASES[case]
    want, edges = _numpy_counts(values, bins)
    got = path(values, bins).result()
    np.testing.assert_array_equal(got.counts, want)
    np.testing.assert_array_equal(got.limits, edges[1:])
    reference = spec.histogram_even(values, bins).result()
    assert (got.stats.min, got.stats.max, got.stats.count) == (
        reference.stats.min, reference.stats.max, reference.stats.count,
    )  # fmt: skip


@needs_numba
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_compiled_path_ran(case):
    values, bins = CASES[case]
    assert runtime._state.get(runtime.variant_of(values)) == "ready"
    stats = spec.tensor_stats(values).result()
    counts = compiled._even_counts(values, compiled.read_only(
        spec.even_edges(stats.min, stats.max, bins)), bins)  # fmt: skip
    assert counts is not None
    np.testing.assert_array_equal(counts, _numpy_counts(values, bins)[0])


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("skew", [0.0, 0.5, 0.97, 1.03, 3.0])
def test_a_wrong_estimate_is_walked_to_the_exact_bucket(dtype, skew):
    rng = np.random.default_rng(7)
    values = np.concatenate([np.linspace(-3, 3, 61), rng.standard_normal(9000)])
    values = (values * 100).astype(dtype) if dtype == np.int64 else values.astype(dtype)
    values[3::17] = values.max()
    want, edges = _numpy_counts(values, 60)
    kernels = runtime.kernels()
    kernel = kernels.even_wide_int if dtype == np.int64 else kernels.even_float
    counts = np.zeros(60, np.int64)
    scale = skew * 60 / (edges[-1] - edges[0])  # the reciprocal of the step, skewed
    kernel(values, float(edges[0]), scale, False, compiled.read_only(edges), 60, counts)
    np.testing.assert_array_equal(counts, want)


@needs_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint32, np.float16])
def test_parts_on_threads_count_exactly(monkeypatch, dtype):
    monkeypatch.setattr(runtime, "PART", 1000)
    monkeypatch.setattr(runtime, "workers", lambda: 5)  # more parts than cores, uneven sizes
    values = np.random.default_rng(3).standard_normal(23_456) * 1000
    values = values.astype(dtype)
    values[::11] = values.max()
    want, _ = _numpy_counts(values, 30)
    np.testing.assert_array_equal(compiled.histogram_even(values, 30).result().counts, want)
    np.testing.assert_array_equal(spec.histogram_even(values, 30).result().counts, want)
