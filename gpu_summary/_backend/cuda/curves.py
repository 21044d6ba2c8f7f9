"""The device backend's precision-recall counts (``kernels/gs_pr_curve.cu``): one launch over
the predictions, their labels and weights, 2 × thresholds doubles and three counts copied back.
The NumPy backend's ``pr_counts`` is the specification (``gpu_summary._backend.numpy.curves``)."""

from __future__ import annotations

import cupy
import numpy as np

from gpu_summary._backend.cuda import runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import pr_curve as pr_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core.results import Pending, PrCounts


def _contiguous(values: DeviceArray) -> cupy.ndarray:
    array = values.array
    return array if array.flags.c_contiguous else cupy.ascontiguousarray(array)


def pr_counts(
    predictions: DeviceArray,
    labels: DeviceArray,
    weights: DeviceArray | None,
    thresholds: int,
    prediction_dtype: str | None = None,
) -> Pending[PrCounts]:
    """The NumPy backend's ``pr_counts`` for device tensors on one device, launched on the
    predictions' stream (after the labels' and weights' streams' work); no sync."""
    device = predictions.device_id
    for other, name in ((labels, "labels"), (weights, "weights")):
        if other is not None and other.device_id != device:
            raise TypeError(f"{name} is on device {other.device_id} but predictions on "
                            f"{device}; put them on one device")  # fmt: skip
    dtype = predictions.dtype_name
    stream = predictions.stream
    with cupy.cuda.Device(device), stream:
        for other in (labels, weights):
            if other is not None:
                runtime.order_after(other.stream, stream)
        p = _contiguous(predictions)
        label_array = _contiguous(labels)
        weight_array = None if weights is None else _contiguous(weights)
        out = cupy.cuda.alloc(pr_abi.buffer_bytes(thresholds))
        cupy.cuda.runtime.memsetAsync(out.ptr, 0, pr_abi.buffer_bytes(thresholds), stream.ptr)
        kernel = runtime.kernel(device, kernel_sources.PR_CURVE_FILE, pr_abi.pr_expression(dtype),
                                dtype)  # fmt: skip
        shared = pr_abi.shared_bytes(thresholds)
        n = int(predictions.size)
        grid = runtime.grid_for(device, n, kernel, shared)
        args = pr_abi.pr_args(
            p.data.ptr,
            label_array.data.ptr,
            labels.dtype_name,
            0 if weight_array is None else weight_array.data.ptr,
            None if weights is None else weights.dtype_name,
            n,
            thresholds,
            prediction_dtype or dtype,
            out.ptr,
        )
        kernel((grid,), (kernel_sources.THREADS,), args, shared_mem=shared)
        host, event = runtime.launch_copy(out, pr_abi.buffer_bytes(thresholds), stream)

        integers = pr_abi.integer_sums(labels.dtype_name,
                                       None if weights is None else weights.dtype_name)  # fmt: skip

        def parse(raw: np.ndarray) -> PrCounts:
            tp, fp, (nan, below, above) = pr_abi.parse(raw, thresholds, integers)
            return PrCounts(tp=tp, fp=fp, nan=nan, below=below, above=above, pairs=n)

        keep = (out, p, label_array, weight_array, predictions.owner, labels.owner,
                None if weights is None else weights.owner)  # fmt: skip
        return runtime.DevicePending(event, host, parse, keep)
