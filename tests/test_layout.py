"""gpu_summary._backend.cuda_kernels.layout: strided tensors collapsed to the fewest dimensions a
kernel indexes, checked against NumPy's own view of the same memory."""

from __future__ import annotations

import numpy as np
import pytest

from gpu_summary._backend.cuda_kernels import layout


def _addresses(offset, shape, strides):
    """Every element offset a layout visits, sorted."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, strides, strict=True)])
    return np.sort(offset + sum(g.ravel() for g in grids))


VIEWS = {
    "contiguous": lambda a: a,
    "transposed": lambda a: a.T,
    "permuted": lambda a: a.transpose(1, 2, 0),
    "reversed": lambda a: a[::-1, :, ::-1],
    "sliced": lambda a: a[1:3, ::2],
    "broadcast": lambda a: np.broadcast_to(a[:1, :1, :1], (3, 4, 5)),
    "unit dims": lambda a: a[:, None, :, None],
}


@pytest.mark.parametrize("name", VIEWS)
def test_collapse_covers_exactly_the_same_elements(name):
    base = np.arange(3 * 4 * 5, dtype=np.int64).reshape(3, 4, 5)
    view = VIEWS[name](base)
    element_strides = tuple(s // view.itemsize for s in view.strides)
    offset, shape, strides = layout.collapse(view.shape, element_strides)
    assert all(s >= 0 for s in strides) and offset <= 0
    assert strides == sorted(strides, reverse=True)
    start = (view.__array_interface__["data"][0] - base.ctypes.data) // view.itemsize
    expected = np.sort(base.ravel()[start + _addresses(0, view.shape, element_strides)])
    got = np.sort(base.ravel()[start + _addresses(offset, shape, strides)])
    np.testing.assert_array_equal(got, expected)


def test_contiguous_and_transposed_tensors_are_one_run():
    assert layout.collapse((3, 4, 5), (20, 5, 1)) == (0, [60], [1])
    assert layout.collapse((5, 4, 3), (1, 5, 20)) == (0, [60], [1])
    assert layout.collapse((0, 4), (4, 1)) == (0, [0], [1])
    assert layout.collapse((1, 1), (9, 9)) == (0, [1], [1])


def test_too_many_dimensions_ask_for_a_copy():
    shape = (2,) * (layout.MAX_DIMS + 1)
    strides = tuple(3**k for k in range(layout.MAX_DIMS, -1, -1))  # nothing merges
    assert layout.collapse(shape, strides) is None
    assert layout.kernel_view(0, shape, tuple(8 * s for s in strides), 8) is None
    assert layout.kernel_view(0, (4,), (6,), 4) is None  # not whole elements


def test_c_order_view_keeps_the_flat_index():
    base = np.arange(24.0).reshape(2, 3, 4)
    view = base[:, ::-1, 1:3]
    pointer, shape, strides = layout.c_order_view(
        view.__array_interface__["data"][0], view.shape, view.strides, view.itemsize
    )
    start = (pointer - base.ctypes.data) // base.itemsize
    flat = [
        base.ravel()[start + sum(i * s for i, s in zip(index, strides, strict=True))]
        for index in np.ndindex(*shape)
    ]
    np.testing.assert_array_equal(flat, view.ravel())


def test_layout_args_pad_to_the_kernel_dimensions():
    args = layout.layout_args(4096, 60, [3, 20], [20, 1])
    assert len(args) == 3 + (layout.MAX_DIMS - 1) + layout.MAX_DIMS
    assert [int(a) for a in args[:3]] == [4096, 60, 2]
    assert [int(a) for a in args[3:8]] == [20, 1, 1, 1, 1]  # shape[1:], padded with 1
    assert [int(a) for a in args[8:]] == [20, 1, 0, 0, 0, 0]  # strides, padded with 0
    assert [a.dtype for a in args[:3]] == [np.uint64, np.int64, np.int32]
