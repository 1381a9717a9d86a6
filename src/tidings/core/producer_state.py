"""How idempotent-producer state survives a restart, kill -9 included: snapshots plus the log's tail.

The state (``core.producers.PartitionProducers``) is derived data: every
batch header of an idempotent producer holds its id, epoch and sequences,
and the log holds the offsets and append time. So the state can always be
rebuilt by reading the partition's batch headers, and a snapshot only
bounds how much must be read (Kafka's producer-state snapshots).

Snapshot file ``<partition dir>/producer-snapshot`` (little-endian)::

    off  size  field     meaning
      0     4  magic     b"TDPS"
      4     2  version   1
      6     8  offset    int64: the state covers every batch below this offset
     14     4  length    uint32: bytes of the body
     18     4  crc       uint32: CRC32C of the body
     22     N  body      msgpack: [[producer_id, epoch, last_seen, [[base_seq, last_seq,
                                   base_offset, last_offset, append_time], ...]], ...]

It is replaced atomically (``core.datadir.write_atomic``) on a clean close
and periodically while the broker runs (``snapshot_interval_ms``, 30 s by
default), from the event loop's copy of the state, in a thread.

On open (lazily, before the partition's first idempotent append): load the
snapshot if it is sound and ``start_offset <= offset <= end_offset``, then
read every batch header from its offset (or from the log start, without a
usable snapshot) to the end and replay the idempotent ones. After a kill -9
that is at most one snapshot interval of appends. A snapshot past the log's
end (a power cut lost unsynced batches under ``interval``/``never``) is
ignored: its state would claim batches the log no longer holds.
"""

from __future__ import annotations

import logging
import os
import struct
from typing import Final

import msgspec

from tidings.core.datadir import read_optional, write_atomic
from tidings.core.producers import BatchMeta, PartitionProducers, ProducerEntry
from tidings.errors import StorageError
from tidings.records import crc32c, read_header
from tidings.storage import PartitionLog

FILENAME: Final = "producer-snapshot"
MAGIC: Final = b"TDPS"
PREFIX = struct.Struct("<4sHqII")
SCAN_BYTES: Final = 4 << 20

log = logging.getLogger(__name__)

_Batch = tuple[int, int, int, int, int]
_Entry = tuple[int, int, int, list[_Batch]]


def snapshot_path(partition_log: PartitionLog) -> str:
    return os.path.join(partition_log.directory, FILENAME)


def encode(state: PartitionProducers, offset: int) -> bytes:
    entries: list[_Entry] = [
        (
            pid,
            entry.epoch,
            entry.last_seen,
            [
                (b.base_sequence, b.last_sequence, b.base_offset, b.last_offset, b.append_time)
                for b in entry.batches
            ],
        )
        for pid, entry in state.entries.items()
    ]
    body = msgspec.msgpack.encode(entries)
    return PREFIX.pack(MAGIC, 1, offset, len(body), crc32c(body)) + body


def decode(data: bytes) -> tuple[int, PartitionProducers] | None:
    """(offset, state) from a snapshot's bytes, or None when they are short, damaged or unknown."""
    if len(data) < PREFIX.size:
        return None
    magic, version, offset, length, crc = PREFIX.unpack_from(data)
    body = data[PREFIX.size :]
    if magic != MAGIC or version != 1 or len(body) != length or crc32c(body) != crc:
        return None
    try:
        entries = msgspec.msgpack.decode(body, type=list[_Entry])
    except msgspec.DecodeError:
        return None
    state = PartitionProducers()
    for pid, epoch, last_seen, batches in entries:
        state.entries[pid] = ProducerEntry(epoch, last_seen, tuple(BatchMeta(*b) for b in batches))
    return offset, state


def write_snapshot(partition_log: PartitionLog, data: bytes) -> None:
    """Write an encoded snapshot (from ``encode``); blocking, so the server calls it in a thread."""
    write_atomic(snapshot_path(partition_log), data)


def rebuild(partition_log: PartitionLog) -> PartitionProducers:
    """The partition's producer state: the snapshot, then every batch header after it."""
    state, start = PartitionProducers(), partition_log.start_offset
    data = read_optional(snapshot_path(partition_log))
    loaded = decode(data) if data is not None else None
    if loaded is not None and loaded[0] <= partition_log.end_offset:
        state, start = loaded[1], max(loaded[0], partition_log.start_offset)
    elif data is not None:
        log.warning("ignoring the producer snapshot of %s: damaged or past the log end", partition_log)
    replay(partition_log, state, start)
    return state


def replay(partition_log: PartitionLog, state: PartitionProducers, start: int) -> None:
    """Record every idempotent batch of the log from ``start`` to the high watermark."""
    offset = start
    try:
        while offset < partition_log.high_watermark:
            result = partition_log.read(offset, SCAN_BYTES)
            if result.empty:
                return
            position = 0
            while position < len(result.data):
                header = read_header(result.data, position)
                if header.idempotent and header.base_offset >= start:
                    state.record(header, header.base_offset, header.last_offset, header.append_time)
                position += header.length
            offset = result.next_offset
    except StorageError as exc:  # a damaged log refuses appends anyway; keep what was read
        log.warning("producer state of %s rebuilt only up to offset %d: %s", partition_log, offset, exc)
