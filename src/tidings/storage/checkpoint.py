"""The recovery checkpoint: how far a partition log is known to be durable and indexed.

One small file per log directory, ``recovery-checkpoint``, replaced atomically
(write a temporary file, fsync it, rename it over the old one, fsync the
directory)::

    off  size  field
      0     4  magic            b"TDCP"
      4     2  version          uint16 = 1
      6     8  segment          int64   base offset of the segment the position is in
     14     8  position         uint64  bytes of that segment known good, synced and indexed
     22     8  next_offset      int64   offset of the first record at or after ``position``
     30     8  max_append_time  int64   newest append time before ``position`` (-1: none)
     38     8  last_batch       int64   base offset of the last batch before ``position`` (-1: none)
     46     4  crc              uint32  CRC32C of bytes [0, 46)

Everything before (segment, position), .log and index files alike, was
fsynced before the checkpoint was written, so recovery after a crash trusts
it and scans only what comes after it. A missing or damaged checkpoint means
"scan everything", which is slow but never wrong.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

from tidings.records import crc32c
from tidings.storage.fileio import FileSystem

FILENAME: Final = "recovery-checkpoint"
_MAGIC: Final = b"TDCP"
_LAYOUT: Final = struct.Struct("<4sHqQqqq")
_CRC: Final = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    segment: int
    position: int
    next_offset: int
    max_append_time: int
    last_batch: int


def encode(checkpoint: Checkpoint) -> bytes:
    body = _LAYOUT.pack(
        _MAGIC,
        1,
        checkpoint.segment,
        checkpoint.position,
        checkpoint.next_offset,
        checkpoint.max_append_time,
        checkpoint.last_batch,
    )
    return body + _CRC.pack(crc32c(body))


def decode(data: bytes) -> Checkpoint | None:
    """The checkpoint in ``data``, or None when it is missing, short or damaged."""
    if len(data) != _LAYOUT.size + _CRC.size:
        return None
    body = data[: _LAYOUT.size]
    if _CRC.unpack_from(data, _LAYOUT.size)[0] != crc32c(body):
        return None
    magic, version, *fields = _LAYOUT.unpack(body)
    if magic != _MAGIC or version != 1:
        return None
    return Checkpoint(*fields)


def read(fs: FileSystem, directory: str) -> Checkpoint | None:
    path = os.path.join(directory, FILENAME)
    if not fs.exists(path):
        return None
    return decode(fs.read_file(path))


def write(fs: FileSystem, directory: str, checkpoint: Checkpoint) -> None:
    path = os.path.join(directory, FILENAME)
    temporary = path + ".tmp"
    handle = fs.open(temporary)
    try:
        handle.truncate(0)
        handle.write_at([encode(checkpoint)], 0)
        handle.sync()
    finally:
        handle.close()
    fs.replace(temporary, path)
    fs.sync_dir(directory)
