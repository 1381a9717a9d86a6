"""Segments through the log: rolling by size and age, the sparse indexes, ``offset_for_time``."""

import os

import pytest

from tidings.records import build_batch, read_header
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog
from tidings.storage.index import OFFSET_ENTRY, TIME_ENTRY


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def batch(*values: bytes) -> bytes:
    return build_batch(list(values), timestamp=42)


def open_log(path, clock, **config) -> PartitionLog:
    return PartitionLog(str(path), LogConfig(fsync=FsyncPolicy.parse("never"), **config), clock=clock)


def segment_files(path) -> list[str]:
    return sorted(name for name in os.listdir(path) if name.endswith(".log"))


# -- rolling ------------------------------------------------------------------------------


def test_roll_by_size(tmp_path):
    size = len(batch(b"x" * 50))
    with open_log(tmp_path, Clock(), max_segment_bytes=2 * size + 10) as log:
        for _ in range(5):
            log.append(batch(b"x" * 50))
        assert [(s.base_offset, s.next_offset, s.size) for s in log.segments] == [
            (0, 2, 2 * size),
            (2, 4, 2 * size),
            (4, 5, size),
        ]
    assert segment_files(tmp_path) == [f"{base:020d}.log" for base in (0, 2, 4)]
    assert [os.path.getsize(tmp_path / name) for name in segment_files(tmp_path)] == [
        2 * size,
        2 * size,
        size,
    ]


def test_a_batch_bigger_than_a_segment_gets_one_of_its_own(tmp_path):
    with open_log(tmp_path, Clock(), max_segment_bytes=100) as log:
        log.append(batch(b"x" * 500))
        log.append(batch(b"y" * 500))
        log.append(batch(b"z"))
        assert [(s.base_offset, s.next_offset) for s in log.segments] == [(0, 1), (1, 2), (2, 3)]


def test_roll_by_age_of_the_first_batch(tmp_path):
    clock = Clock(10_000)
    with open_log(tmp_path, clock, max_segment_ms=1_000) as log:
        log.append(batch(b"a"))
        clock.now = 10_999
        log.append(batch(b"b"))
        assert len(log.segments) == 1
        clock.now = 11_000
        log.append(batch(b"c"))
        clock.now = 11_500
        log.append(batch(b"d"))
        assert [(s.base_offset, s.first_append_time, s.max_append_time) for s in log.segments] == [
            (0, 10_000, 10_999),
            (2, 11_000, 11_500),
        ]


def test_roll_by_age_survives_a_reopen(tmp_path):
    clock = Clock(10_000)
    with open_log(tmp_path, clock, max_segment_ms=1_000) as log:
        log.append(batch(b"a"))
    clock.now = 11_000
    with open_log(tmp_path, clock, max_segment_ms=1_000) as log:
        assert log.segments[0].first_append_time == 10_000
        log.append(batch(b"b"))
        assert [s.base_offset for s in log.segments] == [0, 1]


def test_an_empty_log_does_not_roll_by_age(tmp_path):
    clock = Clock(0)
    with open_log(tmp_path, clock, max_segment_ms=1) as log:
        clock.now = 10_000
        log.append(batch(b"a"))
        assert len(log.segments) == 1


# -- indexes ------------------------------------------------------------------------------


def test_index_files_point_at_the_batches_they_name(tmp_path):
    clock = Clock(5_000)
    with open_log(tmp_path, clock, index_interval_bytes=300, max_segment_bytes=5_000) as log:
        for number in range(60):
            clock.now += number % 2
            log.append(batch(*[b"v" * 20] * (number % 3 + 1)))
        assert len(log.segments) > 1
    for name in segment_files(tmp_path):
        base = int(name.removesuffix(".log"))
        data = (tmp_path / name).read_bytes()
        offsets = list(OFFSET_ENTRY.iter_unpack((tmp_path / f"{base:020d}.index").read_bytes()))
        times = list(TIME_ENTRY.iter_unpack((tmp_path / f"{base:020d}.timeindex").read_bytes()))
        assert offsets, "an index entry every 300 bytes"
        for relative, position in offsets:
            assert read_header(data, position).base_offset == base + relative
        positions = {}
        position = 0
        while position < len(data):
            header = read_header(data, position)
            positions[header.base_offset] = header
            position += header.length
        for append_time, relative in times:
            assert positions[base + relative].append_time == append_time
        # sealed: the last time entry is the segment's newest append time
        assert times[-1][0] == max(header.append_time for header in positions.values())
        assert [t for t, _ in times] == sorted({t for t, _ in times})


# -- offset_for_time ----------------------------------------------------------------------


def expected_offset_for_time(appended, timestamp, end):
    """The first offset of a batch appended at or after ``timestamp`` (brute force)."""
    return next((base for base, append_time in appended if append_time >= timestamp), end)


@pytest.mark.parametrize("index_interval_bytes", [1, 250, 4096])
def test_offset_for_time_against_brute_force(tmp_path, index_interval_bytes):
    clock = Clock(1_000)
    appended = []
    config = {"index_interval_bytes": index_interval_bytes, "max_segment_bytes": 1_200}
    log = open_log(tmp_path, clock, **config)
    steps = [0, 0, 0, 0, 1, 0, 5, 0, 0, 1, 1, 100, 0, -50, 0, 3, 0, 0, 0, 0, 0, 2, 7, 0, 0]
    for number, step in enumerate(steps * 3):
        clock.now += step  # many batches in one ms, and a clock that steps back
        result = log.append(batch(*[b"x" * 30] * (number % 3 + 1)))
        appended.append((result.base_offset, result.append_time))
    assert len(log.segments) > 3
    times = range(appended[0][1] - 3, appended[-1][1] + 3)
    want = [expected_offset_for_time(appended, t, log.end_offset) for t in times]
    assert [log.offset_for_time(t) for t in times] == want
    log.close()
    # same answers from indexes loaded back from their files
    with open_log(tmp_path, clock, **config) as again:
        assert [again.offset_for_time(t) for t in times] == want


def test_offset_for_time_at_batch_boundaries_and_beyond(tmp_path):
    clock = Clock(100)
    with open_log(tmp_path, clock, max_segment_bytes=200) as log:
        for now in (100, 100, 200, 300, 300):
            clock.now = now
            log.append(batch(b"x" * 40))  # one batch a segment
        assert len(log.segments) == 5
        assert log.offset_for_time(-(2**62)) == 0  # before the first
        assert log.offset_for_time(100) == 0
        assert log.offset_for_time(101) == 2
        assert log.offset_for_time(200) == 2
        assert log.offset_for_time(201) == 3
        assert log.offset_for_time(300) == 3
        assert log.offset_for_time(301) == 5 == log.end_offset  # after the last


def test_offset_for_time_with_an_empty_active_segment(tmp_path):
    # A crash right after a roll leaves an empty last segment.
    clock = Clock(100)
    with open_log(tmp_path, clock) as log:
        log.append(batch(b"a"))
        clock.now = 200
        log.append(batch(b"b"))
    (tmp_path / f"{2:020d}.log").write_bytes(b"")
    with open_log(tmp_path, clock) as log:
        assert [s.size == 0 for s in log.segments] == [False, True]
        assert [log.offset_for_time(t) for t in (99, 100, 101, 200, 201)] == [0, 0, 1, 1, 2]
