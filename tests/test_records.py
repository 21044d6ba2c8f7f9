from __future__ import annotations

import struct

import pytest
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc

from gpu_summary._events.records import (
    HEADER_SIZE,
    RecordProblem,
    encode_record,
    iter_records,
    masked_crc32c,
    read_records,
)


@pytest.mark.parametrize("data", [b"", b"a", b"123456789", bytes(range(256)) * 17])
def test_masked_crc_matches_tensorboard(data):
    assert masked_crc32c(data) == tb_masked_crc(data)


def test_crc32c_known_value():
    # CRC-32C("123456789") = 0xE3069283 (the Castagnoli check value); masked as TFRecord does.
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_record_layout():
    record = encode_record(b"hello")
    assert struct.unpack("<Q", record[:8]) == (5,)
    assert struct.unpack("<I", record[8:12]) == (masked_crc32c(record[:8]),)
    assert record[12:17] == b"hello"
    assert struct.unpack("<I", record[17:]) == (masked_crc32c(b"hello"),)


def test_iter_records_reports_damage():
    good = [encode_record(b"x" * n) for n in (0, 3, 100)]
    buffer = b"".join(good)
    assert [d for _, d in iter_records(buffer)] == [b"", b"xxx", b"x" * 100]
    # A flipped data byte: that record is reported and skipped, the next still reads.
    damaged = bytearray(buffer)
    damaged[len(good[0]) + HEADER_SIZE] ^= 1
    items = list(iter_records(bytes(damaged)))
    assert items[1] == RecordProblem(len(good[0]), "data checksum mismatch")
    assert items[2][1] == b"x" * 100
    # A truncated tail is reported with its offset.
    items = list(iter_records(buffer[:-3]))
    assert items[-1] == RecordProblem(len(good[0]) + len(good[1]), "truncated data")
    tail = list(iter_records(buffer + b"\0" * 5))[-1]
    assert tail == RecordProblem(len(buffer), "truncated header")


def test_read_records(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(encode_record(b"a") + encode_record(b"b"))
    assert read_records(str(path)) == ([b"a", b"b"], [])
