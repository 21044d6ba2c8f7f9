"""Tensors: a whole array as a ``TensorProto`` (``add_tensor``), and the typed fields each
dtype is stored in.

Each dtype goes to the field TensorFlow's own ``make_tensor_proto`` fills, so that
``tensorboard.util.tensor_util.make_ndarray`` (what ``EventAccumulator.Tensors`` users and
tbparse call) gives the array back exactly: float16 and bfloat16 as their 16-bit patterns in
``half_val``, float32 ``float_val``, float64 ``double_val``, the 8/16/32-bit integers
``int_val``, int64 ``int64_val``, uint32 ``uint32_val``, uint64 ``uint64_val``, bool
``bool_val``, complex64 ``scomplex_val`` and complex128 ``dcomplex_val`` (real, imaginary);
beyond ``TYPED_FIELD_MOST`` elements, raw bytes in ``tensor_content``.
"""

from __future__ import annotations

import numpy as np

from gpu_summary.proto import summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "tensor"

# NumPy dtype name -> (DataType, the TensorProto field holding the values)
FIELDS = {
    "float16": (types_pb2.DT_HALF, "half_val"),
    "bfloat16": (types_pb2.DT_BFLOAT16, "half_val"),
    "float32": (types_pb2.DT_FLOAT, "float_val"),
    "float64": (types_pb2.DT_DOUBLE, "double_val"),
    "int8": (types_pb2.DT_INT8, "int_val"),
    "int16": (types_pb2.DT_INT16, "int_val"),
    "int32": (types_pb2.DT_INT32, "int_val"),
    "uint8": (types_pb2.DT_UINT8, "int_val"),
    "uint16": (types_pb2.DT_UINT16, "int_val"),
    "int64": (types_pb2.DT_INT64, "int64_val"),
    "uint32": (types_pb2.DT_UINT32, "uint32_val"),
    "uint64": (types_pb2.DT_UINT64, "uint64_val"),
    "bool": (types_pb2.DT_BOOL, "bool_val"),
    "complex64": (types_pb2.DT_COMPLEX64, "scomplex_val"),
    "complex128": (types_pb2.DT_COMPLEX128, "dcomplex_val"),
}
# Tensors of more elements go as raw little-endian bytes in ``tensor_content`` (as TensorFlow
# stores large arrays; every reader takes either form): filling a typed field goes through a
# Python list, about 30 ns an element.
TYPED_FIELD_MOST = 1 << 16


def tensor_proto(values: np.ndarray, dtype: str) -> tensor_pb2.TensorProto:
    """The TensorProto of ``values`` (any shape) of dtype name ``dtype`` (a key of FIELDS);
    float16 and bfloat16 arrive as their bit patterns (uint16)."""
    data_type, field = FIELDS[dtype]
    proto = tensor_pb2.TensorProto(dtype=data_type)
    for size in values.shape:
        proto.tensor_shape.dim.add(size=size)
    if values.size > TYPED_FIELD_MOST:
        proto.tensor_content = np.ascontiguousarray(
            values, values.dtype.newbyteorder("<")
        ).tobytes()
        return proto
    flat = values.reshape(-1)
    if values.dtype.kind == "c":
        flat = flat.view(np.float32 if values.dtype == np.complex64 else np.float64)
    getattr(proto, field).extend(flat.tolist())
    return proto


def tensor_summary(tag: str, values: np.ndarray, dtype: str) -> summary_pb2.Summary:
    """A Summary holding one whole tensor (plugin ``tensor``, as torch's ``add_tensor``)."""
    value = summary_pb2.Summary.Value(tag=tag)
    value.metadata.plugin_data.plugin_name = PLUGIN_NAME
    value.tensor.CopyFrom(tensor_proto(values, dtype))
    return summary_pb2.Summary(value=[value])
