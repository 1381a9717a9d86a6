"""Idempotent producers: a batch retried after a lost ack is acknowledged again, not written twice.

Theory of operation
-------------------
A producer that wants idempotence asks for a producer id in its Hello
(``ProducerClaim()``) and gets one, with epoch 0, in the Welcome. It numbers
its records per (topic, partition): each batch header carries
``producer_id``, ``producer_epoch`` and ``base_sequence``, and record *i* has
sequence ``base_sequence + i`` (int32, wrapping to 0 after 2**31 - 1). After
a reconnect it claims the same id and epoch again
(``ProducerClaim(producer_id, producer_epoch)``) and resends the batches it
has no result for, byte for byte.

Per (topic, partition) the broker remembers, for each producer, its epoch
and its last ``WINDOW`` (5) batches: sequences, offsets and append time. A
batch from that producer is then, in this order of checks:

==========================================  ==============================================
the batch                                   answer
==========================================  ==============================================
epoch older than the remembered one         ``Rejected(producer_fenced)``
newer epoch, or a producer not remembered   appended (the sequence starts over)
same sequences as a remembered batch        ``Appended(duplicate=True)`` with its ORIGINAL offsets
the next sequence (last + 1)                appended
behind the last sequence, not remembered    ``Rejected(duplicate_sequence)``: too old to tell
ahead of the next sequence (a gap)          ``Rejected(out_of_order_sequence)``
==========================================  ==============================================

A producer is forgotten on a partition ``expiry_ms`` (default 7 days) after
its last append there, as in Kafka. A forgotten producer is accepted at any
sequence, so a retry older than that is written again: that is the window.

Ownership. One session at a time owns a producer id: a newer claim takes it
over, and batches of the older session with that id are then
``Rejected(producer_fenced)`` (a zombie connection must not interleave with
its successor). A batch with a producer id its session did not claim is
``Rejected(unknown_producer)``.

Ids are handed out from blocks of ``BLOCK`` reserved in ``<data>/producer-ids``
before use, so an id is never given twice, even across a crash (a crash
wastes the rest of a block, nothing more). Durability of the state itself is
``tidings.core.producer_state``'s job.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from tidings.core.datadir import read_optional, write_atomic
from tidings.errors import DataDirError, ProducerFenced
from tidings.protocol.values import ProducerClaim, Rejected
from tidings.records import BatchHeader

WINDOW: Final = 5
SEQUENCE_MODULUS: Final = 2**31
DEFAULT_EXPIRY_MS: Final = 7 * 24 * 3600 * 1000
BLOCK: Final = 1000


@dataclass(frozen=True, slots=True)
class BatchMeta:
    """What the broker remembers of one stored batch of an idempotent producer."""

    base_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int
    append_time: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The batch was stored before: answer with these offsets, write nothing."""

    batch: BatchMeta


Verdict = Duplicate | Rejected | None
"""``check``'s answer: None means "append it"."""


def last_sequence(header: BatchHeader) -> int:
    return (header.base_sequence + header.record_count - 1) % SEQUENCE_MODULUS


class ProducerEntry:
    """One producer on one partition: its epoch and its last few batches."""

    __slots__ = ("batches", "epoch", "last_seen")

    def __init__(self, epoch: int, last_seen: int, batches: tuple[BatchMeta, ...] = ()) -> None:
        self.epoch = epoch
        self.last_seen = last_seen
        self.batches: deque[BatchMeta] = deque(batches, maxlen=WINDOW)

    def __repr__(self) -> str:
        last = self.batches[-1].last_sequence if self.batches else None
        return f"<ProducerEntry epoch={self.epoch} last_sequence={last} batches={len(self.batches)}>"


class PartitionProducers:
    """The idempotence state of one partition: producer id -> ``ProducerEntry``."""

    def __init__(self) -> None:
        self.entries: dict[int, ProducerEntry] = {}

    def __repr__(self) -> str:
        return f"<PartitionProducers producers={len(self.entries)}>"

    def check(self, header: BatchHeader) -> Verdict:
        """What to do with an idempotent batch (see the module's table)."""
        if header.base_sequence < 0 or header.producer_epoch < 0:
            return Rejected(
                code="invalid_sequence",
                message=f"producer {header.producer_id} sent base_sequence {header.base_sequence} "
                f"and epoch {header.producer_epoch}; both must be >= 0",
            )
        entry = self.entries.get(header.producer_id)
        if entry is None or header.producer_epoch > entry.epoch or not entry.batches:
            return None
        if header.producer_epoch < entry.epoch:
            return Rejected(
                code="producer_fenced",
                message=f"producer {header.producer_id} epoch {header.producer_epoch} is older than "
                f"epoch {entry.epoch} already seen on this partition",
            )
        last = last_sequence(header)
        for meta in entry.batches:
            if meta.base_sequence == header.base_sequence and meta.last_sequence == last:
                return Duplicate(meta)
        expected = (entry.batches[-1].last_sequence + 1) % SEQUENCE_MODULUS
        if header.base_sequence == expected:
            return None
        ahead = (header.base_sequence - expected) % SEQUENCE_MODULUS
        if ahead >= SEQUENCE_MODULUS // 2:
            return Rejected(
                code="duplicate_sequence",
                message=f"producer {header.producer_id} sequences {header.base_sequence}..{last} were "
                f"written before, but are older than the last {WINDOW} batches the broker remembers "
                f"(next expected {expected}); their offsets are unknown",
            )
        return Rejected(
            code="out_of_order_sequence",
            message=f"producer {header.producer_id} sent sequence {header.base_sequence}, "
            f"expected {expected}: {ahead} records are missing in between",
        )

    def record(self, header: BatchHeader, base_offset: int, last_offset: int, append_time: int) -> None:
        """Remember a stored batch (just appended, or found in the log when rebuilding)."""
        entry = self.entries.get(header.producer_id)
        if entry is None or header.producer_epoch > entry.epoch:
            entry = self.entries[header.producer_id] = ProducerEntry(header.producer_epoch, append_time)
        entry.batches.append(
            BatchMeta(header.base_sequence, last_sequence(header), base_offset, last_offset, append_time)
        )
        entry.last_seen = max(entry.last_seen, append_time)

    def expire(self, now: int, expiry_ms: int) -> int:
        """Forget producers idle for ``expiry_ms``; returns how many."""
        stale = [pid for pid, entry in self.entries.items() if now - entry.last_seen >= expiry_ms]
        for pid in stale:
            del self.entries[pid]
        return len(stale)


class ProducerIds:
    """Hands out producer ids from blocks reserved durably in ``path`` (JSON ``{"next": N}``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        data = read_optional(path)
        try:
            start = int(json.loads(data)["next"]) if data else 0
        except (ValueError, KeyError, TypeError) as exc:
            raise DataDirError(f"producer id file {path} is damaged: {exc}") from exc
        self._next = self._limit = start

    def __repr__(self) -> str:
        return f"<ProducerIds next={self._next} reserved_until={self._limit}>"

    def allocate(self) -> int:
        if self._next >= self._limit:
            self._reserve(self._next + BLOCK)
        pid = self._next
        self._next += 1
        return pid

    def observe(self, producer_id: int) -> None:
        """A claimed id from an earlier run: never hand it out again."""
        if producer_id >= self._next:
            self._next = producer_id + 1
            if self._next > self._limit:
                self._reserve(self._next + BLOCK)

    def _reserve(self, limit: int) -> None:
        try:
            write_atomic(self.path, json.dumps({"next": limit}).encode() + b"\n")
        except OSError as exc:
            raise DataDirError(f"cannot reserve producer ids in {self.path}: {exc.strerror or exc}") from exc
        self._limit = limit


class ProducerRegistry:
    """Producer ids, their owning sessions, and the idempotence state of every loaded partition."""

    def __init__(self, ids: ProducerIds, *, expiry_ms: int = DEFAULT_EXPIRY_MS) -> None:
        self.ids = ids
        self.expiry_ms = expiry_ms
        self._owners: dict[int, str] = {}
        self._epochs: dict[int, int] = {}
        self._partitions: dict[tuple[str, int], PartitionProducers] = {}

    def __repr__(self) -> str:
        return f"<ProducerRegistry owned={len(self._owners)} partitions={len(self._partitions)}>"

    # -- sessions ------------------------------------------------------------------

    def claim(self, session_id: str, claim: ProducerClaim) -> tuple[int, int]:
        """The (producer id, epoch) a session produces with; a new id when the claim names none."""
        if claim.producer_id is None or claim.producer_epoch is None:
            pid, epoch = self.ids.allocate(), 0
        else:
            pid, epoch = claim.producer_id, claim.producer_epoch
            known = self._epochs.get(pid)
            if known is not None and epoch < known:
                raise ProducerFenced(f"producer {pid} epoch {epoch} is older than its current epoch {known}")
            self.ids.observe(pid)
        self._owners[pid] = session_id
        self._epochs[pid] = max(epoch, self._epochs.get(pid, epoch))
        return pid, epoch

    def release(self, session_id: str) -> None:
        for pid in [pid for pid, owner in self._owners.items() if owner == session_id]:
            del self._owners[pid]

    def owner_check(self, session_id: str, header: BatchHeader) -> Rejected | None:
        owner = self._owners.get(header.producer_id)
        if owner == session_id:
            return None
        if owner is None:
            return Rejected(
                code="unknown_producer",
                message=f"batch carries producer id {header.producer_id}, which this session did not "
                "claim: send a ProducerClaim in the Hello",
            )
        return Rejected(
            code="producer_fenced",
            message=f"producer {header.producer_id} belongs to another session (a newer claim took it over)",
        )

    # -- partitions ----------------------------------------------------------------

    def loaded(self, topic: str, partition: int) -> PartitionProducers | None:
        return self._partitions.get((topic, partition))

    def attach(self, topic: str, partition: int, state: PartitionProducers) -> None:
        self._partitions[topic, partition] = state
        for pid, entry in state.entries.items():
            self._epochs[pid] = max(entry.epoch, self._epochs.get(pid, entry.epoch))

    def record(
        self, topic: str, partition: int, header: BatchHeader, *, base: int, last: int, append_time: int
    ) -> None:
        self._partitions[topic, partition].record(header, base, last, append_time)
        pid = header.producer_id
        self._epochs[pid] = max(header.producer_epoch, self._epochs.get(pid, header.producer_epoch))

    def forget_topic(self, topic: str) -> None:
        for key in [key for key in self._partitions if key[0] == topic]:
            del self._partitions[key]

    def expire(self, now: int) -> int:
        return sum(state.expire(now, self.expiry_ms) for state in self._partitions.values())

    def partitions(self) -> Iterator[tuple[tuple[str, int], PartitionProducers]]:
        return iter(list(self._partitions.items()))
