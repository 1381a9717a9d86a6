"""The seams between the parts of the broker core, as small protocols.

``GroupEngine`` (``tidings.core.groups``) decides what to deliver to whom and
when; it reads records and writes dead letters only through ``PartitionSource``,
which the topic registry implements, and keeps its progress through a
``GroupStore``. Each side can thus be built and tested alone: the engine
against an in-memory source, the registry without any group.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from tidings.protocol.ranges import OffsetRange
from tidings.storage import ReadResult


class PartitionSource(Protocol):
    """What consumer groups need from the topics: reading, positions, and dead-lettering."""

    def topics_matching(self, pattern: str) -> list[str]:
        """Existing topics that a name or a pattern (``orders.*``, ``orders.>``) matches, sorted."""

    def partition_count(self, topic: str) -> int: ...

    def log_range(self, topic: str, partition: int) -> tuple[int, int]:
        """``(start_offset, high_watermark)``: what is retained and may be delivered."""

    def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> int:
        """The first offset appended at or after ``timestamp_ms``, or the high watermark."""

    def read(self, topic: str, partition: int, offset: int, max_bytes: int) -> ReadResult:
        """Whole stored batches from the one holding ``offset``, below the high watermark."""

    def dead_letter(
        self,
        *,
        group: str,
        topic: str,
        partition: int,
        offset: int,
        deliveries: int,
        reason: str,
    ) -> None:
        """Copy record ``offset`` into ``<topic>.dlq.<group>`` with the dead-letter headers.

        The copy keeps the record's key, value, headers and timestamp, and adds
        ``tidings-dlq-topic``, ``-partition``, ``-offset``, ``-group``,
        ``-deliveries`` and ``-reason`` headers. The dead-letter topic is an
        ordinary topic, created on first use.
        """


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """A group's durable progress on one partition.

    Every offset below ``committed`` is settled (acked, terminated or
    dead-lettered); ``settled_above`` lists settled offsets at or above it,
    since acks are per message and arrive out of order.
    """

    committed: int
    settled_above: tuple[OffsetRange, ...] = ()


ProgressKey = tuple[str, str, int]  # (group, topic, partition)


class GroupStore(Protocol):
    """Where group progress survives restarts.

    The engine never saves: it hands out what changed
    (``GroupEngine.take_progress_changes``) and the server saves that off the
    event loop every few milliseconds and at shutdown, so an fsync never blocks
    deliveries. After a kill -9, acks of that last interval may be redelivered.
    """

    def load(self) -> Mapping[ProgressKey, PartitionProgress]: ...

    def save(self, progress: Mapping[ProgressKey, PartitionProgress]) -> None:
        """Record these entries (others are unchanged); durable when this returns."""
