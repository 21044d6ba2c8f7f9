"""Serialized Events assembled from protobuf's own pieces, for the records the writer makes
most, and largest: scalars, histograms and images. Each function returns the very bytes protobuf's
``SerializeToString()`` would (``tests/test_wire.py`` compares them).

Protobuf writes fields in field-number order, so::

    Event(wall_time, step, summary=Summary(value=[Value(tag, simple_value)]))

serialises as ``Event(wall_time, step)`` (fields 1-2) followed by ``Event(summary=...)``
(field 5); and in the latter, ``simple_value`` is the last 4 bytes (a little-endian float32, its
length fixed), with nothing before it depending on the value. So one template per tag, made by
protobuf, plus the 4 value bytes, gives a scalar's Event without building four nested messages
per call. An image's Event is framed around its PNGs (length-delimited fields: a tag byte, a
varint length, the bytes), which are referenced, never copied. A histogram's bucket limits and
counts are packed doubles: the arrays' own little-endian bytes.
"""

from __future__ import annotations

import math
import struct

import numpy as np

from gpu_summary._events.jobs import RecordParts
from gpu_summary.proto import event_pb2, summary_pb2

_FLOAT32 = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_POSITIVE_ZERO = _DOUBLE.pack(0.0)
# HistogramProto's double fields min, max, num, sum, sum_squares (numbers 1-5, 64-bit wire type)
_HISTOGRAM_KEYS = (b"\x09", b"\x11", b"\x19", b"\x21", b"\x29")
_templates: dict[str, bytes] = {}


def _template(tag: str) -> bytes:
    """Serialized ``Event(summary=Summary(value=[Value(tag, simple_value=0)]))`` minus the last
    4 bytes (the value)."""
    template = _templates.get(tag)
    if template is None:
        value = summary_pb2.Summary.Value(tag=tag, simple_value=0.0)
        whole = event_pb2.Event(summary=summary_pb2.Summary(value=[value])).SerializeToString()
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


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def image_event_parts(
    tags: list[str],
    pngs: list[bytes],
    height: int,
    width: int,
    channels: int,
    step: int,
    wall_time: float,
) -> RecordParts:
    """``Event(wall_time, step, summary=Summary(value=[Value(tag, image=Image(height, width,
    colorspace, encoded_image_string=png)), ...]))`` serialized as protobuf would (fields in
    number order; tests compare the bytes), as parts: the PNGs are referenced, never copied."""
    head = event_pb2.Event(wall_time=wall_time, step=step).SerializeToString()
    image_head = summary_pb2.Summary.Image(
        height=height, width=width, colorspace=channels
    ).SerializeToString()
    values: list[list[bytes]] = []
    for tag, png in zip(tags, pngs, strict=True):
        name = tag.encode("utf-8")
        image = [image_head, b"\x22" + _varint(len(png)), png]  # encoded_image_string = 4
        image_size = sum(map(len, image))
        value = [b"\x0a" + _varint(len(name)) + name + b"\x22" + _varint(image_size), *image]
        values.append([b"\x0a" + _varint(sum(map(len, value))), *value])  # Summary.value = 1
    summary_size = sum(len(part) for value in values for part in value)
    parts = RecordParts([head + b"\x2a" + _varint(summary_size)])  # Event.summary = 5
    for value in values:
        parts.extend(value)
    return parts


def histogram_proto_bytes(
    stats: tuple[float, float, float, float, float], limits: np.ndarray, counts: np.ndarray
) -> bytes:
    """Serialized ``HistogramProto(min, max, num, sum, sum_squares, bucket_limit=limits,
    bucket=counts)`` (``stats`` in that order), as protobuf writes it: proto3 leaves out a
    double field that is +0.0; the repeated fields are packed, the float64 values' own bytes."""
    out = bytearray()
    for key, value in zip(_HISTOGRAM_KEYS, stats, strict=True):
        number = _DOUBLE.pack(value)
        if number != _POSITIVE_ZERO:
            out += key
            out += number
    for key, values in ((b"\x32", limits), (b"\x3a", counts)):  # bucket_limit = 6, bucket = 7
        data = np.ascontiguousarray(values, dtype="<f8").tobytes()
        if data:
            out += _field(key, data)
    return bytes(out)


def _field(key: bytes, data: bytes) -> bytes:
    """A length-delimited field: its key byte, the varint length, the bytes."""
    return key + _varint(len(data)) + data


def histogram_value_bytes(tag: str, histogram: bytes) -> bytes:
    """Serialized ``Summary(value=[Value(tag, histo=...)])`` around a serialized HistogramProto.
    Summaries concatenated are one Summary of all their values (``value`` is its only field)."""
    value = _field(b"\x0a", tag.encode("utf-8")) + _field(b"\x2a", histogram)  # tag 1, histo 5
    return _field(b"\x0a", value)


def summary_event(summary: bytes, step: int, wall_time: float) -> bytes:
    """Serialized ``Event(wall_time, step, summary=...)`` around a serialized Summary."""
    head = event_pb2.Event(wall_time=wall_time, step=step).SerializeToString()
    return head + _field(b"\x2a", summary)  # Event.summary = 5
