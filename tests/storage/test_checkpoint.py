"""The recovery checkpoint's encoding: round trip, and None for anything damaged."""

import os

import pytest

from tidings.records import crc32c
from tidings.storage import OsFileSystem
from tidings.storage import checkpoint as ckpt

POINT = ckpt.Checkpoint(
    segment=2**40,
    position=123_456,
    next_offset=2**40 + 99,
    max_append_time=1_700_000_000_000,
    last_batch=2**40 + 90,
)


def test_encode_layout():
    data = ckpt.encode(POINT)
    assert len(data) == 50
    assert data[:4] == b"TDCP"
    assert data[4:6] == (1).to_bytes(2, "little")
    assert int.from_bytes(data[6:14], "little") == POINT.segment
    assert int.from_bytes(data[14:22], "little") == POINT.position
    assert int.from_bytes(data[46:50], "little") == crc32c(data[:46])


@pytest.mark.parametrize(
    "point",
    [POINT, ckpt.Checkpoint(0, 0, 0, -1, -1), ckpt.Checkpoint(5, 2**64 - 1, 2**63 - 1, -1, 5)],
)
def test_round_trip(point):
    assert ckpt.decode(ckpt.encode(point)) == point


def test_empty_or_short_or_long_is_none():
    data = ckpt.encode(POINT)
    assert ckpt.decode(b"") is None
    assert ckpt.decode(data[:-1]) is None
    assert ckpt.decode(data + b"\x00") is None


@pytest.mark.parametrize("at", [0, 5, 10, 20, 45, 49])
def test_any_flipped_byte_is_none(at):
    data = bytearray(ckpt.encode(POINT))
    data[at] ^= 0x40
    assert ckpt.decode(bytes(data)) is None


def with_crc(body: bytes) -> bytes:
    return body + crc32c(body).to_bytes(4, "little")


def test_wrong_magic_or_version_is_none_even_with_a_good_crc():
    body = ckpt.encode(POINT)[:46]
    assert ckpt.decode(with_crc(body)) == POINT
    assert ckpt.decode(with_crc(b"XDCP" + body[4:])) is None
    assert ckpt.decode(with_crc(body[:4] + (2).to_bytes(2, "little") + body[6:])) is None


def test_write_then_read(tmp_path):
    fs = OsFileSystem()
    directory = str(tmp_path)
    assert ckpt.read(fs, directory) is None
    ckpt.write(fs, directory, POINT)
    assert ckpt.read(fs, directory) == POINT
    ckpt.write(fs, directory, ckpt.Checkpoint(1, 2, 3, 4, 5))
    assert ckpt.read(fs, directory) == ckpt.Checkpoint(1, 2, 3, 4, 5)
    assert sorted(os.listdir(directory)) == [ckpt.FILENAME]  # no temporary left behind


def test_read_damaged_file_is_none(tmp_path):
    fs = OsFileSystem()
    ckpt.write(fs, str(tmp_path), POINT)
    path = tmp_path / ckpt.FILENAME
    path.write_bytes(path.read_bytes()[:30])
    assert ckpt.read(fs, str(tmp_path)) is None
