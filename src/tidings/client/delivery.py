"""Decoding Deliver frames: whole stored batches in, the messages their spans name out.

The broker serves batches exactly as stored and never cuts records out of
them; ``Deliver.spans`` says which offsets of each batch are for this
consumer, and on which delivery. Records outside every span are skipped.

A stored batch is usually delivered several times over: the producer wrote
it as one batch of thousands of records, and the consumer's credits let the
broker hand out only ``prefetch`` of them per Deliver; a subscription that
starts at a time or an offset begins in the middle of one. Decoding the
whole batch each time would cost O(batch) per Deliver, and decoding it
once and keeping the records costs O(batch) for a span of one. So a
subscription remembers, for the last few batches it saw (``BatchCache``,
keyed by topic, partition, base offset and CRC, which name a stored batch
for good), the checked header and where the next undecoded record starts:
each Deliver decodes only the records its spans name, after a walk of
record lengths (in C) to the first of them when it is not where the last
span ended. Each batch's CRC is checked once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from tidings.protocol import Deliver
from tidings.records import HEADER_SIZE, BatchHeader, Buffer, Record, check_batch, read_header
from tidings.records.batch import skip_records
from tidings.records.builder import decode_records

CACHED_BATCHES = 8


@dataclass(slots=True)
class _Seen:
    """A stored batch a subscription has seen: its checked header and where its next record starts."""

    header: BatchHeader
    index: int
    cursor: int


class BatchCache:
    """What one subscription knows of the last ``size`` stored batches it received."""

    def __init__(self, size: int = CACHED_BATCHES) -> None:
        self.size = size
        self._batches: OrderedDict[tuple[str, int, int, int], _Seen] = OrderedDict()
        self.checked = 0
        """How many batches were checked (the rest were known already)."""
        self.decoded = 0
        """How many records were decoded."""

    def __repr__(self) -> str:
        return f"<BatchCache {len(self._batches)}/{self.size} checked={self.checked} decoded={self.decoded}>"

    def records(
        self, topic: str, partition: int, batch: Buffer, header: BatchHeader, *, first: int, stop: int
    ) -> list[Record]:
        """Records ``first`` to ``stop - 1`` (indexes in ``batch``, whose ``read_header`` is ``header``).

        Decoded now; the batch's CRCs are checked the first time it is seen.
        """
        key = (topic, partition, header.base_offset, header.crc)
        seen = self._batches.get(key)
        if seen is None:
            seen = _Seen(check_batch(batch), 0, HEADER_SIZE)
            self.checked += 1
            self._batches[key] = seen
            if len(self._batches) > self.size:
                self._batches.popitem(last=False)
        else:
            self._batches.move_to_end(key)
        header = seen.header
        first, stop = max(first, 0), min(stop, header.record_count)
        if first >= stop:
            return []
        index, cursor = (seen.index, seen.cursor) if first >= seen.index else (0, HEADER_SIZE)
        cursor = skip_records(batch, cursor, header.length, first - index)
        records, after = decode_records(batch, header, cursor, stop - first)
        self.decoded += len(records)
        seen.index, seen.cursor = stop, after  # the next span usually starts right here
        return records


def records_in_spans(frame: Deliver, cache: BatchCache | None = None) -> Iterator[tuple[Record, int]]:
    """``(record, delivery_count)`` for each record of ``frame`` that one of its spans names, in order.

    Raises ``InvalidBatchError`` (or ``CorruptBatchError``) for a batch that fails its checks.
    """
    cache = cache or BatchCache(1)
    spans_of: dict[int, list[tuple[int, int, int]]] = {}
    for span in frame.spans:
        spans_of.setdefault(span.batch, []).append((span.first, span.last, span.delivery))
    for index, batch in enumerate(frame.batches):
        spans = sorted(spans_of.get(index, ()))
        if not spans:
            continue
        header = read_header(batch)
        base = header.base_offset
        for first, last, delivery in spans:
            # offset_delta is the record's index in a valid batch, so a span is a range of indexes
            records = cache.records(
                frame.topic, frame.partition, batch, header, first=first - base, stop=last - base + 1
            )
            for record in records:
                if first <= record.offset <= last:
                    yield record, delivery
