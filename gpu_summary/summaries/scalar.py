"""Scalars: ``Summary.Value.simple_value`` (float32), which both TensorBoard loaders read.

Scalars are logged far more often than anything else, so their Event bytes are assembled from
pieces that protobuf's generated code serialised, instead of building four nested messages per
call. Protobuf writes fields in field-number order, so::

    Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value)]))

serialises as ``Event(wall_time, step)`` (fields 1-2) followed by ``Event(summary=...)``
(field 5); and in the latter, ``simple_value`` is the last 4 bytes (a little-endian float32, its
length fixed), with nothing before it depending on the value. So one template per tag, made by
protobuf, plus the 4 value bytes, gives the very bytes protobuf would (tests compare them).
"""

from __future__ import annotations

import math
import struct

from gpu_summary.proto import event_pb2, summary_pb2

_FLOAT32 = struct.Struct("<f")
_templates: dict[str, bytes] = {}


def scalar_summary(tag: str, value: float) -> summary_pb2.Summary:
    """A Summary holding one scalar; NaN and ±Inf are kept (TensorBoard plots them)."""
    return summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)])


def _template(tag: str) -> bytes:
    """Serialized ``Event(summary=Summary(value=[Value(tag, simple_value=0)]))`` minus the last
    4 bytes (the value)."""
    template = _templates.get(tag)
    if template is None:
        whole = event_pb2.Event(summary=scalar_summary(tag, 0.0)).SerializeToString()
        template = _templates.setdefault(tag, whole[:-4])
    return template


def scalar_event(tag: str, value: float, step: int, wall_time: float) -> bytes:
    """Serialized Event holding one scalar, identical to what protobuf would produce."""
    return scalar_events([(tag, value, step, wall_time)])[0]


def scalar_events(calls: list[tuple[str, float, int, float]]) -> list[bytes]:
    """:func:`scalar_event` for each ``(tag, value, step, wall_time)``, in one loop (the
    writer thread hands over bursts of scalars this way)."""
    head = event_pb2.Event()
    events = []
    for tag, value, step, wall_time in calls:
        head.wall_time = wall_time
        head.step = step
        template = _templates.get(tag) or _template(tag)
        try:
            number = _FLOAT32.pack(value)
        except OverflowError:  # beyond float32: protobuf stores ±inf, so do we
            number = _FLOAT32.pack(math.copysign(math.inf, value))
        events.append(head.SerializeToString() + template + number)
    return events


scalar_event.many = scalar_events
