"""Offset ranges: how Ack, Nack and Term name thousands of messages in a few bytes.

Acks are per message. Acking offset 7 says nothing about offset 6, unlike
Kafka's cumulative commit, because shared groups and redeliveries complete
messages out of order. A busy consumer still acks many messages at once, so
a frame carries *ranges* of the offsets it settles, grouped by
(topic, partition)::

    PartitionRanges(topic="orders", partition=3, ranges=(OffsetRange(100, 199), OffsetRange(201, 250)))

This reads as "each of the offsets 100..199 and 201..250 of orders/3, one by
one". A run of contiguous acks costs one range of about 10 bytes whatever
its length. In the worst case, every other offset, a range costs about the
same as the offset it replaces.

The canonical form is required on the wire, and ``coalesce`` and
``partition_ranges`` produce it. Ranges are sorted, each has
``first <= last``, and two ranges never overlap or touch (``next.first >
last + 1``). (Topic, partition) pairs are unique within a frame. So the
broker can trust that no message is settled twice by one frame, and can
count messages without expanding the ranges.

**Delivery tags.** ``PartitionRanges.delivery`` names the delivery the
sender settles: the ``DeliverySpan.delivery`` the messages came with. The
broker settles a message only if that is still its current delivery, so an
ack that arrives after the message was redelivered (to anyone, the sender
included) is stale and ignored rather than settling the newer delivery. The
messages of one partition are grouped per delivery, so (topic, partition,
delivery) is unique within a frame; first deliveries, the common case, stay
one group per partition. ``delivery=0`` means "whichever delivery is
current": what clients that predate the tag send (the field is appended to
the array, and a missing trailing field decodes as its default).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator

from tidings.protocol.values import Count, Offset, Partition, TopicName, Value


class OffsetRange(Value, frozen=True, kw_only=True):
    """The offsets ``first..last``, both included."""

    first: Offset
    last: Offset

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"offset range last {self.last} < first {self.first}")

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def __contains__(self, offset: int) -> bool:
        return self.first <= offset <= self.last


class PartitionRanges(Value, frozen=True, kw_only=True):
    """Canonical offset ranges of one partition of one topic."""

    topic: TopicName
    partition: Partition
    ranges: tuple[OffsetRange, ...]
    delivery: Count = 0
    """The delivery these settlements answer (``DeliverySpan.delivery``); 0: untagged, the current one."""

    def __post_init__(self) -> None:
        check_canonical(self.ranges)

    @property
    def count(self) -> int:
        """How many messages these ranges settle."""
        return sum(r.count for r in self.ranges)

    def offsets(self) -> Iterator[int]:
        """Every offset, in ascending order: for the broker's per-message bookkeeping."""
        return iter_offsets(self.ranges)


def check_canonical(ranges: tuple[OffsetRange, ...]) -> None:
    """Raise ``ValueError`` unless ``ranges`` is non-empty, sorted, disjoint and non-adjacent."""
    if not ranges:
        raise ValueError("no offset ranges")
    previous = ranges[0]
    for current in ranges[1:]:
        if current.first <= previous.last + 1:
            raise ValueError(
                f"offset ranges {previous.first}..{previous.last} and {current.first}..{current.last} "
                "are out of order, overlapping or adjacent (send them coalesced)"
            )
        previous = current


def coalesce(offsets: Iterable[int]) -> tuple[OffsetRange, ...]:
    """The canonical ranges covering ``offsets`` (any order, duplicates allowed)."""
    ordered = sorted(set(offsets))
    if not ordered:
        return ()
    out: list[OffsetRange] = []
    first = last = ordered[0]
    for offset in ordered[1:]:
        if offset == last + 1:
            last = offset
            continue
        out.append(OffsetRange(first=first, last=last))
        first = last = offset
    out.append(OffsetRange(first=first, last=last))
    return tuple(out)


def iter_offsets(ranges: Iterable[OffsetRange]) -> Iterator[int]:
    for r in ranges:
        yield from range(r.first, r.last + 1)


def partition_ranges(messages: Iterable[tuple[str, int, int]]) -> tuple[PartitionRanges, ...]:
    """Group ``(topic, partition, offset)`` triples into canonical ``PartitionRanges``.

    This is the client's helper for building an Ack, Nack or Term from the
    messages its handlers finished. The result is sorted by (topic, partition),
    so equal inputs encode to equal bytes.
    """
    by_partition: defaultdict[tuple[str, int], list[int]] = defaultdict(list)
    for topic, partition, offset in messages:
        by_partition[topic, partition].append(offset)
    return tuple(
        PartitionRanges(topic=topic, partition=partition, ranges=coalesce(offsets))
        for (topic, partition), offsets in sorted(by_partition.items())
    )


def delivery_ranges(messages: Iterable[tuple[str, int, int, int]]) -> tuple[PartitionRanges, ...]:
    """Group ``(topic, partition, offset, delivery)`` into canonical, delivery-tagged ``PartitionRanges``.

    What the client acks with: one group per (topic, partition, delivery),
    sorted, so equal inputs encode to equal bytes. An offset named under two
    deliveries stays in both groups; the broker settles at most the current one.
    """
    by_delivery: defaultdict[tuple[str, int, int], list[int]] = defaultdict(list)
    for topic, partition, offset, delivery in messages:
        by_delivery[topic, partition, delivery].append(offset)
    return tuple(
        PartitionRanges(topic=topic, partition=partition, ranges=coalesce(offsets), delivery=delivery)
        for (topic, partition, delivery), offsets in sorted(by_delivery.items())
    )


def check_unique_partitions(groups: tuple[PartitionRanges, ...]) -> None:
    """Raise ``ValueError`` if one (topic, partition, delivery) appears twice, or nothing is named at all."""
    if not groups:
        raise ValueError("no partitions")
    seen: set[tuple[str, int, int]] = set()
    for group in groups:
        key = (group.topic, group.partition, group.delivery)
        if key in seen:
            raise ValueError(
                f"partition {group.topic}/{group.partition} (delivery {group.delivery}) appears twice "
                "(merge its ranges)"
            )
        seen.add(key)
