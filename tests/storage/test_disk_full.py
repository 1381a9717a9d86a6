"""A full disk and a failing disk: what the log promises (see ``tidings.storage.log``, Failure).

* ENOSPC, even after part of the batch reached the disk: the append raises
  ``DiskFullError`` and is rolled back (no byte stays, no offset is used),
  reads go on, and appends work again once space returns, without reopening.
* EIO on fsync or on a write: the log fails (``LogFailedError``) and accepts no
  more writes, since a failed fsync may have dropped pages; what was durable
  still reads, and reopening recovers.

The fault-injecting ``FaultyFileSystem`` makes these exact; the last test
does it again on a real 2 MiB tmpfs when the test may mount one.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.storage.appender import append_all, assert_is_batch, batch_for, logical_end, read_batches
from tidings.errors import DiskFullError, LogFailedError
from tidings.records import read_header
from tidings.storage import LogConfig, PartitionLog
from tidings.storage.faults import FaultyFileSystem

CONFIG = LogConfig(max_segment_bytes=16 * 1024, index_interval_bytes=512)
BIG = next(number for number in range(100, 1000) if len(batch_for(number)) > 1000)


def assert_serves(log: PartitionLog, expected: list[tuple[int, int]]) -> None:
    stored = read_batches(log)
    assert [base for base, _ in stored] == [base for _, base in expected]
    for (base, data), (number, _) in zip(stored, expected, strict=True):
        assert_is_batch(bytes(data), number, base)


def log_files(directory: Path) -> dict[str, bytes]:
    """The batches of each .log: preallocated zeros after them are room, whether there or cut."""
    files = {}
    for path in sorted(directory.glob("*.log")):
        data = path.read_bytes()
        end = logical_end(data)
        assert not data[end:].strip(b"\0"), f"{path.name}: junk after the last batch"
        files[path.name] = data[:end]
    return files


def end_of(placed: list[tuple[int, int]]) -> int:
    number, base = placed[-1]
    return base + read_header(batch_for(number)).record_count


def assert_reopens_with(directory: Path, expected: list[tuple[int, int]]) -> None:
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.corruption is None
        assert log.recovery.truncated_bytes == 0
        assert_serves(log, expected)


# -- ENOSPC --------------------------------------------------------------------------


@pytest.mark.parametrize("fits", [0, 1, 24, 64, 65, 500], ids=lambda n: f"{n}-bytes-fit")
def test_a_full_disk_rolls_the_append_back_and_appends_resume_when_space_returns(
    tmp_path: Path, fits: int
) -> None:
    fs = FaultyFileSystem()
    with PartitionLog(str(tmp_path), CONFIG, fs=fs) as log:
        placed = append_all(log, range(5))
        end, before = log.end_offset, log_files(tmp_path)
        assert log.segments[-1].size + len(batch_for(BIG)) < CONFIG.max_segment_bytes  # no roll here

        fs.fill(after=fits)
        written = fs.written
        with pytest.raises(DiskFullError, match="no space left") as caught:
            log.append(batch_for(BIG))
        assert f"offset {end}" in str(caught.value)
        assert fs.written - written == fits, "part of the batch did reach the file"
        assert log_files(tmp_path) == before, "the partial write was cut off"
        assert (log.end_offset, log.durable_offset, log.failed) == (end, end, None)
        assert_serves(log, placed)
        with pytest.raises(DiskFullError):  # still full: still refused, still nothing used
            log.append(batch_for(BIG))
        assert log.end_offset == end
        log.commit(end - 1)  # what was durable stays committed

        fs.refill()
        placed += append_all(log, [BIG])
        assert placed[-1][1] == end, "the failed appends used no offset"
        placed += append_all(log, range(5, 40))  # and rolls work again
        assert len(log.segments) > 1
        assert_serves(log, placed)
    assert_reopens_with(tmp_path, placed)


def test_a_log_closed_and_reopened_on_a_full_disk_loses_nothing(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    placed = append_all(log, range(30))
    fs.fill(after=10)
    with pytest.raises(DiskFullError):
        log.append(batch_for(BIG))
    log.close()  # seal and checkpoint may not fit: the data is synced, the log closes
    with PartitionLog(str(tmp_path), CONFIG, fs=fs) as log:  # the disk is still full
        assert log.corruption is None
        assert_serves(log, placed)
        with pytest.raises(DiskFullError):
            log.append(batch_for(BIG))
        fs.refill()
        placed += append_all(log, [BIG])
    assert_reopens_with(tmp_path, placed)


@pytest.mark.parametrize("fits", [0, 5, 8, 100])
def test_a_full_disk_while_rolling_is_a_full_disk_too(tmp_path: Path, fits: int) -> None:
    fs = FaultyFileSystem()
    with PartitionLog(str(tmp_path), CONFIG, fs=fs) as log:
        placed = append_all(log, range(5))
        while log.segments[-1].size + len(batch_for(BIG)) <= CONFIG.max_segment_bytes:
            placed += append_all(log, [BIG])
        end, segments = log.end_offset, len(log.segments)
        fs.fill(after=fits)  # the roll must seal the segment: index and checkpoint writes
        with pytest.raises(DiskFullError):
            log.append(batch_for(BIG))
        assert (log.end_offset, log.failed) == (end, None)
        assert_serves(log, placed)
        fs.refill()
        placed += append_all(log, [BIG, BIG])
        assert len(log.segments) == segments + 1
        assert_serves(log, placed)
    assert_reopens_with(tmp_path, placed)


def test_a_full_disk_at_a_checkpoint_does_not_fail_a_durable_commit(tmp_path: Path) -> None:
    config = LogConfig(index_interval_bytes=512, checkpoint_interval_bytes=4096)
    fs = FaultyFileSystem()
    with PartitionLog(str(tmp_path), config, fs=fs) as log:
        placed = append_all(log, range(3))
        committed = log.size
        result = log.append(batch_for(BIG))
        while log.size - committed < 2 * config.checkpoint_interval_bytes:
            placed.append((BIG, result.base_offset))
            result = log.append(batch_for(BIG))
        fs.fill(after=0)  # the fsync needs no space; the checkpoint and its index flush do
        log.commit(result.last_offset)
        # The checkpoint and the durable mark met the full disk: both only cost recovery time.
        assert fs.refused == 2, fs
        placed.append((BIG, result.base_offset))
        assert log.durable_offset == log.end_offset
        assert log.failed is None
        fs.refill()
        placed += append_all(log, range(3, 6))
    assert_reopens_with(tmp_path, placed)


# -- EIO -----------------------------------------------------------------------------


def test_a_failed_fsync_fails_the_log_and_reopening_recovers(tmp_path: Path) -> None:
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), CONFIG, fs=fs)
    placed = append_all(log, range(5))
    durable = log.durable_offset
    result = log.append(batch_for(50))
    fs.fail_syncs(suffix=".log")
    with pytest.raises(LogFailedError, match="fsync"):
        log.commit(result.last_offset)
    assert log.failed is not None
    assert log.durable_offset == durable, "nothing past the failed fsync counts as durable"
    # The disk answers again, but a retried fsync could report success for dropped pages.
    with pytest.raises(LogFailedError):
        log.commit(result.last_offset)
    with pytest.raises(LogFailedError):
        log.append(batch_for(51))
    assert_serves(log, placed)  # what was durable still reads
    log.close()

    with PartitionLog(str(tmp_path), CONFIG) as log:
        assert log.corruption is None
        stored = read_batches(log)
        assert len(stored) in (len(placed), len(placed) + 1)  # the unsynced batch may have survived
        if len(stored) > len(placed):
            assert_is_batch(bytes(stored[-1][1]), 50, result.base_offset)
            placed.append((50, result.base_offset))
        assert_serves(log, placed)
        placed += append_all(log, [52])
    assert_reopens_with(tmp_path, placed)


@pytest.mark.parametrize("suffix", [".log", ".index", "recovery-checkpoint.tmp"])
def test_a_failed_write_fails_the_log_and_reopening_recovers(tmp_path: Path, suffix: str) -> None:
    """A .log write fails in append; an index or checkpoint write in a commit, after the fsync."""
    config = LogConfig(index_interval_bytes=512, checkpoint_interval_bytes=2048)
    fs = FaultyFileSystem()
    log = PartitionLog(str(tmp_path), config, fs=fs)
    placed = append_all(log, range(5))
    fs.fail_writes(errno.EIO, suffix=suffix)
    attempted = -1
    with pytest.raises(LogFailedError):
        for attempted in range(100, 200):  # until a write to a ``suffix`` file fails
            placed += append_all(log, [attempted])
    assert fs.write_fault.count == 0
    assert log.failed is not None
    with pytest.raises(LogFailedError):
        log.append(batch_for(7))
    assert_serves_at_least(log, placed, attempted)
    log.close()
    with PartitionLog(str(tmp_path), config) as log:
        assert log.corruption is None
        placed = assert_serves_at_least(log, placed, attempted)
        placed += append_all(log, [300])
    assert_reopens_with(tmp_path, placed)


def assert_serves_at_least(
    log: PartitionLog, placed: list[tuple[int, int]], attempted: int
) -> list[tuple[int, int]]:
    """``placed``, and perhaps the batch whose commit failed after its fsync; returns what is served."""
    stored = read_batches(log)
    if len(stored) == len(placed) + 1:
        placed = [*placed, (attempted, stored[-1][0])]
    assert_serves(log, placed)
    return placed


# -- a real full file system ---------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, mounted for the test and unmounted after it."""
    if os.geteuid() != 0:
        pytest.skip("mounting a 2 MiB tmpfs needs root; the FaultyFileSystem tests cover the behaviour")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
            "the FaultyFileSystem tests cover the behaviour"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_a_real_full_file_system(small_disk: Path) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (1 << 20))
    directory = small_disk / "log"
    config = LogConfig(max_segment_bytes=128 * 1024, index_interval_bytes=512)
    with PartitionLog(str(directory), config) as log:
        placed: list[tuple[int, int]] = []
        number = -1
        with pytest.raises(DiskFullError, match="no space left"):
            for number in range(10_000):
                placed += append_all(log, [number])
        assert 100 < len(placed) < 10_000
        end = log.end_offset
        assert end == end_of(placed)
        on_disk = sum(path.stat().st_size for path in directory.glob("*.log"))
        assert on_disk == log.size, "the partial write was cut off"
        assert_serves(log, placed)
        with pytest.raises(DiskFullError):  # the same batch: the same lack of room
            log.append(batch_for(number))
        assert log.end_offset == end

        filler.unlink()  # space returns
        placed += append_all(log, range(20_000, 20_050))
        assert placed[-50][1] == end, "the failed appends used no offset"
        assert_serves(log, placed)

    assert_reopens_with(directory, placed)
    # Full again, then closed and reopened while full.
    with PartitionLog(str(directory), config) as log, pytest.raises(DiskFullError):
        for number in range(30_000, 40_000):
            placed += append_all(log, [number])
    assert_reopens_with(directory, placed)
