"""Idempotent producer state: sequence rules, ids, snapshots, and rebuilding after a crash."""

from __future__ import annotations

import os

import pytest

from tidings.core import producer_state
from tidings.core.producers import (
    SEQUENCE_MODULUS,
    WINDOW,
    Duplicate,
    PartitionProducers,
    ProducerIds,
    ProducerRegistry,
)
from tidings.errors import ProducerFenced
from tidings.protocol import ProducerClaim, Rejected
from tidings.records import BatchBuilder, read_header
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog


def batch(records: int = 1, *, producer: int = 7, epoch: int = 0, sequence: int = 0) -> bytes:
    builder = BatchBuilder()
    for n in range(records):
        builder.add(b"v%d" % n, timestamp=1)
    return builder.build(producer_id=producer, producer_epoch=epoch, base_sequence=sequence)


def header(records: int = 1, **fields):
    return read_header(batch(records, **fields))


def stored(state: PartitionProducers, records: int, offset: int, **fields) -> None:
    h = header(records, **fields)
    state.record(h, offset, offset + records - 1, 100 + offset)


def test_sequence_rules():
    state = PartitionProducers()
    assert state.check(header(2, sequence=40)) is None  # an unknown producer starts anywhere
    stored(state, 2, 0, sequence=40)
    assert state.check(header(1, sequence=42)) is None  # the next one
    duplicate = state.check(header(2, sequence=40))
    assert isinstance(duplicate, Duplicate) and (
        duplicate.batch.base_offset,
        duplicate.batch.last_offset,
    ) == (0, 1)
    gap = state.check(header(1, sequence=45))
    assert isinstance(gap, Rejected) and gap.code == "out_of_order_sequence"
    overlap = state.check(header(1, sequence=41))  # inside a stored batch, but not that batch
    assert isinstance(overlap, Rejected) and overlap.code == "duplicate_sequence"
    fenced = state.check(header(1, epoch=-1, sequence=42))
    assert isinstance(fenced, Rejected) and fenced.code == "invalid_sequence"


def test_window_of_remembered_batches():
    state = PartitionProducers()
    for n in range(WINDOW + 2):
        stored(state, 1, n, sequence=n)
    assert isinstance(state.check(header(sequence=2)), Duplicate)
    old = state.check(header(sequence=1))
    assert isinstance(old, Rejected) and old.code == "duplicate_sequence"


def test_epochs():
    state = PartitionProducers()
    stored(state, 1, 0, epoch=3, sequence=0)
    older = state.check(header(epoch=2, sequence=1))
    assert isinstance(older, Rejected) and older.code == "producer_fenced"
    assert state.check(header(epoch=4, sequence=0)) is None  # a new epoch starts over
    stored(state, 1, 1, epoch=4, sequence=0)
    assert state.entries[7].epoch == 4 and len(state.entries[7].batches) == 1


def test_sequences_wrap():
    state = PartitionProducers()
    stored(state, 2, 0, sequence=SEQUENCE_MODULUS - 2)
    assert state.check(header(sequence=0)) is None


def test_expiry():
    state = PartitionProducers()
    stored(state, 1, 0, sequence=0)  # append time 100
    assert state.expire(now=200, expiry_ms=1000) == 0
    assert state.expire(now=1100, expiry_ms=1000) == 1
    assert state.check(header(sequence=9)) is None


def test_ids_are_reserved_in_blocks_and_never_reused(tmp_path):
    path = str(tmp_path / "producer-ids")
    ids = ProducerIds(path)
    first = [ids.allocate() for _ in range(3)]
    assert first == [0, 1, 2]
    again = ProducerIds(path)  # a crash wastes the rest of the block, nothing more
    assert again.allocate() > max(first)
    again.observe(5000)
    assert again.allocate() == 5001
    assert ProducerIds(path).allocate() > 5001


def test_claims_and_ownership(tmp_path):
    registry = ProducerRegistry(ProducerIds(str(tmp_path / "ids")))
    pid, epoch = registry.claim("s1", ProducerClaim())
    h = header(producer=pid, epoch=epoch)
    assert registry.owner_check("s1", h) is None
    assert registry.owner_check("s2", h).code == "producer_fenced"  # s1 owns it
    assert registry.owner_check("s2", header(producer=pid + 1)).code == "unknown_producer"
    registry.claim("s2", ProducerClaim(producer_id=pid, producer_epoch=epoch))
    assert registry.owner_check("s1", h).code == "producer_fenced"
    registry.release("s1")  # releasing an id one no longer owns changes nothing
    assert registry.owner_check("s2", h) is None
    state = PartitionProducers()
    registry.attach("orders", 0, state)
    registry.record("orders", 0, header(producer=pid, epoch=3), base=0, last=0, append_time=1)
    with pytest.raises(ProducerFenced):
        registry.claim("s3", ProducerClaim(producer_id=pid, producer_epoch=2))


def test_snapshot_roundtrip():
    state = PartitionProducers()
    stored(state, 2, 0, sequence=0)
    stored(state, 1, 2, producer=9, sequence=5)
    offset, loaded = producer_state.decode(producer_state.encode(state, 3))
    assert offset == 3
    assert {pid: list(e.batches) for pid, e in loaded.entries.items()} == {
        pid: list(e.batches) for pid, e in state.entries.items()
    }
    damaged = bytearray(producer_state.encode(state, 3))
    damaged[-1] ^= 1
    assert producer_state.decode(bytes(damaged)) is None
    assert producer_state.decode(b"short") is None


def append(log: PartitionLog, data: bytes) -> None:
    log.append(data)
    log.sync()


def test_rebuild_from_the_log_alone(tmp_path):
    directory = str(tmp_path / "p0")
    with PartitionLog(directory) as log:
        append(log, batch(2, sequence=0))
        append(log, batch(1, producer=-1, epoch=-1, sequence=-1))  # a plain producer's batch
        append(log, batch(1, sequence=2))
    with PartitionLog(directory) as log:
        state = producer_state.rebuild(log)
    entry = state.entries[7]
    assert [(b.base_sequence, b.base_offset) for b in entry.batches] == [(0, 0), (2, 3)]
    assert -1 not in state.entries


def test_rebuild_from_snapshot_then_the_tail(tmp_path):
    directory = str(tmp_path / "p0")
    with PartitionLog(directory) as log:
        append(log, batch(1, sequence=0))
        state = producer_state.rebuild(log)
        producer_state.write_snapshot(log, producer_state.encode(state, log.end_offset))
        append(log, batch(1, producer=8, sequence=0))  # after the snapshot: found in the tail
    with PartitionLog(directory) as log:
        rebuilt = producer_state.rebuild(log)
    assert set(rebuilt.entries) == {7, 8}


def test_a_snapshot_past_the_log_end_is_ignored(tmp_path):
    directory = str(tmp_path / "p0")
    config = LogConfig(fsync=FsyncPolicy.parse("never"))
    with PartitionLog(directory, config) as log:
        append(log, batch(1, sequence=0))
        ghost = PartitionProducers()
        stored(ghost, 1, 5, producer=99, sequence=0)
        producer_state.write_snapshot(log, producer_state.encode(ghost, 10))  # claims offsets the log lost
    with PartitionLog(directory, config) as log:
        rebuilt = producer_state.rebuild(log)
    assert set(rebuilt.entries) == {7}
    assert os.path.exists(os.path.join(directory, producer_state.FILENAME))
