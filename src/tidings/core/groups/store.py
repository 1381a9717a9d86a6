"""``FileGroupStore``: every group's progress in one snapshot file, replaced atomically.

Group progress is small (one entry per group and partition, a few ranges
each) and changes often. So the whole snapshot is rewritten at each save,
never appended to, and a save is one atomic file replacement: write
``<path>.tmp``, fsync it, rename it over ``<path>``, fsync the directory.
A crash leaves either the old snapshot or the new one, never a mix. A
leftover ``.tmp`` is ignored, and overwritten by the next save.

Layout (integers little-endian)::

    off   size  field
      0      4  magic     b"TDGP"
      4      2  version   uint16 = 1
      6      8  length    uint64, bytes of body
     14 length  body      msgpack array of entries, one per (group, topic, partition):
                            [group: str, topic: str, partition: int, committed: int,
                             settled_above: [[first: int, last: int], ...]]
 14+len      4  crc       uint32, CRC32C of bytes [0, 14 + length)

``load`` returns an empty mapping when the file does not exist (a new
broker). A file that exists but is damaged (short, bad magic or version,
length or CRC mismatch, undecodable body) raises ``GroupStoreCorrupted``:
silently starting over would move every group back to its start position,
replaying or skipping whole topics. An operator restores or removes the file.
"""

from __future__ import annotations

import os
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from tidings.core.ports import PartitionProgress, ProgressKey
from tidings.errors import GroupStoreCorrupted, StorageError
from tidings.protocol.ranges import OffsetRange
from tidings.records import crc32c
from tidings.storage.fileio import FileSystem, OsFileSystem

MAGIC: Final = b"TDGP"
VERSION: Final = 1
_HEADER: Final = struct.Struct("<4sHQ")
_CRC: Final = struct.Struct("<I")

_Entry = tuple[str, str, int, int, list[tuple[int, int]]]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[_Entry])


def encode(progress: Mapping[ProgressKey, PartitionProgress]) -> bytes:
    """The snapshot file's bytes for ``progress`` (entries sorted, so equal progress gives equal bytes)."""
    entries = [
        (group, topic, partition, value.committed, [(r.first, r.last) for r in value.settled_above])
        for (group, topic, partition), value in sorted(progress.items())
    ]
    body = _encoder.encode(entries)
    head = _HEADER.pack(MAGIC, VERSION, len(body)) + body
    return head + _CRC.pack(crc32c(head))


def decode(data: bytes, *, path: str = "<bytes>") -> dict[ProgressKey, PartitionProgress]:
    """Parse a snapshot; raise ``GroupStoreCorrupted`` naming ``path`` and what is wrong."""

    def damaged(why: str) -> GroupStoreCorrupted:
        return GroupStoreCorrupted(
            f"group progress file {path} is damaged ({why}); restore it from a backup or remove it "
            "to restart every group from its start position"
        )

    if len(data) < _HEADER.size + _CRC.size:
        raise damaged(f"{len(data)} bytes, shorter than an empty snapshot")
    magic, version, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise damaged(f"magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise damaged(f"version {version}, this broker reads version {VERSION}")
    if _HEADER.size + length + _CRC.size != len(data):
        raise damaged(f"body length {length} does not match the file size {len(data)}")
    end = _HEADER.size + length
    (crc,) = _CRC.unpack_from(data, end)
    if crc != crc32c(memoryview(data)[:end]):
        raise damaged("CRC32C mismatch")
    try:
        entries = _decoder.decode(memoryview(data)[_HEADER.size : end])
        return {
            (group, topic, partition): PartitionProgress(
                committed=committed,
                settled_above=tuple(OffsetRange(first=first, last=last) for first, last in ranges),
            )
            for group, topic, partition, committed, ranges in entries
        }
    except (msgspec.DecodeError, ValueError) as exc:
        raise damaged(f"undecodable body: {exc}") from exc


class FileGroupStore:
    """A ``GroupStore`` keeping every group's progress in the snapshot file at ``path``.

    It keeps the whole snapshot in memory: ``save`` merges the changed
    entries into it and rewrites the file. Thread-safe, since the server saves
    from a worker thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, fs: FileSystem | None = None) -> None:
        self.path = os.fspath(path)
        self._fs = fs or OsFileSystem()
        self._lock = threading.Lock()
        self._entries: dict[ProgressKey, PartitionProgress] | None = None

    def __repr__(self) -> str:
        loaded = "unloaded" if self._entries is None else f"{len(self._entries)} entries"
        return f"FileGroupStore({self.path!r}, {loaded})"

    def load(self) -> Mapping[ProgressKey, PartitionProgress]:
        with self._lock:
            return dict(self._loaded())

    def save(self, progress: Mapping[ProgressKey, PartitionProgress]) -> None:
        """Record these entries (others are unchanged); durable when this returns."""
        with self._lock:
            entries = self._loaded()
            merged = {**entries, **progress}
            self._write(merged)
            self._entries = merged

    def delete(self, keys: Iterable[ProgressKey]) -> None:
        """Forget these entries (a deleted topic's); durable when this returns."""
        with self._lock:
            entries = self._loaded()
            doomed = set(keys)
            remaining = {k: v for k, v in entries.items() if k not in doomed}
            if len(remaining) != len(entries):
                self._write(remaining)
            self._entries = remaining

    def _loaded(self) -> dict[ProgressKey, PartitionProgress]:
        if self._entries is None:
            try:
                data = self._fs.read_file(self.path) if self._fs.exists(self.path) else None
            except OSError as exc:
                raise StorageError(f"cannot read group progress file {self.path}: {exc}") from exc
            self._entries = {} if data is None else decode(data, path=self.path)
        return self._entries

    def _write(self, entries: Mapping[ProgressKey, PartitionProgress]) -> None:
        directory = os.path.dirname(self.path) or "."
        temporary = self.path + ".tmp"
        data = encode(entries)
        try:
            self._fs.makedirs(directory)
            handle = self._fs.open(temporary)
            try:
                handle.truncate(0)
                handle.write_at([data], 0)
                handle.sync()
            finally:
                handle.close()
            self._fs.replace(temporary, self.path)
            self._fs.sync_dir(directory)
        except OSError as exc:
            raise StorageError(f"cannot save group progress to {self.path}: {exc}") from exc
