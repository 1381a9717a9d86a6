"""Planning one Deliver frame: which stored batches to send, and which offsets in them count.

The planner reads through the ``PartitionSource`` and looks only at batch
*headers* (``read_header``: base offset, record count, length). It never
decodes a record, and it never re-checks CRCs: the log checked them on the
way out. A batch goes out whole, as stored, even when only some of its
records are for this member: a ``DeliverySpan`` names the offsets that count
and their delivery count, and the consumer skips the rest. So a batch may
start before the group's position, or be sent again for one redelivered
record.

A plan takes, in this order and up to the member's credits:

1. READY messages (nacked, expired or given back), lowest offset first:
   they are older than anything unread, so partition order is kept as far
   as redelivery allows;
2. unread messages from the group's cursor, skipping offsets settled
   before a restart (``settled_above``).

It stops before a batch that would take the frame past ``max_bytes``,
unless the frame is still empty: a single batch larger than the limit is
sent alone rather than never. Reads ask for no more than the bytes left, so
what is read for a slow consumer is bounded by its credits and the limit.

Planning does not change any state; the engine applies the plan
(``PartitionState.deliver``) and builds the ``Delivery``.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from tidings.core.groups.partition import PartitionState
from tidings.core.groups.values import Delivery, MemberKey
from tidings.core.ports import PartitionSource
from tidings.errors import InvalidBatchError
from tidings.protocol.values import DeliverySpan
from tidings.records import HEADER_SIZE, Buffer, read_header


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """One batch as stored: its offsets and its bytes (a view into what the source read)."""

    base: int
    last: int
    data: Buffer
    time: int = 0
    """The producer's time of its first record (from the header): when its events happened."""


def split_batches(data: Buffer) -> list[StoredBatch]:
    """Cut a concatenation of stored batches at their headers' lengths (no CRC check, no decoding)."""
    view = memoryview(data)
    out: list[StoredBatch] = []
    position = 0
    while position < len(view):
        header = read_header(view, position)
        end = position + header.length
        if header.length < HEADER_SIZE or end > len(view) or header.record_count < 1:
            raise InvalidBatchError(
                f"stored batch at position {position} claims {header.length} bytes and "
                f"{header.record_count} records, {len(view) - position} bytes are left"
            )
        out.append(
            StoredBatch(header.base_offset, header.last_offset, view[position:end], header.first_timestamp)
        )
        position = end
    return out


class BatchReader:
    """Reads one partition's batches through the source, keeping the last read as a window."""

    __slots__ = ("_bases", "_partition", "_source", "_topic", "_window", "reads")

    def __init__(self, source: PartitionSource, topic: str, partition: int) -> None:
        self._source = source
        self._topic = topic
        self._partition = partition
        self._window: list[StoredBatch] = []
        self._bases: list[int] = []
        self.reads = 0

    def batch_at(self, offset: int, max_bytes: int) -> StoredBatch | None:
        """The batch holding ``offset``, from the window or a new read of about ``max_bytes``."""
        batch = self._find(offset)
        if batch is None:
            self.reads += 1
            result = self._source.read(self._topic, self._partition, offset, max(max_bytes, 1))
            self._window = split_batches(result.data)
            self._bases = [b.base for b in self._window]
            batch = self._find(offset)
        return batch

    def _find(self, offset: int) -> StoredBatch | None:
        index = bisect_right(self._bases, offset) - 1
        if index >= 0 and offset <= self._window[index].last:
            return self._window[index]
        return None


@dataclass(slots=True)
class Draft:
    """A Deliver frame being filled: batches, spans and the bytes they take."""

    max_bytes: int
    batches: list[Buffer] = field(default_factory=list)
    spans: list[tuple[int, int, int, int]] = field(default_factory=list)  # (batch, first, last, delivery)
    size: int = 0
    count: int = 0
    _index: dict[int, int] = field(default_factory=dict)  # batch base offset -> its index in batches

    def fits(self, batch: StoredBatch) -> bool:
        return batch.base in self._index or not self.batches or self.size + len(batch.data) <= self.max_bytes

    def room(self) -> int:
        return max(self.max_bytes - self.size, 1)

    def add(self, batch: StoredBatch, first: int, last: int, delivery: int) -> None:
        index = self._index.get(batch.base)
        if index is None:
            index = self._index[batch.base] = len(self.batches)
            self.batches.append(batch.data)
            self.size += len(batch.data)
        self.count += last - first + 1
        if self.spans:
            b, start, end, d = self.spans[-1]
            if b == index and d == delivery and end + 1 == first:
                self.spans[-1] = (b, start, last, d)
                return
        self.spans.append((index, first, last, delivery))

    def frame_batches(self) -> tuple[Buffer, ...]:
        """The batches to send, as views of what was read; a small slice of a big read is copied.

        A view keeps its whole read buffer alive until the frame is sent, so
        one small batch taken from a megabyte read (a member with one credit
        left) would pin the megabyte. Copying the few bytes instead bounds
        what queued frames hold to about what they carry.
        """
        used: dict[int, int] = {}  # id of a read buffer -> bytes of it this frame carries
        for batch in self.batches:
            if isinstance(batch, memoryview):
                used[id(batch.obj)] = used.get(id(batch.obj), 0) + len(batch)
        out: list[Buffer] = []
        for batch in self.batches:
            if isinstance(batch, memoryview) and used[id(batch.obj)] * 4 < len(batch.obj):  # type: ignore[arg-type]
                out.append(bytes(batch))
            else:
                out.append(batch)
        return tuple(out)

    def delivery(self, member: MemberKey, topic: str, partition: int, group: str = "") -> Delivery:
        return Delivery(
            session_id=member[0],
            subscription_id=member[1],
            topic=topic,
            partition=partition,
            spans=self.delivery_spans(),
            batches=self.frame_batches(),
            group=group,
        )

    def delivery_spans(self) -> tuple[DeliverySpan, ...]:
        return tuple(
            DeliverySpan(batch=b, first=lo, last=hi, delivery=d) for b, lo, hi, d in sorted(self.spans)
        )


@dataclass(frozen=True, slots=True)
class Plan:
    """What one Deliver frame will carry, and the state changes that sending it means."""

    draft: Draft
    redelivered: tuple[int, ...]
    fresh: tuple[int, ...]
    cursor: int
    """The group's new cursor (it may move past settled offsets even when nothing is delivered)."""
    fresh_times: tuple[int, ...] = ()
    """The event time of each ``fresh`` offset (its batch's first timestamp): for the processing delay."""


def plan_delivery(
    state: PartitionState, reader: BatchReader, *, credits: int, max_bytes: int, high_watermark: int
) -> Plan:
    """Plan one Deliver frame of up to ``credits`` messages for the partition's next member."""
    draft = Draft(max_bytes)
    left = credits
    redelivered: list[int] = []
    for offset in state.ready:
        if left <= 0:
            break
        batch = reader.batch_at(offset, draft.room())
        if batch is None or not draft.fits(batch):
            break
        draft.add(batch, offset, offset, state.entries[offset].deliveries + 1)
        redelivered.append(offset)
        left -= 1
    fresh: list[int] = []
    times: list[int] = []
    cursor = state.cursor
    while left > 0 and cursor < high_watermark:
        batch = reader.batch_at(cursor, draft.room())
        if batch is None:
            break
        picks = state.settled.gaps(max(cursor, batch.base), batch.last, left)
        if not picks:
            cursor = batch.last + 1
            continue
        if not draft.fits(batch):
            break
        for first, last in picks:
            draft.add(batch, first, last, 1)
            fresh.extend(range(first, last + 1))
            times.extend([batch.time] * (last - first + 1))
            left -= last - first + 1
        cursor = picks[-1][1] + 1 if left <= 0 else batch.last + 1
    return Plan(draft, tuple(redelivered), tuple(fresh), cursor, tuple(times))
