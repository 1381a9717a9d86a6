"""``MemoryPartitionSource``: a ``PartitionSource`` kept in memory, for tests and tools.

It stores real record batches (``tidings.records``), stamped with offsets
and append times exactly as the log stamps them, so what the group engine
reads and delivers here is byte for byte what it would read from disk. It
also plays retention (``drop_before``) and keeps every dead letter it wrote
(``dead_letters``), so tests can check both sides of the engine without a
data directory. The topic registry (``tidings.core.topics``) is the real
implementation.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tidings.errors import OffsetOutOfRangeError, UnknownPartition, UnknownTopic
from tidings.protocol.names import topic_matches
from tidings.records import (
    HEADER_SIZE,
    BatchBuilder,
    Record,
    build_batch,
    iter_records,
    now_ms,
    read_header,
    stamped_header,
)
from tidings.storage import ReadResult


@dataclass(frozen=True, slots=True)
class DeadLetterCall:
    """One ``dead_letter`` call, as the engine made it."""

    group: str
    topic: str
    partition: int
    offset: int
    deliveries: int
    reason: str


@dataclass(slots=True)
class _Partition:
    bases: list[int] = field(default_factory=list)
    batches: list[bytes] = field(default_factory=list)
    times: list[int] = field(default_factory=list)
    start: int = 0
    end: int = 0


class MemoryPartitionSource:
    """Topics of partitions of stamped batches, all in memory; see the module docstring."""

    def __init__(self, *, clock: Callable[[], int] = now_ms) -> None:
        self._clock = clock
        self._topics: dict[str, list[_Partition]] = {}
        self.dead_letters: list[DeadLetterCall] = []
        self.reads = 0

    def __repr__(self) -> str:
        return f"MemoryPartitionSource(topics={sorted(self._topics)})"

    # -- building the data -------------------------------------------------------------

    def create_topic(self, name: str, partitions: int = 1) -> None:
        if name not in self._topics:
            self._topics[name] = [_Partition() for _ in range(partitions)]

    def delete_topic(self, name: str) -> None:
        self._topics.pop(name, None)

    def append_batch(self, topic: str, partition: int, batch: bytes) -> tuple[int, int]:
        """Stamp ``batch`` with the next offset and the clock's time, store it; returns (base, last)."""
        part = self._partition(topic, partition)
        now = self._clock()
        stamped = stamped_header(batch, part.end, now) + batch[HEADER_SIZE:]
        header = read_header(stamped)
        part.bases.append(part.end)
        part.batches.append(stamped)
        part.times.append(now)
        part.end = header.next_offset
        return header.base_offset, header.last_offset

    def append(
        self,
        topic: str,
        partition: int,
        values: Sequence[bytes],
        *,
        keys: Sequence[bytes | None] | None = None,
    ) -> tuple[int, int]:
        """Build one batch of ``values`` and append it; returns (base, last)."""
        return self.append_batch(topic, partition, build_batch(values, keys=keys, timestamp=self._clock()))

    def drop_before(self, topic: str, partition: int, offset: int) -> None:
        """Retention: delete the batches that end before ``offset`` (whole batches, as segments go)."""
        part = self._partition(topic, partition)
        while part.batches and read_header(part.batches[0]).next_offset <= offset:
            del part.bases[0], part.batches[0], part.times[0]
        part.start = part.bases[0] if part.bases else part.end

    def records(self, topic: str, partition: int) -> list[Record]:
        """Every retained record, decoded: for test assertions."""
        return [r for batch in self._partition(topic, partition).batches for r in iter_records(batch)]

    # -- PartitionSource -----------------------------------------------------------------

    def topics_matching(self, pattern: str) -> list[str]:
        return sorted(name for name in self._topics if topic_matches(pattern, name))

    def partition_count(self, topic: str) -> int:
        return len(self._partitions(topic))

    def log_range(self, topic: str, partition: int) -> tuple[int, int]:
        part = self._partition(topic, partition)
        return part.start, part.end

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        part = self._partition(topic, partition)
        for base, appended in zip(part.bases, part.times, strict=True):
            if appended >= timestamp_ms:
                return base
        return part.end

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> ReadResult:
        part = self._partition(topic, partition)
        if offset < part.start or offset > part.end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is outside {topic}/{partition} ({part.start}..{part.end})"
            )
        self.reads += 1
        index = bisect_right(part.bases, offset) - 1
        if offset >= part.end or index < 0:
            return ReadResult(b"", offset, offset, 0, 0, part.end)
        chosen: list[bytes] = []
        size = records = 0
        for batch in part.batches[index:]:
            if chosen and size + len(batch) > max_bytes:
                break
            chosen.append(batch)
            size += len(batch)
            records += read_header(batch).record_count
        first = part.bases[index]
        return ReadResult(b"".join(chosen), first, first + records, records, len(chosen), part.end)

    def dead_letter(
        self, *, group: str, topic: str, partition: int, offset: int, deliveries: int, reason: str
    ) -> None:
        part = self._partition(topic, partition)
        index = bisect_right(part.bases, offset) - 1
        record = next(r for r in iter_records(part.batches[index]) if r.offset == offset)
        headers = [
            *record.headers,
            ("tidings-dlq-topic", topic.encode()),
            ("tidings-dlq-partition", str(partition).encode()),
            ("tidings-dlq-offset", str(offset).encode()),
            ("tidings-dlq-group", group.encode()),
            ("tidings-dlq-deliveries", str(deliveries).encode()),
            ("tidings-dlq-reason", reason.encode()),
        ]
        builder = BatchBuilder()
        builder.add(record.value, key=record.key, headers=headers, timestamp=record.timestamp)
        target = f"{topic}.dlq.{group}"
        self.create_topic(target)
        self.append_batch(target, 0, builder.build())
        self.dead_letters.append(DeadLetterCall(group, topic, partition, offset, deliveries, reason))

    # -- internals -----------------------------------------------------------------------

    def _partitions(self, topic: str) -> list[_Partition]:
        partitions = self._topics.get(topic)
        if partitions is None:
            raise UnknownTopic(f"no topic {topic!r}")
        return partitions

    def _partition(self, topic: str, partition: int) -> _Partition:
        partitions = self._partitions(topic)
        if not 0 <= partition < len(partitions):
            raise UnknownPartition(f"topic {topic!r} has no partition {partition}")
        return partitions[partition]
