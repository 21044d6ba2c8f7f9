"""Scalars: ``Summary.Value.simple_value`` (float32), which both TensorBoard loaders read.

(The writer assembles scalar Events from bytes, for speed: ``gpu_summary._events.wire``.)
"""

from __future__ import annotations

from gpu_summary.proto import summary_pb2, types_pb2

PLUGIN_NAME = "scalars"


def scalar_tensor_summary(
    tag: str, value: float, double_precision: bool = False
) -> summary_pb2.Summary:
    """A scalar as a rank-0 tensor of the scalars plugin (torch's ``new_style=True``): float32,
    or float64 with ``double_precision``."""
    summary = summary_pb2.Summary()
    entry = summary.value.add(tag=tag)
    entry.metadata.plugin_data.plugin_name = PLUGIN_NAME
    if double_precision:
        entry.tensor.dtype = types_pb2.DT_DOUBLE
        entry.tensor.double_val.append(value)
    else:
        entry.tensor.dtype = types_pb2.DT_FLOAT
        entry.tensor.float_val.append(value)
    return summary


def scalar_summary(tag: str, value: float) -> summary_pb2.Summary:
    """A Summary holding one scalar; NaN and ±Inf are kept (TensorBoard plots them)."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
