"""The pure policy functions of ``storage.retention``: rolling, retention and interval fsync."""

import os

import pytest

from tidings.errors import OffsetOutOfRangeError
from tidings.records import build_batch
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog, RetentionPolicy, RollParams, SegmentInfo
from tidings.storage.retention import MAX_RELATIVE, segments_to_delete, should_roll, sync_due

DAY = 24 * 3600 * 1000


def segment(base=0, next_offset=10, size=1_000, first=1_000, newest=2_000):
    return SegmentInfo(base, next_offset, size, first, newest)


def roll(info, *, batch_size=100, batch_records=1, now=2_000, max_bytes=10_000, max_ms=DAY):
    return should_roll(RollParams(info, batch_size, batch_records, now, max_bytes, max_ms))


# -- should_roll -----------------------------------------------------------------------


def test_no_roll_while_the_batch_fits():
    assert not roll(segment(size=1_000), batch_size=9_000, max_bytes=10_000)


def test_roll_by_size_when_the_batch_would_not_fit():
    assert roll(segment(size=1_000), batch_size=9_001, max_bytes=10_000)


def test_an_empty_segment_never_rolls():
    empty = SegmentInfo(0, 0, 0, -1, -1)
    assert not roll(empty, batch_size=50_000, max_bytes=10_000)  # bigger than a whole segment
    assert not roll(empty, now=10 * DAY, max_ms=1)
    assert not roll(empty, batch_size=2**32, batch_records=2**32 + 5)


def test_roll_by_age_of_the_first_batch():
    info = segment(first=1_000, newest=5_000)
    assert not roll(info, now=1_000 + DAY - 1)
    assert roll(info, now=1_000 + DAY)
    assert roll(info, now=1_000 + 10 * DAY)


def test_no_roll_by_age_without_a_first_append_time():
    assert not roll(segment(first=-1), now=10 * DAY)


def test_roll_before_a_position_would_overflow_uint32():
    # the segment limit itself is set above what the index can address
    near = segment(size=MAX_RELATIVE - 100)
    assert not roll(near, batch_size=100, max_bytes=2**40)
    assert roll(near, batch_size=101, max_bytes=2**40)


def test_roll_before_a_relative_offset_would_overflow_uint32():
    base = 1_000_000
    # the last record of the batch gets relative offset MAX_RELATIVE: still addressable
    info = SegmentInfo(base, base + MAX_RELATIVE - 9, 1_000, 1_000, 1_000)
    assert not roll(info, batch_records=10)
    assert roll(info, batch_records=11)


# -- segments_to_delete ----------------------------------------------------------------


def log_of(*specs):
    """Contiguous segments from (size, newest append time) pairs; the last is the active one."""
    segments, base = [], 0
    for size, newest in specs:
        segments.append(SegmentInfo(base, base + 10, size, newest - 1, newest))
        base += 10
    return segments


def test_keep_forever_by_default():
    segments = log_of((100, 1), (100, 2), (100, 3))
    assert segments_to_delete(segments, RetentionPolicy(), now=10**12) == []


def test_delete_by_age():
    segments = log_of((100, 1_000), (100, 2_000), (100, 3_000), (100, 4_000))
    policy = RetentionPolicy(max_age_ms=1_000)
    # strictly older than max_age_ms
    assert segments_to_delete(segments, policy, now=2_000) == []
    assert segments_to_delete(segments, policy, now=2_001) == segments[:1]
    assert segments_to_delete(segments, policy, now=3_500) == segments[:2]


def test_age_never_deletes_the_active_segment():
    segments = log_of((100, 1_000), (100, 2_000))
    assert segments_to_delete(segments, RetentionPolicy(max_age_ms=1), now=10**9) == segments[:1]
    only = log_of((100, 1_000))
    assert segments_to_delete(only, RetentionPolicy(max_age_ms=1, max_bytes=1), now=10**9) == []


def test_delete_by_bytes_while_the_rest_still_holds_max_bytes():
    segments = log_of((100, 1), (100, 2), (100, 3), (50, 4))  # 350 bytes
    assert segments_to_delete(segments, RetentionPolicy(max_bytes=350), now=0) == []
    assert segments_to_delete(segments, RetentionPolicy(max_bytes=250), now=0) == segments[:1]
    assert segments_to_delete(segments, RetentionPolicy(max_bytes=251), now=0) == []
    assert segments_to_delete(segments, RetentionPolicy(max_bytes=150), now=0) == segments[:2]
    # even max_bytes=1 keeps the active segment
    assert segments_to_delete(segments, RetentionPolicy(max_bytes=1), now=0) == segments[:3]


def test_deletion_stops_at_the_first_kept_segment():
    # The second segment is recent, the third old (a clock step): nothing after a kept one goes.
    segments = log_of((100, 1_000), (100, 9_000), (100, 1_500), (100, 9_500))
    assert segments_to_delete(segments, RetentionPolicy(max_age_ms=1_000), now=9_100) == segments[:1]


def test_either_rule_deletes():
    segments = log_of((100, 9_000), (100, 1_000), (100, 9_000), (10, 9_500))
    policy = RetentionPolicy(max_age_ms=3_000, max_bytes=200)
    # segment 0 goes by size only (310 - 100 >= 200), segment 1 by age only, segment 2 by neither
    assert segments_to_delete(segments, policy, now=9_100) == segments[:2]


def test_empty_input_and_a_single_segment():
    assert segments_to_delete([], RetentionPolicy(max_bytes=1), now=0) == []


# -- sync_due --------------------------------------------------------------------------


def test_sync_due_only_when_interval_elapsed_and_something_unsynced():
    policy = FsyncPolicy.parse("interval:100")
    assert not sync_due(policy, last_sync_ms=1_000, now_ms=1_099, unsynced=True)
    assert sync_due(policy, last_sync_ms=1_000, now_ms=1_100, unsynced=True)
    assert not sync_due(policy, last_sync_ms=1_000, now_ms=5_000, unsynced=False)


@pytest.mark.parametrize("text", ["always", "never"])
def test_sync_never_due_without_an_interval(text):
    assert not sync_due(FsyncPolicy.parse(text), last_sync_ms=0, now_ms=10**12, unsynced=True)


# -- retention applied by the log --------------------------------------------------------


class Clock:
    def __init__(self, now: int = 0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def filled_log(path, clock, retention, count=6):
    """``count`` one-batch segments of one record each, appended 1000 ms apart."""
    one = build_batch([b"x" * 100], timestamp=1)
    log = PartitionLog(
        str(path),
        LogConfig(fsync=FsyncPolicy.parse("never"), retention=retention, max_segment_bytes=len(one)),
        clock=clock,
    )
    for _ in range(count):
        log.append(one)
        clock.now += 1_000
    return log, len(one)


def test_log_retention_by_age_deletes_whole_sealed_segments(tmp_path):
    clock = Clock(0)  # appends at 0, 1000, ... 5000
    log, size = filled_log(tmp_path, clock, RetentionPolicy(max_age_ms=2_500))
    with log:
        assert log.apply_retention(now=2_500) == []
        deleted = log.apply_retention(now=4_600)  # 0, 1000 and 2000 are more than 2500 ms old
        assert [info.base_offset for info in deleted] == [0, 1, 2]
        assert log.start_offset == 3 and log.end_offset == 6
        assert log.size == 3 * size
        assert sorted(os.listdir(tmp_path)) == sorted(
            [f"{base:020d}{suffix}" for base in (3, 4, 5) for suffix in (".log", ".index", ".timeindex")]
            + ["recovery-checkpoint"]
        )
        with pytest.raises(OffsetOutOfRangeError, match="offset 2 is outside"):
            log.read(2)
        assert log.read(3).first_offset == 3
        assert log.offset_for_time(0) == 3  # before everything still kept
        # the active segment stays, however old
        assert [info.base_offset for info in log.apply_retention(now=10**9)] == [3, 4]
        assert log.start_offset == 5 and log.read(5).record_count == 1


def test_log_retention_by_bytes(tmp_path):
    clock = Clock(0)
    size = len(build_batch([b"x" * 100], timestamp=1))
    log, _ = filled_log(tmp_path, clock, RetentionPolicy(max_bytes=2 * size))
    with log:
        deleted = log.apply_retention()
        assert [info.base_offset for info in deleted] == [0, 1, 2, 3]
        assert (log.start_offset, log.size) == (4, 2 * size)
    with PartitionLog(str(tmp_path), LogConfig(fsync=FsyncPolicy.parse("never"))) as again:
        assert (again.start_offset, again.end_offset) == (4, 6)
        assert [again.read(offset).next_offset for offset in (4, 5)] == [5, 6]  # a read stays in one segment
        with pytest.raises(OffsetOutOfRangeError):
            again.read(0)
