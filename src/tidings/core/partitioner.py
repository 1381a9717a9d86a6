"""Which partition a Produce goes to when the producer leaves the choice to the broker.

``Produce.partition`` is None: the broker chooses per batch, by the key of
the batch's *first* record (producers batch per key, so it stands for the
batch):

* **Keyed**: ``records.partition_for_key(key, partitions)``, the same rule a
  client applies, so a key's events always land in one partition and keep
  their order, whoever chose.
* **No key, plain producer**: round robin over the partitions, one batch at a
  time, per topic. A batch is Kafka's "sticky" unit already (all its records
  go to one partition), so rotating per batch spreads load without splitting
  batches.
* **No key, idempotent producer**: ``producer_id % partitions``. Sequence
  numbers are per (topic, partition), so a retried batch must land where the
  first attempt did; round robin would send it elsewhere and write it twice.

Only the first record's key is read: its 24-byte prefix, never the records'
contents, and only after ``check_batch`` has proved the batch's checksums.
"""

from __future__ import annotations

from tidings.errors import InvalidBatchError
from tidings.records import HEADER_SIZE, BatchHeader, Buffer, partition_for_key
from tidings.records import layout as L


def first_key(batch: Buffer, header: BatchHeader) -> bytes | None:
    """The key of the batch's first record, or None when it has none."""
    end = header.length
    if end - HEADER_SIZE < L.RECORD_PREFIX_SIZE:
        raise InvalidBatchError("batch too short for its first record")
    _, _, _, key_length, _, _ = L.RECORD_PREFIX.unpack_from(batch, HEADER_SIZE)
    if key_length == L.NO_KEY:
        return None
    start = HEADER_SIZE + L.RECORD_PREFIX_SIZE
    if key_length < 0 or start + key_length > end:
        raise InvalidBatchError(f"first record's key length {key_length} runs past the batch")
    return bytes(memoryview(batch)[start : start + key_length])


class Partitioner:
    """Chooses partitions for batches without one. Holds only the round-robin counters."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<Partitioner round_robin_topics={len(self._next)}>"

    def choose(self, topic: str, partitions: int, key: bytes | None, producer_id: int | None) -> int:
        if key is not None:
            return partition_for_key(key, partitions)
        if producer_id is not None:
            return producer_id % partitions
        turn = self._next.get(topic, 0)
        self._next[topic] = turn + 1
        return turn % partitions

    def forget(self, topic: str) -> None:
        self._next.pop(topic, None)
