"""gpu_summary._core.ladder: TensorBoard's bucket limits and the cell table built from them."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_summary._core import ladder as _ladder


def test_ladder_matches_tensorflow_construction():
    assert _ladder.N_POSITIVE == 774
    assert _ladder.LIMITS.size == 1551
    assert _ladder.LIMITS[0] == -_ladder.DBL_MAX and _ladder.LIMITS[-1] == _ladder.DBL_MAX
    assert _ladder.LIMITS[_ladder.ZERO_INDEX] == 0.0
    assert (np.diff(_ladder.LIMITS) > 0).all()
    np.testing.assert_array_equal(_ladder.LIMITS, -_ladder.LIMITS[::-1])
    assert _ladder.LIMITS[_ladder.ZERO_INDEX + 1] == 1e-12
    assert _ladder.LIMITS[-2] < 1e20 <= _ladder.LIMITS[-2] * 1.1


def test_the_reference_bucket_is_the_first_limit_above():
    limits = _ladder.LIMITS
    x = np.array([limits[10], np.nextafter(limits[10], -np.inf), 0.0, -0.0, _ladder.DBL_MAX])
    assert _ladder.bucket_index_reference(x).tolist() == [
        11, 10, _ladder.ZERO_INDEX + 1, _ladder.ZERO_INDEX + 1, _ladder.LAST_INDEX,
    ]  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cell_table_agrees_with_the_reference(dtype):
    table = _ladder.cell_table(np.dtype(dtype))
    assert table.size == 1 << _ladder.CELL_BITS and not table.flags.writeable
    rng = np.random.default_rng(7)
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    bits = rng.integers(0, np.iinfo(unsigned).max, 50_000, dtype=unsigned, endpoint=True)
    with np.errstate(invalid="ignore"):
        x = bits.view(dtype).astype(np.float64)
    finite = np.isfinite(x)
    cells = (bits >> unsigned(_ladder.CELL_SHIFT[np.dtype(dtype)])).astype(np.int64)[finite]
    decided = table[cells] != _ladder.EXACT
    assert decided.mean() > 0.9  # the table settles most values without a comparison
    reference = _ladder.bucket_index_reference(x[finite])
    np.testing.assert_array_equal(table[cells][decided], reference[decided])


def _compare_rule(table: np.ndarray, cells: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The compiled kernels' reading of ``compare_table``; -1 where it says search."""
    entry = table[cells].astype(np.int64)
    one = (entry < 0) & (entry != _ladder.SEARCH)
    limit = _ladder.LIMITS[np.where(one, ~entry, 0)]
    return np.where(entry >= 0, entry, np.where(one, ~entry + (x >= limit), -1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compare_table_places_every_limit_and_its_neighbours(dtype):
    table = _ladder.compare_table(np.dtype(dtype))
    assert table.size == 1 << _ladder.CELL_BITS and not table.flags.writeable
    unsigned = np.uint32 if dtype == np.float32 else np.uint64
    finfo = np.finfo(dtype)
    with np.errstate(over="ignore"):
        limits = _ladder.LIMITS.astype(dtype)
        limits = limits[np.isfinite(limits)]
        x = np.concatenate([
            limits, np.nextafter(limits, dtype(np.inf)), np.nextafter(limits, dtype(-np.inf)),
            np.array([0.0, -0.0, finfo.max, -finfo.max, finfo.smallest_subnormal,
                      -finfo.smallest_subnormal, finfo.tiny, -finfo.tiny], dtype),
            np.random.default_rng(3).standard_normal(20_000).astype(dtype) * dtype(1e3),
        ])  # fmt: skip
    x = x[np.isfinite(x)]  # nextafter(DBL_MAX, inf)
    bits = x.view(unsigned)
    cells = (bits >> unsigned(_ladder.CELL_SHIFT[np.dtype(dtype)])).astype(np.int64)
    placed = _compare_rule(table, cells, x.astype(np.float64))
    np.testing.assert_array_equal(placed, _ladder.bucket_index_reference(x))
    # Only NaN/±Inf cells need the search: each limit's cell takes one comparison.
    special = (
        (np.arange(table.size, dtype=np.uint64) << np.uint64(_ladder.CELL_SHIFT[np.dtype(dtype)]))
        .astype(unsigned)
        .view(dtype)
    )
    with np.errstate(invalid="ignore"):
        assert ((table == _ladder.SEARCH) == ~np.isfinite(special)).all()
    assert (table >= 0).mean() > 0.99


def test_the_constants_are_tensorflows_and_the_kernels_estimate_is_unchanged():
    # The literals gs_common.cuh held before its macros came from here: the same doubles.
    assert (_ladder.SMALLEST, _ladder.CEILING, _ladder.GROWTH) == (1e-12, 1e20, 1.1)
    assert _ladder.BUCKETS_PER_OCTAVE == 7.272540897341713
    assert 1.0 / _ladder.SMALLEST == 1e12  # ladder_estimate's folded scale
    assert (_ladder.N_LIMITS, _ladder.ZERO_INDEX) == (1551, 775)
    # The cell table needs buckets wider than a cell (see the module's docstring).
    assert _ladder.GROWTH > 1 + 2.0**-8
    assert _ladder.EXACT < np.iinfo(np.int16).max
