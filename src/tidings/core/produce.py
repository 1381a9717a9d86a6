"""The produce path: check each batch, pick its partition, deduplicate it, append it.

For each batch of a Produce, in order:

1. ``check_batch``: both CRC32Cs and the header's structure. A bad batch is
   ``Rejected(corrupt_batch | invalid_batch)``; the other batches go on.
2. The partition: the Produce's, or ``core.partitioner``'s choice by the first
   record's key.
3. For an idempotent producer: the session must own the producer id, and the
   sequence must be the next one, or a remembered batch's (``core.producers``).
   A remembered batch is answered with its original offsets, not written.
4. ``PartitionLog.append``: written, not durable. The log reuses the header
   checked in step 1 (the CRCs run once per batch) and walks the record
   prefixes; storage failures become ``Rejected`` with the codes of
   ``STORAGE_CODES``.

The result is a ``ProduceTicket``: the per-batch results, and per partition
the last offset that must be durable before anyone is told. The server waits
on its group commits and then sends ``ticket.frame()``; a partition whose
commit failed turns its results into ``Rejected`` first (``fail``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tidings.core import producer_state
from tidings.core.partitioner import Partitioner, first_key
from tidings.core.producers import Duplicate, PartitionProducers, ProducerRegistry
from tidings.core.topics import Topic, TopicRegistry
from tidings.errors import (
    BrokerError,
    CorruptBatchError,
    DiskFullError,
    InvalidBatchError,
    LogClosedError,
    LogCorruptedError,
    LogFailedError,
    StorageError,
    TidingsError,
)
from tidings.protocol.frames import Error, Frame, Produce, ProduceResult
from tidings.protocol.values import AckMode, Appended, BatchResult, Rejected
from tidings.records import Buffer, check_batch
from tidings.storage import PartitionLog

STORAGE_CODES: tuple[tuple[type[TidingsError], str], ...] = (
    (CorruptBatchError, "corrupt_batch"),
    (InvalidBatchError, "invalid_batch"),
    (DiskFullError, "disk_full"),
    (LogCorruptedError, "log_corrupted"),
    (LogFailedError, "storage_failed"),
    (LogClosedError, "unknown_topic"),
    (StorageError, "storage_error"),
)
"""The code reported for each failure of a check or an append (first match wins)."""


def rejected(exc: TidingsError) -> Rejected:
    code = getattr(exc, "code", None) if isinstance(exc, BrokerError) else None
    if code is None:
        code = next((c for kind, c in STORAGE_CODES if isinstance(exc, kind)), "internal_error")
    return Rejected(code=code, message=str(exc) or type(exc).__name__)


@dataclass(slots=True)
class ProduceTicket:
    """One Produce in flight: its results so far, and what must become durable before they are sent."""

    session_id: str
    request_id: int
    topic: str
    ack: AckMode
    results: list[BatchResult] = field(default_factory=list)
    waits: dict[int, int] = field(default_factory=dict)
    """partition -> the last offset that must be durable (appended, or a duplicate's original)."""
    size: int = 0
    """Bytes of the Produce's batches: what the session counts against its in-flight budget."""

    def wait(self, partition: int, last_offset: int) -> None:
        self.waits[partition] = max(last_offset, self.waits.get(partition, -1))

    def fail(self, partition: int, exc: TidingsError) -> None:
        """The partition's commit failed: none of its batches may be reported as stored."""
        failure = rejected(exc)
        self.results = [
            failure if isinstance(r, Appended) and r.partition == partition else r for r in self.results
        ]

    def frame(self) -> Frame | None:
        """What to send once every wait is over: the ProduceResult, or (``ack=0``) an Error if any failed."""
        if self.ack is AckMode.DURABLE:
            return ProduceResult(request_id=self.request_id, results=tuple(self.results))
        failed = next((r for r in self.results if isinstance(r, Rejected)), None)
        if failed is None:
            return None
        return Error(code=failed.code, message=failed.message, request_id=self.request_id)


class ProducePath:
    def __init__(self, topics: TopicRegistry, producers: ProducerRegistry) -> None:
        self.topics = topics
        self.producers = producers
        self.partitioner = Partitioner()

    def __repr__(self) -> str:
        return f"<ProducePath {self.topics!r} {self.producers!r}>"

    def produce(self, session_id: str, frame: Produce) -> ProduceTicket:
        ticket = ProduceTicket(session_id, frame.request_id, frame.topic, frame.ack)
        ticket.size = sum(len(batch) for batch in frame.batches)
        try:
            topic = self.topics.ensure(frame.topic)
            if frame.partition is not None:
                self.topics.log(frame.topic, frame.partition)  # raises UnknownPartition
        except TidingsError as exc:
            ticket.results = [rejected(exc)] * len(frame.batches)
            return ticket
        for batch in frame.batches:
            ticket.results.append(self._one(session_id, topic, frame.partition, batch, ticket))
        return ticket

    def _one(
        self, session_id: str, topic: Topic, partition: int | None, batch: Buffer, ticket: ProduceTicket
    ) -> BatchResult:
        try:
            header = check_batch(batch)
            if header.length != len(batch):
                raise InvalidBatchError(f"batch says {header.length} bytes but {len(batch)} were sent")
            producer = header.producer_id if header.idempotent else None
            if partition is None:
                partition = self.partitioner.choose(
                    topic.name, topic.partitions, first_key(batch, header), producer
                )
            if producer is not None:
                refused = self.producers.owner_check(session_id, header)
                if refused is not None:
                    return refused
                verdict = self._state(topic.name, partition).check(header)
                if isinstance(verdict, Duplicate):
                    meta = verdict.batch
                    ticket.wait(partition, meta.last_offset)
                    return Appended(
                        partition=partition,
                        base_offset=meta.base_offset,
                        last_offset=meta.last_offset,
                        append_time=meta.append_time,
                        duplicate=True,
                    )
                if verdict is not None:
                    return verdict
            result = self.topics.append(topic.name, partition, batch, checked=header)
        except TidingsError as exc:
            return rejected(exc)
        if producer is not None:
            self.producers.record(
                topic.name,
                partition,
                header,
                base=result.base_offset,
                last=result.last_offset,
                append_time=result.append_time,
            )
        ticket.wait(partition, result.last_offset)
        return Appended(
            partition=partition,
            base_offset=result.base_offset,
            last_offset=result.last_offset,
            append_time=result.append_time,
        )

    def _state(self, topic: str, partition: int) -> PartitionProducers:
        """The partition's producer state, rebuilt from its snapshot and log tail on first use."""
        state = self.producers.loaded(topic, partition)
        if state is None:
            state = producer_state.rebuild(self.topics.log(topic, partition))
            self.producers.attach(topic, partition, state)
        return state

    def snapshots(self) -> list[tuple[PartitionLog, bytes]]:
        """Encoded producer snapshots of every loaded partition, for ``producer_state.write_snapshot``.

        Taken on the event loop, so each matches its log's end offset exactly:
        every idempotent append is recorded in the same step that makes it.
        """
        out: list[tuple[PartitionLog, bytes]] = []
        for (topic, partition), state in self.producers.partitions():
            found = self.topics.find(topic)
            if found is None or partition >= found.partitions:
                continue
            partition_log = found.logs[partition]
            out.append((partition_log, producer_state.encode(state, partition_log.end_offset)))
        return out

    def topic_deleted(self, topic: str) -> None:
        self.producers.forget_topic(topic)
        self.partitioner.forget(topic)
