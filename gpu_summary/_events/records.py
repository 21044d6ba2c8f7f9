"""TFRecord framing of event files: the wire format, and a reader that survives damage.

A record on disk is, little-endian::

    u64 length | u32 masked_crc32c(the 8 length bytes) | data | u32 masked_crc32c(data)

with ``masked(c) = ((c >> 15) | (c << 17)) + 0xA282EAD8 (mod 2**32)`` and CRC-32C the
Castagnoli polynomial. TensorBoard reads exactly this; a record whose checksum fails is skipped
by its readers, so a writer must never leave a half-written record anywhere but at the very end
of a file, and should not leave one there either.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import struct
from collections.abc import Callable, Iterator
from typing import BinaryIO

import google_crc32c

_LENGTH = struct.Struct("<Q")
_CRC = struct.Struct("<I")
HEADER_SIZE = _LENGTH.size + _CRC.size
FOOTER_SIZE = _CRC.size
_MASK_DELTA = 0xA282EAD8
# The longest record a reader reads: protobuf parses no message of 2 GiB or more, so a longer
# one (a crafted or damaged file: its length checksum still holds) is reported and skipped,
# never read into memory.
MAX_RECORD = (1 << 31) - 1


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """CRC-32C of ``data``, rotated and offset as TFRecord framing requires."""
    return _mask(google_crc32c.value(data))


@functools.lru_cache(maxsize=4096)
def _header(length: int) -> bytes:
    """Length field and its checksum; cached, since most records repeat a few lengths."""
    header = _LENGTH.pack(length)
    return header + _CRC.pack(masked_crc32c(header))


def encode_record(
    data: bytes,
    _crc32c: Callable[[bytes], int] = google_crc32c.value,
    _pack: Callable[[int], bytes] = _CRC.pack,
) -> bytes:
    """Frame ``data`` as one record (header, payload and footer in one bytes object).

    The masking of :func:`masked_crc32c` is inlined: this runs once per record written.
    """
    crc = _crc32c(data)
    return (
        _header(len(data)) + data + _pack((((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF)
    )


def frame_parts(parts: list[bytes]) -> list[bytes]:
    """One record whose data is the concatenation of ``parts``, as pieces to write in order:
    the header, the parts themselves (not copied), the footer."""
    crc = 0
    for part in parts:
        crc = google_crc32c.extend(crc, part)
    return [_header(sum(len(part) for part in parts)), *parts, _CRC.pack(_mask(crc))]


@dataclasses.dataclass(frozen=True)
class RecordProblem:
    """A stretch of an event file that is not a whole, valid record.

    Attributes:
        offset: byte offset of the record's header in the file.
        reason: what is wrong (``"truncated header"``, ``"header checksum mismatch"``,
            ``"truncated data"``, ``"data checksum mismatch"``).
    """

    offset: int
    reason: str


def iter_records(source: bytes | BinaryIO) -> Iterator[tuple[int, bytes] | RecordProblem]:
    """Walk the records of an event file's contents.

    Yields ``(offset, data)`` for every record whose two checksums hold, and a
    :class:`RecordProblem` where they do not. A damaged length field makes the rest of the
    file unreadable (there is no resynchronisation marker in the format), so the walk stops
    after reporting it; a record whose data checksum fails is reported and skipped, since its
    length is known good.

    Args:
        source: the whole file's bytes, or a binary file open at its start. A file is read
            one record at a time, up to the size it had when the walk began (a file that
            shrinks meanwhile ends the walk with a truncation; one that grows is read up to
            where it was), so memory holds one record, never the file.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        file, end = io.BytesIO(source), len(source)
    else:
        file, end = source, os.fstat(source.fileno()).st_size
    offset = 0
    while offset < end:
        if end - offset < HEADER_SIZE:
            yield RecordProblem(offset, "truncated header")
            return
        header = file.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE:
            yield RecordProblem(offset, "truncated header")
            return
        (header_crc,) = _CRC.unpack_from(header, _LENGTH.size)
        if masked_crc32c(header[: _LENGTH.size]) != header_crc:
            yield RecordProblem(offset, "header checksum mismatch")
            return
        (length,) = _LENGTH.unpack_from(header)
        if offset + HEADER_SIZE + length + FOOTER_SIZE > end:
            yield RecordProblem(offset, "truncated data")
            return
        if length > MAX_RECORD:  # its length is good (checked), but no Event is that long:
            yield RecordProblem(offset, f"a record of {length:,} bytes, too long to be an Event")
            offset += HEADER_SIZE + length + FOOTER_SIZE
            file.seek(offset)  # skipped, never read
            continue
        body = file.read(length + FOOTER_SIZE)
        if len(body) < length + FOOTER_SIZE:
            yield RecordProblem(offset, "truncated data")
            return
        data = body[:length]
        (data_crc,) = _CRC.unpack_from(body, length)
        if masked_crc32c(data) != data_crc:
            yield RecordProblem(offset, "data checksum mismatch")
        else:
            yield offset, data
        offset += HEADER_SIZE + length + FOOTER_SIZE


def read_records(path: str) -> tuple[list[bytes], list[RecordProblem]]:
    """Read an event file: the data of every valid record, and every problem found.

    Args:
        path: the event file.

    Returns:
        ``(records, problems)``; ``problems`` is empty for an intact file.
    """
    records: list[bytes] = []
    problems: list[RecordProblem] = []
    with open(path, "rb") as file:
        items = list(iter_records(file))
    for item in items:
        if isinstance(item, RecordProblem):
            problems.append(item)
        else:
            records.append(item[1])
    return records, problems
