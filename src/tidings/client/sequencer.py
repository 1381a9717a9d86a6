"""Idempotent producing: the producer id, and the sequence numbers of each partition's batches.

The broker grants a producer id and epoch in Welcome, in answer to the
Hello's ``ProducerClaim``. Every batch carries them, with a
``base_sequence``: record ``i`` of the batch has sequence ``base_sequence +
i``, counted per (topic, partition) and wrapping at 2**31 (int32 in the batch
header), as Kafka's do. A batch retried after a reconnect is sent again byte
for byte, under the same id, epoch and sequence, on a connection whose Hello
claimed that id again; the broker recognises it and answers
``duplicate=True`` with the offsets it already gave it.

The rules kept here, with no I/O:

* A batch is numbered once, when first encoded, and keeps its bytes for as
  long as the identity lasts (``encode``).
* A batch the broker refused did not use its numbers: the partition's next
  batch takes them over (``rewind``).
* If the broker grants a different id (it lost producer state), numbering
  starts again from 0 and batches in flight are renumbered: the broker could
  not recognise them anyway.
* If a batch is given up without an answer (no connection in time), the
  broker may or may not have stored it, so its numbers must never be reused
  for other records: the next Hello asks for a fresh id (``lose_track``).
"""

from __future__ import annotations

from dataclasses import dataclass

from tidings.protocol import ProducerClaim, Welcome
from tidings.records import BatchBuilder

SEQUENCE_LIMIT = 2**31

Identity = tuple[int, int]  # (producer_id, producer_epoch)
PartitionKey = tuple[str, int | None]
"""(topic, partition); partition None for the lone Produce that creates a topic."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """A batch's bytes, and the identity and first sequence they were built with."""

    data: bytes
    identity: Identity | None
    base_sequence: int
    records: int

    @property
    def end_sequence(self) -> int:
        return (self.base_sequence + self.records) % SEQUENCE_LIMIT


class Sequencer:
    """The producer identity of the session and the next sequence number of each partition."""

    def __init__(self) -> None:
        self.identity: Identity | None = None
        self._next: dict[PartitionKey, int] = {}
        self._fresh = False

    def __repr__(self) -> str:
        return f"<Sequencer identity={self.identity} partitions={len(self._next)} fresh={self._fresh}>"

    def claim(self) -> ProducerClaim:
        """What the next Hello asks for: this id and epoch again, or a new id."""
        if self.identity is None or self._fresh:
            return ProducerClaim()
        return ProducerClaim(producer_id=self.identity[0], producer_epoch=self.identity[1])

    def adopt(self, welcome: Welcome) -> bool:
        """Take the identity a Welcome grants; True if it changed (numbering restarts from 0)."""
        granted = (
            None
            if welcome.producer_id is None or welcome.producer_epoch is None
            else (welcome.producer_id, welcome.producer_epoch)
        )
        self._fresh = False
        if granted == self.identity:
            return False
        self.identity = granted
        self._next.clear()
        return True

    def lose_track(self) -> None:
        """Batches were given up unanswered: ask for a fresh id on the next connection."""
        self._fresh = True

    def encode(self, key: PartitionKey, builder: BatchBuilder, previous: Encoded | None) -> Encoded:
        """The batch's bytes: ``previous`` again if still valid (a retry), else built and numbered now."""
        if previous is not None and previous.identity == self.identity:
            return previous
        if self.identity is None:
            return Encoded(builder.build(), None, -1, len(builder))
        sequence = self._next.get(key, 0)
        producer_id, epoch = self.identity
        data = builder.build(producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence)
        encoded = Encoded(data, self.identity, sequence, len(builder))
        self._next[key] = encoded.end_sequence
        return encoded

    def rewind(self, key: PartitionKey, sent: list[Encoded], last_appended: Encoded | None) -> None:
        """Some of ``sent`` (one Produce, in order) were refused: give back the numbers not taken.

        The next batch follows the last one appended, or, if none was,
        takes the first refused batch's numbers.
        """
        if self.identity is None or not sent or sent[0].identity != self.identity:
            return
        self._next[key] = last_appended.end_sequence if last_appended is not None else sent[0].base_sequence

    def moved(self, key: PartitionKey, to: PartitionKey, encoded: Encoded) -> None:
        """The batch numbered under ``key`` (no partition yet) was placed in ``to`` by the broker."""
        self._next.pop(key, None)
        if encoded.identity is not None and encoded.identity == self.identity:
            self._next[to] = encoded.end_sequence

    def forget_topic(self, topic: str) -> None:
        """The topic is new (again): this producer never wrote to it, so its sequences start at 0."""
        for key in [k for k in self._next if k[0] == topic]:
            del self._next[key]
