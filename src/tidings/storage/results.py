"""Value objects the log hands back: what happened, never a bare tuple."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a batch landed. Written is not durable: see ``PartitionLog.commit``."""

    base_offset: int
    last_offset: int
    append_time: int
    size: int  # bytes written

    @property
    def next_offset(self) -> int:
        return self.last_offset + 1


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole batches, as stored, starting with the one that holds the requested offset.

    ``data`` may begin before the requested offset (a batch is never split);
    consumers skip records below it. ``next_offset`` is where the next read
    should start; ``data`` is empty when nothing at or after the offset is
    visible yet.
    """

    data: bytes
    first_offset: int  # base offset of the first batch in data (== next_offset when empty)
    next_offset: int
    record_count: int
    batch_count: int
    high_watermark: int

    @property
    def empty(self) -> bool:
        return not self.data


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What retention and rolling need to know of a segment, without its files."""

    base_offset: int
    next_offset: int
    size: int
    first_append_time: int  # -1 while empty
    max_append_time: int  # -1 while empty


@dataclass(frozen=True, slots=True)
class RollParams:
    """Everything ``should_roll`` decides on."""

    segment: SegmentInfo
    batch_size: int
    batch_records: int
    now: int
    max_segment_bytes: int
    max_segment_ms: int


@dataclass(frozen=True, slots=True)
class CorruptionReport:
    """A damaged batch found in data the log had made durable: where, and what it said."""

    path: str
    position: int
    offset: int  # the first offset the log will not serve
    reason: str
