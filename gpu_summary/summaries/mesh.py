"""Meshes and point clouds: the ``mesh`` plugin's tensors, one value per component.

Each component (vertices, faces, colors) is a [batch, points or faces, 3] tensor under the tag
``<tag>_VERTEX``, ``<tag>_FACE`` or ``<tag>_COLOR``, with ``MeshPluginData`` naming the mesh
(``name`` = the tag), its component, the bitmask of the components logged together, the shape
and the scene's JSON configuration. Vertices are float32, faces int32, colors uint8 — the types
TensorBoard's mesh plugin serves them as — stored as raw little-endian ``tensor_content``.
"""

from __future__ import annotations

import numpy as np

from gpu_summary.proto import plugin_data_pb2, summary_pb2, tensor_pb2, types_pb2

PLUGIN_NAME = "mesh"
Mesh = plugin_data_pb2.MeshPluginData
# component name -> (content type, stored dtype, DataType)
COMPONENTS = {
    "vertices": (Mesh.VERTEX, np.dtype("<f4"), types_pb2.DT_FLOAT),
    "faces": (Mesh.FACE, np.dtype("<i4"), types_pb2.DT_INT32),
    "colors": (Mesh.COLOR, np.dtype("<u1"), types_pb2.DT_UINT8),
}


def mesh_summary(tag: str, parts: dict[str, np.ndarray], json_config: str) -> summary_pb2.Summary:
    """A Summary of a mesh from its components (``vertices`` and optionally ``faces`` and
    ``colors``, each a [B, N, 3] array already of its stored dtype)."""
    components = 0
    for name in parts:
        components |= 1 << COMPONENTS[name][0]
    summary = summary_pb2.Summary()
    for name, array in parts.items():
        content_type, dtype, data_type = COMPONENTS[name]
        value = summary.value.add(tag=f"{tag}_{Mesh.ContentType.Name(content_type)}")
        content = Mesh(version=0, name=tag, content_type=content_type, components=components,
                       shape=list(array.shape), json_config=json_config)  # fmt: skip
        value.metadata.plugin_data.plugin_name = PLUGIN_NAME
        value.metadata.plugin_data.content = content.SerializeToString()
        tensor = tensor_pb2.TensorProto(dtype=data_type)
        for size in array.shape:
            tensor.tensor_shape.dim.add(size=size)
        tensor.tensor_content = np.ascontiguousarray(array, dtype=dtype).tobytes()
        value.tensor.CopyFrom(tensor)
    return summary
