"""Decoding Deliver frames: whole stored batches in, the messages their spans name out.

The broker serves batches exactly as stored and never cuts records out of
them; ``Deliver.spans`` says which offsets of each batch are for this
consumer, and on which delivery. Records outside every span are skipped.

A stored batch is usually delivered several times over: the producer wrote
it as one batch of thousands of records, and the consumer's credits let the
broker hand out only ``prefetch`` of them per Deliver. Decoding the whole
batch each time would cost O(batch) per Deliver, so a subscription keeps
the records of the last few batches it decoded (``BatchCache``), keyed by
(topic, partition, base offset, CRC), which names a stored batch for good.
Each batch is decoded, and its CRC checked, once.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from tidings.protocol import Deliver
from tidings.records import Buffer, Record, iter_records, read_header

CACHED_BATCHES = 8


class BatchCache:
    """The decoded records of the last ``size`` stored batches one subscription received."""

    def __init__(self, size: int = CACHED_BATCHES) -> None:
        self.size = size
        self._batches: OrderedDict[tuple[str, int, int, int], tuple[Record, ...]] = OrderedDict()
        self.decoded = 0
        """How many batches were decoded (the rest came from the cache)."""

    def __repr__(self) -> str:
        return f"<BatchCache {len(self._batches)}/{self.size} decoded={self.decoded}>"

    def records(self, topic: str, partition: int, batch: Buffer) -> tuple[Record, ...]:
        """Every record of ``batch``, decoded (and CRC-checked) on first sight only."""
        header = read_header(batch)
        key = (topic, partition, header.base_offset, header.crc)
        records = self._batches.get(key)
        if records is not None:
            self._batches.move_to_end(key)
            return records
        records = tuple(iter_records(batch))
        self.decoded += 1
        self._batches[key] = records
        if len(self._batches) > self.size:
            self._batches.popitem(last=False)
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
        records = cache.records(frame.topic, frame.partition, batch)
        if not records:
            continue
        base = records[0].offset
        for first, last, delivery in spans:
            # offset_delta is the record's index in a valid batch, so a span is a slice
            for record in records[max(first - base, 0) : max(last - base + 1, 0)]:
                if first <= record.offset <= last:
                    yield record, delivery
