"""Deterministic batches for the durability tests, and the crash test's child process.

Every batch is derived from an integer id alone (record count, sizes and bytes
come from ``random.Random(id)``), and its first key names the id, so whoever
reads a batch back, in this process or another, can rebuild the batch the
producer sent and compare it byte for byte, whatever offset it landed at.

Run as a script it is the child of ``test_crash.py``::

    python appender.py DIRECTORY ROUND THREADS [power]

It opens the log with ``fsync=always`` (with ``power``, on a
``FaultyFileSystem(lose_unsynced=True)``, so that the kill also loses every
byte not yet synced, as a power cut would), prints ``ready``, then appends from
THREADS threads, forever. Each thread appends batches ``batch_id(ROUND, thread,
0, 1, ...)`` in order and, only after ``log.commit`` returned for a batch,
prints ``ID BASE LAST`` (one ``os.write`` of less than PIPE_BUF bytes, so a
line is whole or absent). The parent kills it with SIGKILL.
"""

from __future__ import annotations

import os
import random
import sys
import threading

from tidings.records import (
    HEADER_SIZE,
    BatchHeader,
    build_batch,
    check_batch,
    iter_batches,
    iter_records,
    read_header,
)
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog
from tidings.storage.faults import FaultyFileSystem

EPOCH_MS = 1_700_000_000_000
# Small segments, indexes and checkpoints so that kills land in rolls and checkpoints too.
CRASH_CONFIG = LogConfig(
    fsync=FsyncPolicy.parse("always"),
    max_segment_bytes=96 * 1024,
    index_interval_bytes=1024,
    checkpoint_interval_bytes=24 * 1024,
    prealloc_bytes=32 * 1024,  # kills land in zero-filled room, and in its top-ups, too
)


def batch_id(round_number: int, thread: int, sequence: int) -> int:
    return (round_number << 24) | (thread << 16) | sequence


def split_id(number: int) -> tuple[int, int, int]:
    return number >> 24, (number >> 16) & 0xFF, number & 0xFFFF


def batch_values(number: int) -> tuple[list[bytes | None], list[bytes]]:
    rng = random.Random(number)
    count = rng.choice((1, 1, 2, 3, 5, 8, 21))
    sizes = [rng.choice((0, 7, 60, 300, 1500)) + rng.randrange(40) for _ in range(count)]
    keys: list[bytes | None] = [f"{number}:{index}".encode() for index in range(count)]
    if count > 1:
        keys[-1] = None
    return keys, [rng.randbytes(size) for size in sizes]


def batch_for(number: int) -> bytes:
    """The producer's (unstamped) batch with id ``number``."""
    keys, values = batch_values(number)
    return build_batch(values, keys=keys, timestamp=EPOCH_MS + number % 100_000)


def append_all(log: PartitionLog, numbers: list[int] | range) -> list[tuple[int, int]]:
    """Append and commit the batches ``batch_for(n)``; returns (number, base offset) pairs."""
    placed = []
    for number in numbers:
        result = log.append(batch_for(number))
        log.commit(result.last_offset)
        placed.append((number, result.base_offset))
    return placed


def batch_spans(data: bytes | bytearray) -> list[tuple[int, int]]:
    """(position, length) of each batch in the raw bytes of a .log, up to its preallocated zeros.

    A file's size is not its segment's end: the log keeps zero-filled room
    after the last batch (``PartitionLog.preallocate``), and a zero length
    is where a header walk must stop.
    """
    spans: list[tuple[int, int]] = []
    position = 0
    while position + HEADER_SIZE <= len(data):
        length = read_header(data, position).length
        if length == 0:
            break
        spans.append((position, length))
        position += length
    return spans


def logical_end(data: bytes | bytearray) -> int:
    """Where the last batch of these .log bytes ends: the segment's end, before any zeros."""
    spans = batch_spans(data)
    return spans[-1][0] + spans[-1][1] if spans else 0


def id_of(data: bytes, position: int = 0, header: BatchHeader | None = None) -> int:
    """The id of the stored batch at ``position``, from its first key."""
    first = next(iter_records(data, position, header))
    assert first.key is not None
    return int(first.key.split(b":")[0])


def assert_is_batch(stored: bytes, number: int, base_offset: int) -> None:
    """``stored`` is batch ``number`` as appended at ``base_offset``: bytes and records."""
    header = check_batch(stored)
    sent = batch_for(number)
    assert header.base_offset == base_offset
    assert len(stored) == len(sent)
    assert stored[16:24] == sent[16:24]  # length and crc
    assert stored[28:] == sent[28:]  # everything the producer wrote after the stamped fields
    keys, values = batch_values(number)
    records = list(iter_records(stored))
    assert [r.offset for r in records] == list(range(base_offset, base_offset + len(values)))
    assert [r.key for r in records] == keys
    assert [r.value for r in records] == values


def read_batches(
    log: PartitionLog, start: int | None = None, stop: int | None = None
) -> list[tuple[int, bytes]]:
    """Every batch from ``start`` (default: the log start) below ``stop`` (default: the high watermark)."""
    offset = log.start_offset if start is None else start
    stop = log.high_watermark if stop is None else stop
    batches: list[tuple[int, bytes]] = []
    while offset < stop:
        result = log.read(offset, 256 * 1024, max_offset=stop)
        assert result.batch_count > 0, f"empty read at {offset} below {stop}"
        assert result.first_offset == offset
        for position, header in iter_batches(result.data):
            assert header.base_offset == offset
            batches.append((offset, result.data[position : position + header.length]))
            offset = header.next_offset
        assert result.next_offset == offset
    return batches


# -- the child process ---------------------------------------------------------------


def _worker(log: PartitionLog, round_number: int, thread: int) -> None:
    sequence = 0
    while True:
        number = batch_id(round_number, thread, sequence)
        result = log.append(batch_for(number))
        log.commit(result.last_offset)
        os.write(1, f"{number} {result.base_offset} {result.last_offset}\n".encode())
        sequence += 1


def main(directory: str, round_number: int, threads: int, power: bool) -> None:
    log = PartitionLog(directory, CRASH_CONFIG, fs=FaultyFileSystem(lose_unsynced=True) if power else None)
    os.write(1, b"ready\n")
    workers = [
        threading.Thread(target=_worker, args=(log, round_number, thread), daemon=True)
        for thread in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:] == ["power"])
