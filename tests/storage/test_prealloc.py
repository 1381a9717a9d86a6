"""Zero-filled preallocation of the active segment (``PartitionLog.preallocate``).

The file runs past the segment's end into zeros the log wrote and fsynced;
these tests check that nothing reads that room as data, that seals and clean
closes cut it, that recovery trims it without calling it a tear, and that a
full disk while zero-filling fails no append and no commit.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.storage.appender import append_all, batch_for, batch_spans, logical_end, read_batches
from tidings.errors import DiskFullError, LogFailedError
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog, RetentionPolicy
from tidings.storage.faults import FaultyFileSystem

STEP = 64 * 1024
CONFIG = LogConfig(max_segment_bytes=1 << 20, index_interval_bytes=512, prealloc_bytes=STEP)


def only_log(directory: Path) -> Path:
    (path,) = sorted(directory.glob("*.log"))
    return path


def ids(log: PartitionLog) -> list[int]:
    return [base for base, _ in read_batches(log)]


def drain_room(log: PartitionLog, placed: list[tuple[int, int]]) -> None:
    """Append and commit without topping up until less than a step of room is left."""
    while log._active.room >= STEP:
        number = 100 + len(placed)
        result = log.append(batch_for(number))
        log.commit(result.last_offset, preallocate=False)
        placed.append((number, result.base_offset))


def abandon(log: PartitionLog) -> None:
    """Leave the files as a SIGKILL would: no seal, no checkpoint, no cut of the room."""
    log._failed = LogFailedError("abandoned, as a SIGKILL would leave it")
    log.close()


def test_commits_keep_zeroed_synced_room_ahead_and_reads_never_see_it(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    placed = append_all(log, range(20))
    segment = log._active
    assert segment.room >= STEP, "topped up once less than a step was left"
    data = only_log(tmp_path).read_bytes()
    assert len(data) == segment.prealloc_end > log.size == logical_end(data)
    assert not data[log.size :].strip(b"\0")
    assert [base for _, base in placed] == ids(log)
    assert log.segments[-1].size == log.size  # segment info is the logical size, not the file's
    log.close()
    assert only_log(tmp_path).stat().st_size == log.size, "a clean close cuts the room"


def test_off_means_the_file_is_exactly_its_batches(tmp_path: Path) -> None:
    with PartitionLog(str(tmp_path), LogConfig(prealloc_bytes=0)) as log:
        append_all(log, range(10))
        assert only_log(tmp_path).stat().st_size == log.size
        assert log.preallocate() == 0


def test_only_fsync_always_preallocates(tmp_path: Path) -> None:
    for fsync in ("never", "interval:1000"):
        config = LogConfig(fsync=FsyncPolicy.parse(fsync), prealloc_bytes=STEP)
        with PartitionLog(str(tmp_path / fsync), config) as log:
            append_all(log, range(5))
            assert log.preallocate() == 0
            assert only_log(tmp_path / fsync).stat().st_size == log.size


def test_a_roll_cuts_the_sealed_segment_to_its_batches_and_the_room_never_passes_max_segment(
    tmp_path: Path,
) -> None:
    config = LogConfig(max_segment_bytes=24 * 1024, index_interval_bytes=512, prealloc_bytes=STEP)
    with PartitionLog(str(tmp_path), config) as log:
        placed = append_all(log, range(120))
        assert len(log.segments) > 2
        files = sorted(tmp_path.glob("*.log"))
        for path, info in zip(files[:-1], log.segments[:-1], strict=True):
            assert path.stat().st_size == info.size, f"{path.name} is sealed: exact"
        assert files[-1].stat().st_size <= config.max_segment_bytes
        assert ids(log) == [base for _, base in placed]
    with PartitionLog(str(tmp_path), config) as log:
        assert log.recovery.preallocated_bytes == log.recovery.truncated_bytes == 0
        assert ids(log) == [base for _, base in placed]


def test_a_crash_leaves_zeros_that_recovery_trims_without_a_tear_and_appends_go_on_there(
    tmp_path: Path,
) -> None:
    log = PartitionLog(str(tmp_path), CONFIG)
    placed = append_all(log, range(30))
    end, size = log.end_offset, log.size
    abandon(log)
    path = only_log(tmp_path)
    assert path.stat().st_size > size, "the room is there, as a kill -9 leaves it"
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.corruption is None
        assert log.recovery.truncated_bytes == 0, "zeros are not a torn write"
        assert log.recovery.preallocated_bytes > 0
        assert path.stat().st_size == size
        assert (log.end_offset, log.size) == (end, size)
        placed += append_all(log, range(30, 40))  # appends go on right after the last batch
        assert ids(log) == [base for _, base in placed]
        abandon_size = log.size
        abandon(log)
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.size == abandon_size
        assert ids(log) == [base for _, base in placed]
        assert logical_end(only_log(tmp_path).read_bytes()) == log.size


def test_a_torn_write_followed_by_zeros_is_cut_as_a_tear_and_the_zeros_as_room(tmp_path: Path) -> None:
    log = PartitionLog(str(tmp_path), CONFIG)
    placed = append_all(log, range(10))
    size = log.size
    log.append(batch_for(99))  # written, never committed: above the durable mark
    abandon(log)
    path = only_log(tmp_path)
    data = bytearray(path.read_bytes())
    (start, length) = batch_spans(data)[-1]
    assert start == size and len(data) > start + length
    torn = data[start : start + length // 2]
    data[start:] = bytes(len(data) - start)
    data[start : start + len(torn)] = torn  # the first half reached the disk, then zeros
    path.write_bytes(bytes(data))
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.corruption is None
        assert 0 < log.recovery.truncated_bytes <= len(torn)
        assert log.recovery.truncated_bytes + log.recovery.preallocated_bytes == len(data) - size
        assert path.stat().st_size == size
        assert ids(log) == [base for _, base in placed]


@pytest.mark.parametrize("where", [0, 1, 27, 1000, -1])
def test_a_flip_in_the_room_is_cut_as_a_tear_never_served(tmp_path: Path, where: int) -> None:
    log = PartitionLog(str(tmp_path), CONFIG)
    placed = append_all(log, range(10))
    size = log.size
    abandon(log)
    path = only_log(tmp_path)
    data = bytearray(path.read_bytes())
    position = size + where if where >= 0 else len(data) - 1
    data[position] ^= 0x40
    path.write_bytes(bytes(data))
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.corruption is None, "nothing acknowledged is there"
        assert log.recovery.truncated_bytes == position + 1 - size
        assert path.stat().st_size == size
        assert ids(log) == [base for _, base in placed]


def test_zeros_where_the_mark_says_batches_were_synced_are_corruption_and_nothing_is_cut(
    tmp_path: Path,
) -> None:
    log = PartitionLog(str(tmp_path), LogConfig(index_interval_bytes=512, prealloc_bytes=STEP,
                                                checkpoint_interval_bytes=1 << 30))  # fmt: skip
    placed = append_all(log, range(10))
    abandon(log)
    path = only_log(tmp_path)
    data = bytearray(path.read_bytes())
    start, _ = batch_spans(data)[-1]
    data[start:] = bytes(len(data) - start)  # the acknowledged last batch reads as room
    path.write_bytes(bytes(data))
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.corruption is not None and log.corruption.offset == placed[-1][1]
        assert "synced data missing" in log.corruption.reason
        assert path.stat().st_size == len(data), "nothing is cut"
        log.truncate_corrupt()
        assert path.stat().st_size == start


def test_a_full_disk_while_zero_filling_fails_no_commit_and_what_fit_is_room(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    placed = append_all(log, range(2))
    segment = log._active
    drain_room(log, placed)
    result = log.append(batch_for(7000))
    fs.fill(after=STEP // 4)  # the commit's fsync needs no space; the zeros meet ENOSPC part-way
    fs.free_space = lambda path: 1 << 30  # type: ignore[method-assign]  # a disk that misreports
    log.commit(result.last_offset)
    placed.append((7000, result.base_offset))
    assert log.failed is None and log.durable_offset == log.end_offset
    assert fs.refused >= 1
    assert segment.prealloc_end == only_log(tmp_path).stat().st_size, "what fit is room, and known"
    del fs.free_space
    fs.refill()
    placed += append_all(log, range(8000, 8010))
    assert ids(log) == [base for _, base in placed]
    log.close()
    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.recovery.truncated_bytes == 0
        assert ids(log) == [base for _, base in placed]


def test_a_nearly_full_disk_gets_no_zeros_and_a_full_one_still_fails_the_append_cleanly(
    tmp_path: Path,
) -> None:
    fs = FaultyFileSystem()
    with PartitionLog(str(tmp_path), CONFIG, fs=fs) as log:
        placed = append_all(log, range(3))
        log._active.file.truncate(log.size)  # forget the room, as a rolled-back append does
        log._active.prealloc_end = log.size
        fs.fill(after=7 * STEP)  # an eighth of it is less than a step's floor
        placed += append_all(log, range(3, 5))
        assert log._active.room == 0, "no zeros on a nearly full disk"
        fs.fill(after=0)
        with pytest.raises(DiskFullError):
            log.append(batch_for(BIG := 500))
        fs.refill()
        placed += append_all(log, [BIG])
        assert log._active.room >= STEP, "space came back: so does the room"
        assert ids(log) == [base for _, base in placed]


def test_eio_while_zero_filling_fails_the_log_but_not_the_commit_that_was_durable(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    placed = append_all(log, range(2))
    drain_room(log, placed)
    result = log.append(batch_for(900))
    log.commit(result.last_offset, preallocate=False)
    fs.fail_syncs(suffix=".log")
    assert log.preallocate() > 0
    assert log.failed is not None, "the zeros' fsync failed: no later fsync may be trusted"
    assert log.durable_offset == result.last_offset + 1
    with pytest.raises(LogFailedError):
        log.commit(result.last_offset + 1)
    log.close()
    with PartitionLog(str(tmp_path), CONFIG) as reopened:
        assert reopened.corruption is None
        assert len(ids(reopened)) >= len(placed)


def test_retention_by_bytes_counts_batches_not_room(tmp_path: Path) -> None:
    config = LogConfig(
        max_segment_bytes=16 * 1024,
        index_interval_bytes=512,
        prealloc_bytes=STEP,
        retention=RetentionPolicy(max_bytes=40 * 1024),
    )
    with PartitionLog(str(tmp_path), config) as log:
        append_all(log, range(200))
        log.apply_retention()
        on_disk = sum(path.stat().st_size for path in tmp_path.glob("*.log"))
        assert log.size >= 40 * 1024
        assert log.size - log.segments[0].size < 40 * 1024, "nothing kept past what the bytes need"
        assert on_disk == log.size + log._active.room
        assert os.path.getsize(sorted(tmp_path.glob("*.log"))[-1]) == log._active.prealloc_end
