"""Text: the ``text`` plugin's DT_STRING tensor (rank 0 for one string, rank 1 for a list).

TensorBoard renders each string as Markdown; a rank-1 tensor shows as a one-column table.
"""

from __future__ import annotations

from gpu_summary.proto import summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "text"


def text_metadata() -> summary_pb2.SummaryMetadata:
    metadata = summary_pb2.SummaryMetadata(data_class=summary_pb2.DATA_CLASS_TENSOR)
    metadata.plugin_data.plugin_name = PLUGIN_NAME
    return metadata


def text_tensor(strings: list[str], scalar: bool) -> tensor_pb2.TensorProto:
    """UTF-8 DT_STRING tensor of ``strings``; shape [] when ``scalar`` (one string), else [n]."""
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING)
    if not scalar:
        tensor.tensor_shape.dim.add(size=len(strings))
    tensor.string_val.extend(s.encode("utf-8") for s in strings)
    return tensor


def text_summary(tag: str, strings: list[str], scalar: bool) -> summary_pb2.Summary:
    """A Summary holding text (see :func:`text_tensor`)."""
    value = summary_pb2.Summary.Value(tag=tag, metadata=text_metadata())
    value.tensor.CopyFrom(text_tensor(strings, scalar))
    return summary_pb2.Summary(value=[value])
