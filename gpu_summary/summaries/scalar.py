"""Scalars: ``Summary.Value.simple_value`` (float32), which both TensorBoard loaders read.

(The writer assembles scalar Events from bytes, for speed: ``gpu_summary._writer.jobs``.)
"""

from __future__ import annotations

from gpu_summary.proto import summary_pb2


def scalar_summary(tag: str, value: float) -> summary_pb2.Summary:
    """A Summary holding one scalar; NaN and ±Inf are kept (TensorBoard plots them)."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])
