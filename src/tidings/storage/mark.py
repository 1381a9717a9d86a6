"""The durable mark: how far the active segment is known fsynced, rewritten at every group commit.

Why it exists. Recovery must tell a torn write (a crash cut short a write
nobody was told was durable: cut it off) from damage to a batch that was
fsynced and acknowledged (corruption: report it, never cut it). Both look the
same at the tail of the last segment, a batch that fails its CRC with nothing
valid after it. The recovery checkpoint tells them apart only up to its
position, and it is written every 16 MiB, because it costs a rename and two
fsyncs. The mark closes the gap: one small file per log directory,
``durable-mark``, overwritten in place (``pwrite`` at offset 0) after every
fsync of the active segment::

    off  size  field
      0     4  magic        b"TDDM"
      4     2  version      uint16 = 1
      6     8  segment      int64   base offset of the segment the position is in
     14     8  position     uint64  bytes of that segment that were fsynced
     22     8  next_offset  int64   offset of the first record at or after ``position``
     30     4  crc          uint32  CRC32C of bytes [0, 30)

Recovery (``tidings.storage.loader``) treats every byte of that segment below
``position`` as durable: a batch there that fails its checks, or a file
shorter than ``position``, is corruption. Above it, today's rule holds.

Why the mark never claims more than is durable, without an fsync of its own:

* It is written only after the fdatasync of the data it describes returned,
  so every version of it that ever existed, in the page cache or on disk,
  described bytes that were durable when it was written.
* Durable bytes stay durable: the log only ever cuts bytes above the mark
  (a rolled-back append, a torn tail at recovery), except for an operator's
  ``truncate_corrupt``, which first writes *and fsyncs* a mark at the cut, so
  no older version of the mark (one past the cut) can come back after a crash.
* The mark is 34 bytes at offset 0, inside one sector; a torn write of it
  fails its CRC and reads as no mark.

What a power cut does to it: the data fsync does not flush this file, so the
newest mark reaches the disk with the kernel's writeback (seconds), or not at
all before a cut. A lost or older mark only says that less is durable:
recovery falls back to the checkpoint and the torn-tail rule, which is safe
for a power cut (what it may cut was not acknowledged) and only misses
damage to the newest acknowledged batches, within that writeback window.
For the same reason the directory is not fsynced when the file is created:
a mark file lost with its directory entry is no mark.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Final

from tidings.records import crc32c
from tidings.storage.fileio import File, FileSystem

FILENAME: Final = "durable-mark"
_MAGIC: Final = b"TDDM"
_LAYOUT: Final = struct.Struct("<4sHqQq")
_CRC: Final = struct.Struct("<I")
SIZE: Final = _LAYOUT.size + _CRC.size


@dataclass(frozen=True, slots=True)
class DurableMark:
    segment: int
    position: int
    next_offset: int


def encode(mark: DurableMark) -> bytes:
    body = _LAYOUT.pack(_MAGIC, 1, mark.segment, mark.position, mark.next_offset)
    return body + _CRC.pack(crc32c(body))


def decode(data: bytes) -> DurableMark | None:
    """The mark in ``data``, or None when it is missing, short or damaged (then: no mark)."""
    if len(data) != SIZE:
        return None
    body = data[: _LAYOUT.size]
    if _CRC.unpack_from(data, _LAYOUT.size)[0] != crc32c(body):
        return None
    magic, version, segment, position, next_offset = _LAYOUT.unpack(body)
    if magic != _MAGIC or version != 1 or position < 0 or next_offset < segment:
        return None
    return DurableMark(segment, position, next_offset)


def read(fs: FileSystem, directory: str) -> DurableMark | None:
    path = os.path.join(directory, FILENAME)
    if not fs.exists(path):
        return None
    return decode(fs.read_file(path))


class MarkWriter:
    """The open mark file of one log. Not thread safe: the log writes it holding its sync lock.

    The file is opened at the first write, so a log that never commits has no mark.
    """

    __slots__ = ("_file", "_fs", "_last", "path")

    def __init__(self, fs: FileSystem, directory: str) -> None:
        self._fs = fs
        self.path = os.path.join(directory, FILENAME)
        self._file: File | None = None
        self._last: DurableMark | None = None

    def __repr__(self) -> str:
        return f"<MarkWriter {self.path} last={self._last}>"

    def write(self, mark: DurableMark, *, sync: bool = False) -> None:
        """Overwrite the mark. Call only once the data it describes is fsynced.

        ``sync``: make the mark itself durable before returning, for the one
        case where an older version must never come back (a cut below it).
        """
        if mark == self._last and not sync:
            return
        if self._file is None:
            self._file = self._fs.open(self.path)
        self._last = None  # unknown until the write succeeds
        self._file.write_at([encode(mark)], 0)
        if sync:
            self._file.sync()
        self._last = mark

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
