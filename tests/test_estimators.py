"""gpu_summary._backend.estimators: numpy's bin estimators counted on a backend equal
``numpy.histogram`` of the finite values (the CUDA backend against this, in test_backend_cuda)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpu_summary._backend import numpy as numpy_backend
from gpu_summary._backend.estimators import rule_histogram
from gpu_summary._core import arguments, bin_rules
from gpu_summary._core.results import Ready


def _values(dtype: type, n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    values = (rng.standard_normal(n) * 50).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        values[::97] = np.nan
        values[5] = np.inf
        values[6] = -np.inf
    return values


@pytest.mark.parametrize("rule", bin_rules.DEVICE_RULES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_a_rule_counts_what_numpy_histogram_counts(rule, dtype):
    values = _values(dtype, 5_001)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # stone's own "bins estimated" note
        got = rule_histogram(numpy_backend, values, rule)
    assert isinstance(got, Ready)  # host data is counted at the call
    result = got.result()
    finite = values.astype(np.float64)
    finite = finite[np.isfinite(finite)]
    counts, edges = np.histogram(finite, bins=rule)
    np.testing.assert_array_equal(result.limits[:-1], edges[:-1])  # numpy's edges
    assert result.limits[-1] == np.finfo(np.float64).max  # the last bucket open
    np.testing.assert_array_equal(result.counts, np.concatenate([[0], counts]))
    assert result.stats.count == finite.size
    assert result.stats.min == finite.min() and result.stats.max == finite.max()


def test_the_callers_array_may_change_once_the_call_returns():
    values = np.linspace(-1.0, 1.0, 1001)
    pending = rule_histogram(numpy_backend, values, "sturges")
    values[:] = 0.0
    want, _ = np.histogram(np.linspace(-1.0, 1.0, 1001), bins="sturges")
    np.testing.assert_array_equal(pending.result().counts[1:], want)


def test_too_many_bins_are_halved_with_a_warning():
    # fd's width from the quartiles: a narrow middle, a wide range (about 2e13 bins)
    values = np.append(np.linspace(0.0, 1e-6, 10_000), 1e6)
    with pytest.warns(RuntimeWarning, match="halved until they fit"):
        result = rule_histogram(numpy_backend, values, "fd").result()
    assert len(result.counts) - 1 <= arguments.MAX_BINS
    assert int(result.counts.sum()) == values.size
