"""The kernels' pure helpers (kernels/gs_common.cuh), compiled for the CPU, against NumPy.

The same header the GPU kernels include is built here with the host C++ compiler into a small
shared library (tests/native/host_helpers.cpp), so every CI run checks the bucket search, the
even-bin edges, the 16-bit float decoding, the element addressing and the thumbnail arithmetic
element for element against the NumPy backend — the logic the GPU runs, minus the launch.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gpu_summary._backend import numpy as nb
from gpu_summary._backend.cuda_kernels import anomaly as anomaly_abi
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._backend.numpy import reduce as numpy_reduce
from gpu_summary._core import ladder as _ladder

NATIVE = Path(__file__).with_name("native") / "host_helpers.cpp"

_P = np.ctypeslib.ndpointer
_I64 = ctypes.c_longlong
_SIGNATURES = {
    "ladder_buckets": [_P(np.float64), _I64, _P(np.float64), _P(np.int32)],
    "ladder_estimates": [_P(np.float64), _I64, _P(np.int32)],
    "edge_buckets": [_P(np.float64), _I64, _P(np.float64), ctypes.c_int, _P(np.int32)],
    "even_edges": [ctypes.c_double, ctypes.c_double, ctypes.c_int, _P(np.float64)],
    "even_buckets": [
        _P(np.float64),
        _I64,
        ctypes.c_double,
        ctypes.c_double,
        ctypes.c_int,
        _P(np.int32),
    ],
    "float_to_double": [_P(np.uint32), _I64, _P(np.float64)],
    "half_to_double": [_P(np.uint16), _I64, _P(np.float64)],
    "bfloat16_to_double": [_P(np.uint16), _I64, _P(np.float64)],
    "int64_to_double": [_P(np.int64), _I64, _P(np.float64)],
    "uint64_to_double": [_P(np.uint64), _I64, _P(np.float64)],
    "unit_to_u8": [_P(np.float64), _I64, _P(np.uint8)],
    "unit_to_u8_truncated": [_P(np.float64), _I64, _P(np.uint8)],
    "element_offsets": [_I64, ctypes.c_int, _P(np.int64), _P(np.int64), _P(np.int64)],
}
_ORDER_KEY_TYPES = {
    "f32": np.float32,
    "f64": np.float64,
    "i8": np.int8,
    "i32": np.int32,
    "i64": np.int64,
    "u32": np.uint32,
    "u64": np.uint64,
    "half": np.uint16,
    "bfloat16": np.uint16,
}
for _kind, _dtype in _ORDER_KEY_TYPES.items():
    _SIGNATURES[f"order_keys_{_kind}"] = [_P(_dtype), _I64, _P(np.uint64)]
for _name in ("thumbnails_u8", "thumbnails_f64", "thumbnails_bool"):
    _SIGNATURES[_name] = [ctypes.c_void_p, *[_I64] * 10, _P(np.uint8), ctypes.c_int]


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    """The helpers as a loaded shared library (built with the host's C++ compiler)."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler (c++ or g++) is needed to check the kernel helpers"
    folder = tmp_path_factory.mktemp("native")
    library = folder / "host_helpers.so"
    prologue = folder / "gs_ladder.h"  # the ladder's macros, as the kernel modules get them
    prologue.write_text(kernel_sources.ladder_prologue(), encoding="utf-8")
    command = [
        compiler,
        "-std=c++17",
        "-O2",
        "-ffp-contract=off",  # as the kernels' explicitly rounded operations: no FMA
        "-Wall",
        "-Werror",
        "-shared",
        "-fPIC",
        f"-I{kernel_sources.kernel_dir()}",
        "-include",
        str(prologue),
        str(NATIVE),
        "-o",
        str(library),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lib = ctypes.CDLL(str(library))
    for name, argtypes in _SIGNATURES.items():
        getattr(lib, name).argtypes = argtypes
        getattr(lib, name).restype = None
    return lib


def _around(values: np.ndarray, ulps: int = 3) -> np.ndarray:
    """Each value and the ``ulps`` doubles on either side of it."""
    out = [values]
    up, down = values.copy(), values.copy()
    for _ in range(ulps):
        with np.errstate(over="ignore"):  # DBL_MAX's neighbour is inf, dropped by callers
            up, down = np.nextafter(up, np.inf), np.nextafter(down, -np.inf)
        out += [up, down]
    return np.concatenate(out)


def _ladder_samples() -> np.ndarray:
    limits = _ladder.LIMITS[1:-1]
    near = _around(limits)
    as_f32 = near.astype(np.float32)  # float32 inputs near every limit, as the kernel sees them
    f32 = np.concatenate(
        [
            as_f32,
            np.nextafter(as_f32, np.float32(np.inf)),
            np.nextafter(as_f32, np.float32(-np.inf)),
        ]
    ).astype(np.float64)
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True).view(np.float64)
    special = np.array([0.0, -0.0, 5e-324, -5e-324, 1e-13, 1e20, -1e20, 1e300, -1e300])
    special = np.concatenate([special, [_ladder.DBL_MAX, -_ladder.DBL_MAX]])
    x = np.concatenate([near, f32, bits, _around(special[2:], 2), special[:2]])
    return x[np.isfinite(x)]


def test_ladder_bucket_is_exact_near_every_limit(native):
    x = _ladder_samples()
    out = np.empty(x.size, dtype=np.int32)
    native.ladder_buckets(x, x.size, np.ascontiguousarray(_ladder.LIMITS), out)
    np.testing.assert_array_equal(out, _ladder.bucket_index_reference(x))


def test_ladder_estimate_is_within_two_buckets(native):
    # The closed form must stay close, or the correction loop would walk far on the GPU.
    x = _ladder_samples()
    out = np.empty(x.size, dtype=np.int32)
    native.ladder_estimates(x, x.size, out)
    assert np.abs(out - _ladder.bucket_index_reference(x)).max() <= 2


def test_ladder_in_kernel_source_is_the_python_ladder():
    source = kernel_sources.kernel_source(kernel_sources.REDUCE_FILE)
    line = next(s for s in source.splitlines() if s.startswith("#define GS_LADDER_VALUES"))
    values = [float.fromhex(v) for v in line.split(" ", 2)[2].split(", ")]
    np.testing.assert_array_equal(values, _ladder.LIMITS)


def test_edge_buckets_are_searchsorted(native):
    rng = np.random.default_rng(1)
    for n_limits in (1, 2, 7, 100, 5000):
        limits = np.sort(rng.normal(size=n_limits))
        limits[-1] = _ladder.DBL_MAX
        x = np.concatenate([_around(limits[:-1]), rng.normal(size=1000) * 3, [-1e308, 1e308]])
        out = np.empty(x.size, dtype=np.int32)
        native.edge_buckets(x, x.size, limits, limits.size, out)
        expected = np.minimum(np.searchsorted(limits, x, side="right"), limits.size - 1)
        np.testing.assert_array_equal(out, expected)


_RANGES = [
    (0.0, 1.0, 10),
    (-3.7, 12.1, 64),
    (0.1, 0.7, 3),
    (-1e-300, 1e-300, 1000),
    (1e15, 1e15 + 7, 7),
    (5.0, 5.0, 4),  # a single value: widened to [4.5, 5.5]
    (1e17, 1e17, 3),  # so large that the widening rounds away
    (-_ladder.DBL_MAX, _ladder.DBL_MAX, 10),  # the span overflows: half scale
    (-1e308, 1.7e308, 999),
    (0.0, 5e-324, 2),
    (-7.0, 9.0, 1),
    (1.0, 1.0 + 2**-52, 100),  # a step far below the values' spacing
]


@pytest.mark.parametrize("lo,hi,bins", _RANGES)
def test_even_edges_and_buckets_match_numpy(native, lo, hi, bins):
    edges = np.empty(bins + 1, dtype=np.float64)
    native.even_edges(lo, hi, bins, edges)
    reference_edges = nb.even_edges(lo, hi, bins)
    np.testing.assert_array_equal(edges, reference_edges)
    rng = np.random.default_rng(2)
    x = np.concatenate(
        [
            _around(reference_edges, 2),
            lo + (hi / 2 - lo / 2) * 2 * rng.random(2000),
            [lo, hi],
        ]
    )
    x = x[(x >= lo) & (x <= hi)]  # a kernel only sees values within [min, max]
    out = np.empty(x.size, dtype=np.int32)
    native.even_buckets(x, x.size, lo, hi, bins, out)
    np.testing.assert_array_equal(out, numpy_reduce.even_bucket_index(x, reference_edges))


def test_half_and_bfloat16_decode_every_bit_pattern(native):
    bits = np.arange(1 << 16, dtype=np.uint16)
    out = np.empty(bits.size, dtype=np.float64)
    native.half_to_double(bits, bits.size, out)
    np.testing.assert_array_equal(out, bits.view(np.float16).astype(np.float64))
    native.bfloat16_to_double(bits, bits.size, out)
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        expected = (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    np.testing.assert_array_equal(out, expected)


def test_float32_widens_exactly_subnormals_included(native):
    # The device computes this in integers and float64 (no float32 instruction, which
    # CuPy's -ftz=true would flush): every subnormal, zero, infinity and NaN as NumPy widens it.
    rng = np.random.default_rng(11)
    subnormal = np.arange(0, 1 << 23, 7, dtype=np.uint32)
    edges = np.array([0, 1, 0x7FFFFF, 0x800000, 0x7F7FFFFF, 0x7F800000, 0x7FC00000, 0x7F800001],
                     dtype=np.uint32)  # fmt: skip
    bits = np.concatenate([subnormal, edges, rng.integers(0, 1 << 32, 200_000, dtype=np.uint32)])
    bits = np.concatenate([bits, bits | np.uint32(0x80000000)])
    out = np.empty(bits.size, dtype=np.float64)
    native.float_to_double(bits, bits.size, out)
    with np.errstate(invalid="ignore"):
        expected = bits.view(np.float32).astype(np.float64)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(np.signbit(out), np.signbit(expected))  # -0.0 stays -0.0


def test_64_bit_integers_round_like_numpy(native):
    rng = np.random.default_rng(3)
    signed = np.concatenate(
        [rng.integers(-(2**63), 2**63 - 1, 10_000, dtype=np.int64), [2**53 + 1, -(2**63)]]
    ).astype(np.int64)
    out = np.empty(signed.size, dtype=np.float64)
    native.int64_to_double(signed, signed.size, out)
    np.testing.assert_array_equal(out, signed.astype(np.float64))
    unsigned = rng.integers(0, 2**64 - 1, 10_000, dtype=np.uint64, endpoint=True)
    out = np.empty(unsigned.size, dtype=np.float64)
    native.uint64_to_double(unsigned, unsigned.size, out)
    np.testing.assert_array_equal(out, unsigned.astype(np.float64))


def test_unit_to_u8_matches_image_to_uint8(native):
    steps = np.arange(256) / 255.0
    x = np.concatenate(
        [
            _around(steps, 2),
            _around((np.arange(256) + 0.5) / 255.0, 2),  # the rounding boundaries
            [np.nan, -np.inf, np.inf, -1.0, 2.0, -0.0],
        ]
    )
    out = np.empty(x.size, dtype=np.uint8)
    native.unit_to_u8(x, x.size, out)
    np.testing.assert_array_equal(out, nb.image_to_uint8(x))


def test_unit_to_u8_truncated_is_torchs_float32_scaling(native):
    """torch's writer: ``(x.astype(float32) * 255).clip(0, 255).astype(uint8)``. The kernel
    rounds to float32 in integers; near every k/255 (where the float32 product rounds up onto
    k), in float32's and float64's neighbours, past float32's range and at its tiny end, it
    agrees with NumPy's own float32 arithmetic."""
    k = np.arange(257, dtype=np.float64)
    f32_steps = (np.arange(257, dtype=np.float32) / np.float32(255)).astype(np.float64)
    f32_near = np.concatenate([
        np.nextafter(f32_steps.astype(np.float32), np.float32(sign * 2)).astype(np.float64)
        for sign in (1, -1)
    ])  # fmt: skip
    rng = np.random.default_rng(7)
    x = np.concatenate([
        _around(k / 255.0, 4), _around((k + 0.5) / 255.0, 2), f32_steps, f32_near,
        _around(np.array([3.4028234663852886e38, 1.1754943508222875e-38, 1e-45]), 2),
        rng.random(100_000) * 1.4 - 0.2, rng.random(1000).astype(np.float32),
        [np.nan, -np.nan, -np.inf, np.inf, -1.0, 2.0, -0.0, 1e300, -1e300, 5e-324],
    ])  # fmt: skip
    out = np.empty(x.size, dtype=np.uint8)
    native.unit_to_u8_truncated(x, x.size, out)
    with np.errstate(over="ignore", invalid="ignore"):
        torch_way = (x.astype(np.float32) * np.float32(255)).clip(0, 255)
    torch_way = np.where(np.isnan(torch_way), 0, torch_way).astype(np.uint8)
    np.testing.assert_array_equal(out, torch_way)
    np.testing.assert_array_equal(out, nb.image_to_uint8(x, truncate=True))
    with np.errstate(over="ignore"):
        single = x.astype(np.float32)
    np.testing.assert_array_equal(
        nb.image_to_uint8(single, truncate=True),
        nb.image_to_uint8(single.astype(np.float64), truncate=True),
    )
    naive = np.trunc(np.nan_to_num(x).clip(0, 1) * 255).astype(np.uint8)  # in float64
    assert (naive != out).sum() > 100  # the float32 rounding is what this holds


def _views():
    base = np.arange(4 * 5 * 6 * 7, dtype=np.float32).reshape(4, 5, 6, 7)
    yield base
    yield base.transpose(3, 1, 0, 2)
    yield np.asfortranarray(base)
    yield base[:, 1:4, ::2, 3:]
    yield base[::-1, :, ::-2]
    yield base[2, 3, 4, 5]
    yield base[:0]
    yield base[:, :1, :, :1]
    yield base.reshape(-1)[::3]
    yield np.broadcast_to(base[:1], (3, 5, 6, 7))
    big = np.arange(2**9, dtype=np.int8).reshape((2,) * 9)
    yield big[:, ::-1, :, :, :, :, :, :, ::1][..., 0]


@pytest.mark.parametrize("view", list(_views()), ids=lambda v: f"{v.shape}:{v.strides}")
def test_collapsed_layouts_address_every_element_once(native, view):
    itemsize = view.dtype.itemsize
    strides = tuple(s // itemsize for s in view.strides)
    collapsed = kernel_layout.collapse(view.shape, strides)
    if collapsed is None:  # too many dimensions: the backend copies first
        assert view.ndim > kernel_layout.MAX_DIMS
        return
    offset, shape, layout_strides = collapsed
    assert len(shape) <= kernel_layout.MAX_DIMS and min(layout_strides) >= 0
    n = int(np.prod(shape))
    assert n == view.size
    out = np.empty(n, dtype=np.int64)
    native.element_offsets(
        n, len(shape), np.array(shape, np.int64), np.array(layout_strides, np.int64), out
    )
    # Offsets relative to the view's first element, against NumPy's own addressing (a
    # broadcast dimension, stride 0, visits the same element once per index, as NumPy does).
    index = np.indices(view.shape).reshape(view.ndim, -1) if view.ndim else np.zeros((0, 1), int)
    expected = (np.array(view.strides)[:, None] * index).sum(axis=0) // itemsize
    np.testing.assert_array_equal(np.sort(out + offset), np.sort(expected))


def _thumbnail(
    native, images: np.ndarray, out_h: int, out_w: int, truncate: bool = False
) -> np.ndarray:
    function = {
        np.dtype(np.uint8): native.thumbnails_u8,
        np.dtype(np.float64): native.thumbnails_f64,
        np.dtype(np.bool_): native.thumbnails_bool,
    }[images.dtype]
    n, h, w, c = images.shape
    out = np.empty((n, out_h, out_w, c), dtype=np.uint8)
    strides = [s // images.dtype.itemsize for s in images.strides]
    function(images.ctypes.data, n, h, w, c, *strides, out_h, out_w, out, int(truncate))
    return out


@pytest.mark.parametrize(
    "shape,max_size",
    [((2, 37, 53, 3), 16), ((1, 9, 9, 1), 9), ((1, 8, 640, 4), 100), ((3, 31, 7, 3), 5)],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float64, np.bool_])
def test_thumbnail_sample_matches_numpy_thumbnails(native, shape, max_size, dtype):
    rng = np.random.default_rng(4)
    if dtype == np.uint8:
        images = rng.integers(0, 256, shape, dtype=np.uint8)
    elif dtype == np.bool_:
        images = rng.random(shape) < 0.5
    else:
        images = rng.random(shape) * 1.2 - 0.1
        images.flat[::17] = np.nan
    out_h, out_w = nb.thumbnail_size(shape[1], shape[2], max_size)
    expected = nb.thumbnails(images, max_size).result()
    np.testing.assert_array_equal(_thumbnail(native, images, out_h, out_w), expected)
    # Strided sources (NCHW read in place, a horizontally flipped batch) give the same pixels.
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2)).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(_thumbnail(native, nchw, out_h, out_w), expected)
    flipped = images[:, :, ::-1]
    np.testing.assert_array_equal(
        _thumbnail(native, flipped, out_h, out_w), nb.thumbnails(flipped, max_size).result()
    )
    truncated = nb.thumbnails(images, max_size, truncate=True).result()  # torch's scaling
    np.testing.assert_array_equal(_thumbnail(native, images, out_h, out_w, True), truncated)


def _order_keys(native, kind, values):
    values = np.ascontiguousarray(values)
    out = np.empty(values.size, dtype=np.uint64)
    getattr(native, f"order_keys_{kind}")(values, values.size, out)
    return out


def _bfloat16_values(bits):
    with np.errstate(invalid="ignore"):  # signalling NaN patterns
        return (bits.astype(np.uint32) << 16).view(np.float32).astype(np.float64)


@pytest.mark.parametrize(
    ("kind", "dtype_name"),
    [("f32", "float32"), ("f64", "float64"), ("i8", "int8"), ("i32", "int32"),
     ("i64", "int64"), ("u32", "uint32"), ("u64", "uint64"), ("half", "float16"),
     ("bfloat16", "bfloat16")],
)  # fmt: skip
def test_order_keys_sort_as_the_values_and_decode_back(native, kind, dtype_name):
    """gs::order_key orders finite values as numbers (so radix selection picks the right order
    statistic) and anomaly_abi.order_key_values turns a key back into the value, exactly."""
    rng = np.random.default_rng(21)
    if kind in ("half", "bfloat16"):
        bits = np.arange(1 << 16, dtype=np.uint16)  # every pattern
        if kind == "half":
            values = bits.view(np.float16).astype(np.float64)
        else:
            values = _bfloat16_values(bits)
        keep = np.isfinite(values)
        bits, values = bits[keep], values[keep]
        keys = _order_keys(native, kind, bits)
    elif kind in ("f32", "f64"):
        dtype = np.float32 if kind == "f32" else np.float64
        width = np.uint32 if kind == "f32" else np.uint64
        raw = rng.integers(0, np.iinfo(width).max, 200_000, dtype=width, endpoint=True)
        values = raw.view(dtype)
        special = [0.0, -0.0, np.finfo(dtype).max, -np.finfo(dtype).max, np.finfo(dtype).tiny]
        values = np.concatenate([values[np.isfinite(values)], np.array(special, dtype)])
        keys = _order_keys(native, kind, values)
        values = values.astype(np.float64)
    else:
        dtype = _ORDER_KEY_TYPES[kind]
        info = np.iinfo(dtype)
        values = rng.integers(info.min, info.max, 100_000, dtype=dtype, endpoint=True)
        values = np.concatenate([values, np.array([info.min, info.max, 0], dtype)])
        keys = _order_keys(native, kind, values)
        exact = values.astype(object)  # compare int64 beyond 2**53 exactly
        order = np.argsort(keys, kind="stable")
        ordered = exact[order]
        assert all(a <= b for a, b in itertools.pairwise(ordered))
        decoded = anomaly_abi.order_key_values(keys, dtype_name)
        np.testing.assert_array_equal(decoded, values.astype(np.float64))
        assert keys.max() < (1 << anomaly_abi.order_key_bits(dtype_name))
        return
    order = np.argsort(keys, kind="stable")
    assert np.all(np.diff(values[order]) >= 0)
    decoded = anomaly_abi.order_key_values(keys, dtype_name)
    np.testing.assert_array_equal(decoded, values)
    assert int(keys.max()) < (1 << anomaly_abi.order_key_bits(dtype_name))


@pytest.mark.parametrize(
    "make",
    [
        lambda x: x,
        lambda x: x[:, ::3],
        lambda x: x.T,
        lambda x: x[::-2, 1:],
        lambda x: x.reshape(4, 5, 6, 8)[:, ::-1, :, ::2],
        lambda x: x[3:4, 7:8],
        lambda x: x[:, None, 5:9],
    ],
)
def test_c_order_view_addresses_every_element_in_c_order(native, make):
    base = np.arange(120 * 8, dtype=np.int64).reshape(120, 8)
    view = make(base)
    pointer, shape, strides = kernel_layout.c_order_view(
        view.ctypes.data, view.shape, view.strides, view.itemsize
    )
    offsets = np.empty(view.size, dtype=np.int64)
    native.element_offsets(
        view.size, len(shape), np.array(shape, np.int64), np.array(strides, np.int64), offsets
    )
    start = (pointer - base.ctypes.data) // 8
    np.testing.assert_array_equal(base.reshape(-1)[start + offsets], view.reshape(-1))
