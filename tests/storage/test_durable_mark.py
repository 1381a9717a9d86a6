"""The durable mark: its encoding, when the log writes it, and what a power cut does with it.

The recovery rules themselves (damage below the mark is reported, a tear
above it is cut, a lost or stale mark falls back to the torn-tail rule) are in
``test_torn_write.py``, on real files. Here the log runs on the fault layer:
``FaultyFileSystem(lose_unsynced=True)`` drops every byte not fsynced at a
power cut, the mark included, unless ``writeback()`` (the kernel's flusher)
put it on disk first.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.storage.appender import (
    append_all,
    assert_is_batch,
    batch_for,
    batch_spans,
    logical_end,
    read_batches,
)
from tidings.errors import DiskFullError, LogFailedError
from tidings.records import crc32c, read_header
from tidings.storage import FsyncPolicy, LogConfig, OsFileSystem, PartitionLog
from tidings.storage import mark as durable_mark
from tidings.storage.faults import FaultyFileSystem

# The checkpoint lags far behind: only the mark knows the tail was acknowledged.
CONFIG = LogConfig(max_segment_bytes=64 * 1024, index_interval_bytes=512, checkpoint_interval_bytes=1 << 30)
MARK = durable_mark.DurableMark(segment=2**40, position=123_456, next_offset=2**40 + 99)


def read_mark(directory: Path) -> durable_mark.DurableMark | None:
    return durable_mark.read(OsFileSystem(), str(directory))


def flip_last_batch(directory: Path, rng: random.Random) -> tuple[Path, int]:
    """Flip one random bit of the last batch of the last segment; returns (file, batch start)."""
    path = sorted(directory.glob("*.log"))[-1]
    data = bytearray(path.read_bytes())
    start, length = batch_spans(data)[-1]
    data[rng.randrange(start, start + length)] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return path, start


# -- encoding ------------------------------------------------------------------------


def test_encode_layout() -> None:
    data = durable_mark.encode(MARK)
    assert len(data) == durable_mark.SIZE == 34
    assert data[:4] == b"TDDM"
    assert data[4:6] == (1).to_bytes(2, "little")
    assert int.from_bytes(data[6:14], "little") == MARK.segment
    assert int.from_bytes(data[14:22], "little") == MARK.position
    assert int.from_bytes(data[22:30], "little") == MARK.next_offset
    assert int.from_bytes(data[30:34], "little") == crc32c(data[:30])


def test_round_trip_and_anything_damaged_is_no_mark() -> None:
    data = durable_mark.encode(MARK)
    assert durable_mark.decode(data) == MARK
    assert durable_mark.decode(b"") is None
    assert durable_mark.decode(data[:-1]) is None
    assert durable_mark.decode(data + b"\x00") is None
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            assert durable_mark.decode(bytes(damaged)) is None, (position, bit)


# -- when the log writes it ----------------------------------------------------------


@pytest.mark.parametrize("fsync", ["always", "interval:1000", "never"])
def test_every_fsync_of_the_active_segment_moves_the_mark_to_what_it_made_durable(
    tmp_path: Path, fsync: str
) -> None:
    config = LogConfig(fsync=FsyncPolicy.parse(fsync), checkpoint_interval_bytes=1 << 30)
    with PartitionLog(str(tmp_path), config) as log:
        assert read_mark(tmp_path) is None, "a log that never synced has no mark"
        for number in range(5):
            result = log.append(batch_for(number))
            log.sync()
            segment = log.segments[-1]
            assert read_mark(tmp_path) == durable_mark.DurableMark(
                segment.base_offset, segment.size, result.next_offset
            )
        log.append(batch_for(99))  # written, not synced: the mark stays
        assert read_mark(tmp_path) == durable_mark.DurableMark(
            segment.base_offset, segment.size, result.next_offset
        )


def test_a_failed_fsync_leaves_the_mark_where_the_last_good_one_put_it(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    append_all(log, range(4))
    before = read_mark(tmp_path)
    assert before is not None and before.next_offset == log.durable_offset
    result = log.append(batch_for(50))
    fs.fail_syncs(suffix=".log")
    with pytest.raises(LogFailedError):
        log.commit(result.last_offset)
    assert read_mark(tmp_path) == before, "the mark never claims what the failed fsync did not make durable"
    log.close()


def test_a_failing_mark_write_fails_the_log_but_no_room_for_it_costs_nothing(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    with PartitionLog(str(tmp_path / "full"), CONFIG, fs=fs) as log:
        append_all(log, range(2))
        before = read_mark(tmp_path / "full")
        result = log.append(batch_for(2))
        fs.fill(after=0)  # the fsync needs no space; the mark's overwrite does (the fault layer counts it)
        log.commit(result.last_offset)
        assert log.failed is None and log.durable_offset == log.end_offset
        assert read_mark(tmp_path / "full") == before, "stale: says less is durable, never more"
        fs.refill()
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path / "eio"), CONFIG, fs=fs)
    append_all(log, range(2))
    result = log.append(batch_for(2))
    fs.fail_writes(suffix=durable_mark.FILENAME)
    with pytest.raises(LogFailedError, match="durable mark"):
        log.commit(result.last_offset)
    log.close()


# -- power cuts ----------------------------------------------------------------------


@pytest.mark.parametrize("written_back", [True, False])
def test_a_power_cut_loses_no_acknowledged_batch_with_or_without_the_mark(
    tmp_path: Path, written_back: bool
) -> None:
    rng = random.Random(7)
    for round_number in range(6):
        directory = tmp_path / f"cut-{round_number}"
        fs = FaultyFileSystem(lose_unsynced=True)
        log = PartitionLog(str(directory), CONFIG, fs=fs)
        acked = append_all(log, range(round_number * 100, round_number * 100 + rng.randrange(3, 60)))
        unacked = log.append(batch_for(9999))  # written, never synced: the cut loses it
        assert unacked.base_offset == log.durable_offset
        if written_back:
            fs.writeback(suffix=durable_mark.FILENAME)
        fs.power_cut()
        del log  # abandoned with the power
        assert (read_mark(directory) is not None) is written_back
        with PartitionLog(str(directory), CONFIG) as reopened:
            assert reopened.corruption is None
            assert reopened.recovery.truncated_bytes == 0
            stored = read_batches(reopened)
            assert [base for base, _ in stored] == [base for _, base in acked]
            for (base, data), (number, _) in zip(stored, acked, strict=True):
                assert_is_batch(bytes(data), number, base)


def test_after_a_power_cut_a_flip_in_the_last_acknowledged_batch_is_reported_once_the_mark_reached_disk(
    tmp_path: Path,
) -> None:
    """The case the reliability suite found: damage there used to be cut as a torn write."""
    rng = random.Random(11)
    for round_number in range(20):
        directory = tmp_path / f"flip-{round_number}"
        fs = FaultyFileSystem(lose_unsynced=True)
        log = PartitionLog(str(directory), CONFIG, fs=fs)
        acked = append_all(log, range(rng.randrange(2, 40)))
        fs.writeback(suffix=durable_mark.FILENAME)
        fs.power_cut()
        del log
        path, start = flip_last_batch(directory, rng)
        with PartitionLog(str(directory), CONFIG) as reopened:
            report = reopened.corruption
            assert report is not None, round_number
            assert (report.path, report.position, report.offset) == (str(path), start, acked[-1][1])
            assert reopened.recovery.truncated_bytes == 0
            assert [base for base, _ in read_batches(reopened, stop=acked[-1][1])] == [
                base for _, base in acked[:-1]
            ]


def damage_an_acknowledged_batch(
    directory: Path, victim: int
) -> tuple[list[tuple[int, int]], list[int], Path]:
    """12 acked batches in one segment, as a SIGKILL leaves them, batch ``victim`` flipped.

    Returns the (id, base offset) pairs, where each batch starts, and the .log file.
    """
    with PartitionLog(str(directory), CONFIG) as log:
        acked = append_all(log, range(12))
        log._failed = LogFailedError("abandoned, as a SIGKILL would leave it")  # no checkpoint on close
    path = sorted(directory.glob("*.log"))[-1]
    data = bytearray(path.read_bytes())
    starts = [position for position, _ in batch_spans(data)]
    assert len(starts) == len(acked), "one segment"
    data[starts[victim] + read_header(data, starts[victim]).length - 1] ^= 0xFF
    path.write_bytes(bytes(data))
    old_mark = read_mark(directory)
    assert old_mark is not None and old_mark.position == logical_end(data)
    return acked, starts, path


def test_the_operators_cut_makes_its_mark_durable_so_a_power_cut_cannot_bring_the_old_one_back(
    tmp_path: Path,
) -> None:
    """Without the synced mark, the older one (past the cut) would survive: the cut, reported as lost data."""
    directory, victim = tmp_path / "log", 8
    acked, starts, path = damage_an_acknowledged_batch(directory, victim)
    fs = FaultyFileSystem(lose_unsynced=True)
    log = PartitionLog(str(directory), CONFIG, fs=fs)
    assert log.corruption is not None and log.corruption.offset == acked[victim][1]
    assert log.truncate_corrupt() == acked[victim][1]
    fs.power_cut()
    del log
    assert read_mark(directory) == durable_mark.DurableMark(0, starts[victim], acked[victim][1])
    with PartitionLog(str(directory), CONFIG) as reopened:
        assert reopened.corruption is None
        assert reopened.end_offset == acked[victim][1]
        assert [base for base, _ in read_batches(reopened)] == [base for _, base in acked[:victim]]
    assert os.path.getsize(path) == starts[victim]


def test_no_room_for_the_operators_mark_cuts_nothing_and_the_cut_works_once_space_returns(
    tmp_path: Path,
) -> None:
    directory, victim = tmp_path / "log", 5
    acked, starts, path = damage_an_acknowledged_batch(directory, victim)
    damaged = path.read_bytes()
    fs = FaultyFileSystem()
    with PartitionLog(str(directory), CONFIG, fs=fs) as log:
        fs.fill(after=0)
        with pytest.raises(DiskFullError, match="durable mark"):
            log.truncate_corrupt()
        assert path.read_bytes() == damaged and log.failed is None
        fs.refill()
        assert log.truncate_corrupt() == acked[victim][1]
    assert os.path.getsize(path) == starts[victim]
