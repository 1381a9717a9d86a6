"""The engine over real partition logs on disk, through a minimal PartitionSource adapter.

The memory source imitates the log; this checks the engine against the
real thing (its reads, its ``offset_for_time``, its retention), so the two
cannot drift apart unnoticed.
"""

from __future__ import annotations

import pytest

from tidings.core.groups import GroupEngine, MemberInfo
from tidings.protocol.ranges import partition_ranges
from tidings.protocol.values import AtTime, Earliest, GroupMode
from tidings.records import build_batch, check_batch
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog, ReadResult, RetentionPolicy

from .helpers import Clock


class LogSource:
    """One topic of real ``PartitionLog``\\ s; dead letters are only recorded."""

    def __init__(self, directory, clock: Clock, partitions: int) -> None:
        config = LogConfig(fsync=FsyncPolicy.parse("never"), max_segment_bytes=2048)
        self.logs = [PartitionLog(str(directory / f"t-{p}"), config, clock=clock) for p in range(partitions)]
        self.dead: list[tuple[int, int, str]] = []

    def close(self) -> None:
        for log in self.logs:
            log.close()

    def topics_matching(self, pattern: str) -> list[str]:
        return ["t"] if pattern in ("t", "*", ">") else []

    def partition_count(self, topic: str) -> int:
        return len(self.logs)

    def log_range(self, topic: str, partition: int) -> tuple[int, int]:
        log = self.logs[partition]
        return log.start_offset, log.high_watermark

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        return self.logs[partition].offset_for_time(timestamp_ms)

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> ReadResult:
        return self.logs[partition].read(offset, max_bytes)

    def dead_letter(self, *, group, topic, partition, offset, deliveries, reason) -> None:
        self.dead.append((partition, offset, reason))


@pytest.fixture
def setup(tmp_path):
    clock = Clock()
    source = LogSource(tmp_path, clock, partitions=2)
    engine = GroupEngine(source, {}, clock=clock, max_delivery_bytes=1024)
    yield clock, source, engine
    source.close()


def append(source: LogSource, partition: int, count: int, per_batch: int = 5) -> None:
    for first in range(0, count, per_batch):
        n = min(per_batch, count - first)
        source.logs[partition].append(build_batch([b"v" * 40] * n))


def test_deliveries_from_real_logs(setup):
    _, source, engine = setup
    append(source, 0, 60)
    append(source, 1, 7, per_batch=7)
    engine.subscribe(
        MemberInfo("a", "c", "s"),
        1,
        "t",
        "g",
        mode=GroupMode.PARTITIONED,
        start=Earliest(),
        credits=1000,
        ack_deadline_ms=1000,
        max_deliveries=None,
    )
    deliveries = engine.take_deliveries()
    got = {(d.partition, o) for d in deliveries for o, _ in d.offsets()}
    assert got == {(0, o) for o in range(60)} | {(1, o) for o in range(7)}
    for delivery in deliveries:
        assert delivery.size <= 1024 or len(delivery.batches) == 1
        for batch in delivery.batches:
            check_batch(bytes(batch))
    engine.ack("a", 1, partition_ranges([("t", 0, o) for o in range(60)] + [("t", 1, o) for o in range(7)]))
    assert {k[2]: v.committed for k, v in engine.take_progress_changes().items()} == {0: 60, 1: 7}


def test_time_start_on_real_logs(setup):
    clock, source, engine = setup
    append(source, 0, 30)
    clock.advance(10_000)
    later = clock.now
    append(source, 0, 30)
    engine.subscribe(
        MemberInfo("a", "c", "s"),
        1,
        "t",
        "g",
        mode=GroupMode.SHARED,
        start=AtTime(time=later),
        credits=5,
        ack_deadline_ms=1000,
        max_deliveries=None,
    )
    first = [o for d in engine.take_deliveries() for o, _ in d.offsets() if d.partition == 0]
    assert first == [30, 31, 32, 33, 34]


def test_retention_on_real_logs_skips_what_was_deleted(tmp_path):
    clock = Clock()
    source = LogSource(tmp_path, clock, partitions=1)
    config = LogConfig(
        fsync=FsyncPolicy.parse("never"), max_segment_bytes=2048, retention=RetentionPolicy(max_bytes=4096)
    )
    source.logs[0].close()
    source.logs[0] = PartitionLog(str(tmp_path / "retained"), config, clock=clock)
    engine = GroupEngine(source, {}, clock=clock)
    try:
        append(source, 0, 200)
        engine.subscribe(
            MemberInfo("a", "c", "s"),
            1,
            "t",
            "g",
            mode=GroupMode.PARTITIONED,
            start=Earliest(),
            credits=3,
            ack_deadline_ms=1000,
            max_deliveries=None,
        )
        assert [o for d in engine.take_deliveries() for o, _ in d.offsets()] == [0, 1, 2]
        engine.ack("a", 1, partition_ranges([("t", 0, o) for o in (0, 1, 2)]))
        assert source.logs[0].apply_retention()
        start = source.logs[0].start_offset
        assert start > 3
        engine.credit("a", 1, 2)
        assert [o for d in engine.take_deliveries() for o, _ in d.offsets()] == [start, start + 1]
        assert engine.group_stats("g").lost == start - 3
    finally:
        source.close()
