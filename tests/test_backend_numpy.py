"""The NumPy backend (the reference) against independent, slow definitions."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from conftest import DTYPES
from gpu_summary._backend import numpy as nb
from gpu_summary._core import ladder as _ladder


def _near_every_limit() -> np.ndarray:
    """Each finite ladder limit, and the 3 doubles on either side of it."""
    limits = _ladder.LIMITS[1:-1]
    around = [limits]
    up, down = limits.copy(), limits.copy()
    for _ in range(3):
        up = np.nextafter(up, np.inf)
        down = np.nextafter(down, -np.inf)
        around += [up, down]
    return np.concatenate(around)


def _ladder_counts(values):
    return nb.histogram_fixed(np.asarray(values), None).result().counts


def _reference_counts(values):
    with np.errstate(invalid="ignore"):  # signalling NaN bit patterns
        x = np.asarray(values).astype(np.float64).ravel()
    x = x[np.isfinite(x)]
    return np.bincount(_ladder.bucket_index_reference(x), minlength=_ladder.N_LIMITS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ladder_exact_at_every_limit(dtype):
    x = _near_every_limit()
    if dtype == np.float32:  # every float32 near a limit: its rounding and neighbours
        x32 = x.astype(np.float32)
        x = np.concatenate(
            [x32, np.nextafter(x32, np.float32(np.inf)), np.nextafter(x32, np.float32(-np.inf))]
        )
    np.testing.assert_array_equal(_ladder_counts(x.astype(dtype)), _reference_counts(x))


def test_ladder_exact_on_special_values():
    tiny = np.finfo(np.float64).tiny
    x = np.array(
        [
            0.0,
            -0.0,
            5e-324,
            -5e-324,
            tiny,
            -tiny,
            1e-13,
            -1e-13,
            1.0,
            -1.0,
            _ladder.DBL_MAX,
            -_ladder.DBL_MAX,
            1e300,
            -1e300,
            1e20,
            -1e20,
        ]
    )
    np.testing.assert_array_equal(_ladder_counts(x), _reference_counts(x))
    f32 = np.finfo(np.float32)
    y = np.array(
        [
            0.0,
            -0.0,
            f32.max,
            -f32.max,
            f32.tiny,
            -f32.tiny,
            f32.smallest_subnormal,
            -f32.smallest_subnormal,
            1e-12,
            -1e-12,
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(_ladder_counts(y), _reference_counts(y))


@pytest.mark.parametrize("dtype,unsigned", [(np.float32, np.uint32), (np.float64, np.uint64)])
def test_ladder_exact_on_random_bit_patterns(dtype, unsigned):
    # Uniform random bits reach every cell: all exponents, subnormals, NaN payloads, ±Inf.
    rng = np.random.default_rng(0)
    bits = rng.integers(0, np.iinfo(unsigned).max, 400_000, dtype=unsigned, endpoint=True)
    x = bits.view(dtype)
    result = nb.histogram_fixed(x, None).result()
    np.testing.assert_array_equal(result.counts, _reference_counts(x))
    with np.errstate(invalid="ignore"):
        assert result.stats.nan == np.isnan(x).sum()
        assert result.stats.posinf == (x == np.inf).sum()
        assert result.stats.neginf == (x == -np.inf).sum()


def test_cell_table_cells_hold_at_most_one_limit():
    for dtype in (np.float32, np.float64):
        table = _ladder.cell_table(np.dtype(dtype))
        assert table.size == 1 << _ladder.CELL_BITS
        exact = np.count_nonzero(table == _ladder.EXACT) / table.size
        assert exact < 0.02, exact  # the exact path stays rare


def _reference_histogram(values: np.ndarray, limits: np.ndarray):
    x = values.astype(np.float64).ravel()
    finite = x[np.isfinite(x)]
    index = np.minimum(np.searchsorted(limits, finite, side="right"), limits.size - 1)
    return np.bincount(index, minlength=limits.size), finite


@pytest.mark.parametrize("dtype", DTYPES)
def test_histogram_fixed_every_dtype(dtype):
    rng = np.random.default_rng(1)
    if dtype == np.bool_:
        values = rng.random(5000) < 0.3
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, 5000, dtype=dtype, endpoint=True)
    else:
        values = (rng.standard_normal(5000) * 10.0 ** rng.integers(-6, 4, 5000)).astype(dtype)
    result = nb.histogram_fixed(values, None).result()
    counts, finite = _reference_histogram(values, _ladder.LIMITS)
    np.testing.assert_array_equal(result.counts, counts)
    assert result.stats.count == finite.size
    assert result.stats.min == finite.min() and result.stats.max == finite.max()
    assert result.stats.sum == pytest.approx(math.fsum(finite), rel=1e-12, abs=1e-9)
    assert result.stats.sum_squares == pytest.approx(math.fsum(finite * finite), rel=1e-12)


def test_histogram_counts_non_finite_apart():
    values = np.array([np.nan, np.inf, -np.inf, np.inf, 1.0, -2.0, np.nan, np.nan], np.float32)
    result = nb.histogram_fixed(values, None).result()
    s = result.stats
    assert (s.nan, s.posinf, s.neginf, s.count) == (3, 2, 1, 2)
    assert (s.min, s.max, s.sum, s.sum_squares) == (-2.0, 1.0, -1.0, 5.0)
    assert result.counts.sum() == 2


def test_histogram_values_on_limits_of_every_magnitude():
    values = _near_every_limit()
    result = nb.histogram_fixed(values, None).result()
    counts, _ = _reference_histogram(values, _ladder.LIMITS)
    np.testing.assert_array_equal(result.counts, counts)


@pytest.mark.parametrize("values", [np.array([]), np.array([np.nan, np.inf]), np.zeros((0, 3))])
def test_histogram_without_finite_values(values):
    result = nb.histogram_fixed(values, None).result()
    assert result.counts.sum() == 0 and result.stats.count == 0
    assert (result.stats.min, result.stats.max) == (0.0, 0.0)


def test_histogram_caller_edges():
    edges = np.array([-1.0, 0.0, 0.5, 2.0, _ladder.DBL_MAX])
    values = np.array([-5.0, -1.0, -0.5, 0.0, 0.49, 0.5, 1.99, 2.0, 1e9, np.nan])
    result = nb.histogram_fixed(values, edges).result()
    # buckets: (<-1), [-1,0), [0,0.5), [0.5,2), [2,DBL_MAX]
    np.testing.assert_array_equal(result.counts, [1, 2, 2, 2, 2])


@pytest.mark.parametrize("bins", [1, 2, 7, 30, 1000])
def test_histogram_even_matches_numpy(bins):
    rng = np.random.default_rng(bins)
    values = rng.standard_normal(20_000).astype(np.float32)
    values[:50] = values.max()  # several values exactly at the top edge
    result = nb.histogram_even(values, bins).result()
    x = values.astype(np.float64)
    edges = nb.even_edges(x.min(), x.max(), bins)
    np.testing.assert_array_equal(edges, np.linspace(x.min(), x.max(), bins + 1))
    np.testing.assert_array_equal(result.counts, np.histogram(x, edges)[0])
    np.testing.assert_array_equal(result.limits, edges[1:])


def test_histogram_even_values_on_edges():
    values = np.linspace(0.0, 1.0, 101)  # every value on an edge of 100 even bins
    result = nb.histogram_even(values, 100).result()
    expected = np.searchsorted(result.limits, values, side="right").clip(max=99)
    np.testing.assert_array_equal(result.counts, np.bincount(expected, minlength=100))


def test_histogram_even_degenerate_ranges():
    result = nb.histogram_even(np.full(10, 3.0), 4).result()
    np.testing.assert_array_equal(result.counts, [0, 0, 10, 0])
    assert result.limits[-1] == 3.5
    # A span of 3 ulps over 100 bins: edges repeat; the definition still decides.
    lo = 1e6
    values = np.array([lo, np.nextafter(lo, 2e6), np.nextafter(np.nextafter(lo, 2e6), 2e6)])
    result = nb.histogram_even(values, 100).result()
    edges = nb.even_edges(values.min(), values.max(), 100)
    expected = (np.searchsorted(edges, values, side="right") - 1).clip(0, 99)
    np.testing.assert_array_equal(result.counts, np.bincount(expected, minlength=100))
    # A span that overflows float64.
    values = np.array([-1e308, 0.0, 1e308])
    result = nb.histogram_even(values, 2).result()
    np.testing.assert_array_equal(result.counts, [1, 2])
    # Only NaN/Inf: nothing to count.
    assert nb.histogram_even(np.array([np.nan]), 3).result().counts.sum() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a[::3, 1::2],  # strided
        lambda a: np.asfortranarray(a),  # Fortran order
        lambda a: a.T,  # transposed view
        lambda a: a[5, 7],  # 0-d
        lambda a: a[:, ::-1],  # negative stride
        lambda a: a.ravel()[::-3],  # 1-D, negative stride
        lambda a: a.astype(">f8"),  # big-endian
    ],
)
def test_awkward_layouts_match_contiguous(make):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((700, 300))  # bigger than one chunk
    view = make(base)
    got = nb.histogram_fixed(view, None).result()
    want = nb.histogram_fixed(np.ascontiguousarray(view).ravel(), None).result()
    np.testing.assert_array_equal(got.counts, want.counts)
    np.testing.assert_array_equal(got.counts, _reference_counts(view))
    assert got.stats.count == np.asarray(view).size


def test_int64_beyond_2_53_rounds_to_nearest_double():
    values = np.array([2**62 + 1, -(2**62) - 1, 2**53 + 1], dtype=np.int64)
    result = nb.histogram_fixed(values, None).result()
    counts, _ = _reference_histogram(values, _ladder.LIMITS)
    np.testing.assert_array_equal(result.counts, counts)
    assert result.stats.max == float(2**62)


def test_python_numbers_and_lists():
    assert nb.as_array(3, "v").shape == ()
    result = nb.histogram_fixed(nb.as_array([[1, 2], [3, 4]], "v"), None).result()
    assert result.stats.count == 4 and result.stats.sum == 10.0


@pytest.mark.parametrize("bad", ["abc", [1, "a"], None, np.array([1 + 2j]), {"a": 1}])
def test_non_numeric_input_is_a_type_error(bad):
    with pytest.raises(TypeError, match="values"):
        nb.as_array(bad, "values")


# -- images ------------------------------------------------------------------------------------


def _area_resize_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Exact area averaging with rational overlaps, pixel by pixel."""
    h, w, c = image.shape
    out = np.zeros((out_h, out_w, c), dtype=np.uint8)
    for i in range(out_h):
        y0, y1 = Fraction(i * h, out_h), Fraction((i + 1) * h, out_h)
        for j in range(out_w):
            x0, x1 = Fraction(j * w, out_w), Fraction((j + 1) * w, out_w)
            for ch in range(c):
                total = Fraction(0)
                for y in range(math.floor(y0), math.ceil(y1)):
                    wy = min(y1, y + 1) - max(y0, y)
                    for x in range(math.floor(x0), math.ceil(x1)):
                        wx = min(x1, x + 1) - max(x0, x)
                        total += wy * wx * int(image[y, x, ch])
                mean = total / ((y1 - y0) * (x1 - x0))
                out[i, j, ch] = math.floor(mean + Fraction(1, 2))
    return out


@pytest.mark.parametrize(
    "shape,max_size",
    [((7, 5, 3), 3), ((9, 9, 1), 4), ((6, 13, 4), 5), ((8, 8, 3), 2), ((5, 11, 3), 1)],
)
def test_area_resize_is_exact(shape, max_size):
    rng = np.random.default_rng(sum(shape))
    image = rng.integers(0, 256, shape, dtype=np.uint8)
    thumbs = nb.thumbnails(image[None], max_size).result()
    out_h, out_w = nb.thumbnail_size(shape[0], shape[1], max_size)
    assert max(out_h, out_w) == max_size
    np.testing.assert_array_equal(thumbs[0], _area_resize_reference(image, out_h, out_w))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.bool_])
@pytest.mark.parametrize(
    "shape,max_size", [((37, 23, 3), 5), ((23, 37, 1), 9), ((64, 64, 4), 7), ((50, 3, 3), 4)]
)
def test_an_image_too_large_to_convert_whole_is_shrunk_in_pieces_to_the_same_pixels(
    monkeypatch, dtype, shape, max_size
):
    """The streamed path (one image over ``STREAM_ABOVE`` values, converted ``BAND`` values at
    a time) gives exactly the pixels of the whole-image path, here forced on small images."""
    from gpu_summary._backend.numpy import images as spec_images

    rng = np.random.default_rng(sum(shape))
    batch = rng.random((2, *shape))
    batch = (batch < 0.5) if dtype == np.bool_ else batch.astype(dtype) if dtype != np.uint8 \
        else (batch * 255).astype(np.uint8)  # fmt: skip
    if dtype == np.float32:
        batch[0, 1, 2, 0] = np.nan
    want = spec_images.thumbnails(batch, max_size).result()
    monkeypatch.setattr(spec_images, "STREAM_ABOVE", 16)
    monkeypatch.setattr(spec_images, "BAND", 2 * shape[1] * shape[2] + 5)  # two rows and a bit
    got = spec_images.thumbnails(batch, max_size).result()
    np.testing.assert_array_equal(got, want)
    whole = spec_images.image_to_uint8(batch)  # in pieces of BAND values: the same pixels
    monkeypatch.setattr(spec_images, "BAND", 1 << 30)
    np.testing.assert_array_equal(whole, spec_images.image_to_uint8(batch))


def test_thumbnail_integer_factor_is_block_mean():
    rng = np.random.default_rng(5)
    batch = rng.integers(0, 256, (3, 40, 60, 3), dtype=np.uint8)
    thumbs = nb.thumbnails(batch, 15).result()  # factor 4 exactly
    block = batch.reshape(3, 10, 4, 15, 4, 3).astype(np.int64).sum(axis=(2, 4))
    np.testing.assert_array_equal(thumbs, (2 * block + 16) // 32)


def test_image_to_uint8():
    x = np.array([-1.0, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 7.0, np.nan, np.inf, -np.inf])
    np.testing.assert_array_equal(nb.image_to_uint8(x), [0, 0, 1, 2, 128, 255, 255, 0, 255, 0])
    np.testing.assert_array_equal(nb.image_to_uint8(np.array([True, False])), [255, 0])
    assert nb.image_to_uint8(np.float16([0.25])).tolist() == [64]


def test_thumbnails_copy_never_alias_the_input():
    batch = np.zeros((2, 4, 4, 3), np.uint8)
    thumbs = nb.thumbnails(batch, None).result()
    batch[:] = 9
    assert thumbs.max() == 0


def test_even_edges_over_an_overflowing_span():
    edges = nb.even_edges(-1e308, 1.7e308, 10)
    assert np.isfinite(edges).all() and (np.diff(edges) > 0).all()
    values = np.linspace(-0.5e308, 0.85e308, 1001) * 2
    result = nb.histogram_even(values, 10).result()
    expected = (np.searchsorted(edges, values, side="right") - 1).clip(0, 9)
    np.testing.assert_array_equal(result.counts, np.bincount(expected, minlength=10))
