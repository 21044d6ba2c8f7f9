"""Strided tensors reduced to the fewest dimensions a kernel must index.

A reduction visits every element once in any order, so a tensor's dimensions may be reordered,
mirrored and merged freely: a transposed or Fortran-order tensor is one flat run of memory, and
a slice of a matrix is two dimensions at most. The kernel (``gs::Layout`` in
``kernels/gs_common.cuh``) then addresses element i through as few divisions as possible.
"""

from __future__ import annotations

import numpy as np

# Dimensions a kernel indexes (gs::MAX_DIMS).
MAX_DIMS = 6


def collapse(
    shape: tuple[int, ...], strides: tuple[int, ...]
) -> tuple[int, list[int], list[int]] | None:
    """Merge a tensor's dimensions for a reduction.

    Args:
        shape: the tensor's shape.
        strides: its strides in elements (any sign).

    Returns:
        ``(offset, shape, strides)``: the element offset of the lowest address from the
        tensor's first element (<= 0), and a layout whose strides are >= 0 (0 for a broadcast
        dimension), largest first,
        covering the same elements; at least one dimension. None when more than ``MAX_DIMS``
        dimensions remain (the caller copies the tensor to contiguous memory first).
    """
    if any(size == 0 for size in shape):
        return 0, [0], [1]
    offset = 0
    dims = []
    for size, stride in zip(shape, strides, strict=True):
        if size == 1:
            continue
        if stride < 0:  # walk it the other way, from its lowest address
            offset += (size - 1) * stride
            stride = -stride
        dims.append((stride, size))
    dims.sort(reverse=True)
    merged: list[list[int]] = []
    for stride, size in dims:
        if merged and merged[-1][0] == stride * size:  # the outer dim steps over this one whole
            merged[-1] = [stride, merged[-1][1] * size]
        else:
            merged.append([stride, size])
    if not merged:
        return offset, [1], [1]
    if len(merged) > MAX_DIMS:
        return None
    return offset, [size for _, size in merged], [stride for stride, _ in merged]


def kernel_view(
    pointer: int, shape: tuple[int, ...], byte_strides: tuple[int, ...], itemsize: int
) -> tuple[int, list[int], list[int]] | None:
    """What gs_reduce is given for a tensor at device address ``pointer``.

    Returns:
        ``(address of the lowest element, shape, element strides)`` after :func:`collapse`, or
        None when the tensor must first be copied to contiguous memory (strides that are not
        whole elements, or too many dimensions).
    """
    if any(s % itemsize for s in byte_strides):
        return None
    collapsed = collapse(shape, tuple(s // itemsize for s in byte_strides))
    if collapsed is None:
        return None
    offset, dims, strides = collapsed
    return pointer + offset * itemsize, dims, strides


def c_order_view(
    pointer: int, shape: tuple[int, ...], byte_strides: tuple[int, ...], itemsize: int
) -> tuple[int, list[int], list[int]] | None:
    """What a kernel that must visit elements in the tensor's C order is given.

    Dimensions of size 1 are dropped and neighbours merged only where the outer one steps over
    the inner one whole (so flat index i is still the tensor's i-th element in C order); strides
    keep their signs, from the address of the first element.

    Returns:
        ``(address of element [0, ..., 0], shape, element strides)``, or None when the tensor
        must first be copied to contiguous memory.
    """
    if any(s % itemsize for s in byte_strides):
        return None
    if any(size == 0 for size in shape):
        return pointer, [0], [1]
    merged: list[list[int]] = []
    for size, stride in zip(shape, byte_strides, strict=True):
        if size == 1:
            continue
        stride //= itemsize
        if merged and merged[-1][1] == stride * size:
            merged[-1] = [merged[-1][0] * size, stride]
        else:
            merged.append([size, stride])
    if not merged:
        return pointer, [1], [1]
    if len(merged) > MAX_DIMS:
        return None
    return pointer, [size for size, _ in merged], [stride for _, stride in merged]


def layout_args(data: int, n: int, shape: list[int], strides: list[int]) -> tuple:
    """The layout parameters every strided kernel takes (GS_LAYOUT_PARAMS): the address of the
    lowest element, the element count and a collapsed layout (:func:`collapse`)."""
    dims = len(shape)
    padded_shape = [*shape, *[1] * (MAX_DIMS - dims)]
    padded_strides = [*strides, *[0] * (MAX_DIMS - dims)]
    return (
        np.uint64(data),
        np.int64(n),
        np.int32(dims),
        *map(np.int64, padded_shape[1:]),
        *map(np.int64, padded_strides),
    )
