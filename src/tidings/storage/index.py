"""The sparse indexes of a segment: offset -> position, and time -> offset.

Files (little-endian), named after their segment's base offset, 20 digits::

    <base>.index      8-byte entries:  uint32 relative_offset, uint32 position
    <base>.timeindex 12-byte entries:  int64 append_time,     uint32 relative_offset

An offset-index entry says "the batch whose base offset is base+relative_offset
starts at byte ``position`` of the .log"; one is added after every
``index_interval_bytes`` of log, so finding an offset costs a binary search and
a scan of at most that many bytes. A time-index entry says "the batch at
base+relative_offset was appended at ``append_time``"; one is added with each
offset-index entry when the time has moved on, and a last one when the segment
is sealed, so its final entry is the segment's newest time. Keys and values
both strictly increase in both files.

Entries live in memory (two arrays per index, 8 or 12 bytes an entry: about
2-3 MiB per GiB of log at the default 4 KiB interval) and are written to the
file when the log is checkpointed or a segment sealed. A checkpoint may write
entries for batches appended after its own position; after a crash the loader
drops every entry beyond the checkpoint and re-derives them by scanning, so a
file never leads recovery past data it has checked. A file that is short, out
of order or pointing past its log is rebuilt from the .log.
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_left, bisect_right
from typing import Final

from tidings.storage.fileio import File

OFFSET_ENTRY: Final = struct.Struct("<II")
TIME_ENTRY: Final = struct.Struct("<qI")


class IndexCorrupted(Exception):
    """An index file cannot be trusted; the loader rebuilds it (never escapes storage)."""


class SparseIndex:
    """Sorted (key, value) pairs, held in memory and appended to a file on flush."""

    __slots__ = ("_entry", "_file", "_flushed", "keys", "values")

    def __init__(self, file: File, entry: struct.Struct, key_type: str) -> None:
        self._file = file
        self._entry = entry
        self._flushed = 0
        self.keys: array[int] = array(key_type)
        self.values: array[int] = array("I")

    @classmethod
    def offsets(cls, file: File) -> SparseIndex:
        return cls(file, OFFSET_ENTRY, "I")

    @classmethod
    def times(cls, file: File) -> SparseIndex:
        return cls(file, TIME_ENTRY, "q")

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def path(self) -> str:
        return self._file.path

    def load(self) -> None:
        """Read the file's entries; raises ``IndexCorrupted`` if they cannot be right."""
        data = self._file.read_at(self._file.size(), 0)
        if len(data) % self._entry.size:
            raise IndexCorrupted(f"{self.path}: size {len(data)} is not a multiple of {self._entry.size}")
        keys, values = self.keys, self.values
        del keys[:], values[:]
        for key, value in self._entry.iter_unpack(data):
            if keys and (key <= keys[-1] or value <= values[-1]):
                raise IndexCorrupted(f"{self.path}: entry {len(keys)} is out of order")
            keys.append(key)
            values.append(value)
        self._flushed = len(keys)

    def append(self, key: int, value: int) -> None:
        if self.keys and (key <= self.keys[-1] or value <= self.values[-1]):
            return  # nothing new to say: keep the index strictly increasing
        self.keys.append(key)
        self.values.append(value)

    def floor(self, key: int) -> int:
        """Index of the last entry whose key is <= ``key``, or -1."""
        return bisect_right(self.keys, key) - 1

    def truncate_values(self, limit: int) -> None:
        """Forget every entry whose value is >= ``limit`` (values increase, so a suffix)."""
        self.truncate(bisect_left(self.values, limit))

    def truncate(self, keep: int) -> None:
        """Keep the first ``keep`` entries, in memory and in the file."""
        if keep >= len(self.keys):
            return
        del self.keys[keep:], self.values[keep:]
        if self._flushed > keep:
            self._file.truncate(keep * self._entry.size)
            self._flushed = keep

    def clear(self) -> None:
        del self.keys[:], self.values[:]
        self._file.truncate(0)
        self._flushed = 0

    def flush(self) -> None:
        """Write the entries not yet in the file, and make them durable."""
        if self._flushed == len(self.keys):
            return
        pack = self._entry.pack
        pending = [pack(self.keys[i], self.values[i]) for i in range(self._flushed, len(self.keys))]
        self._file.write_at([b"".join(pending)], self._flushed * self._entry.size)
        self._file.sync()
        self._flushed = len(self.keys)

    def close(self) -> None:
        self._file.close()
