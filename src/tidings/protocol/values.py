"""The value types that frames are built from: constrained scalars, enums and small structs.

The constraints sit in the types as ``msgspec.Meta``, so msgspec enforces
them while it decodes a header. A peer's negative partition, unknown ack
mode or malformed topic name becomes a ``MalformedFrame`` that names the
field, before any owner code runs. Checks that span fields, such as
``first <= last``, live in ``__post_init__``. msgspec runs that on decode
too, and also when our own code builds a value, so a bug shows up at the
sender and not at the peer.

Every struct is ``array_like``: on the wire it is a msgpack array of its
fields in the order they are declared, with no field names. That is why
fields are only ever *appended*. A decoder ignores trailing elements it does
not know, and fills trailing elements that are missing from their defaults,
so an old peer and a new peer can still talk within one protocol version.
Tagged unions (start positions, produce results, admin bodies) carry a small
integer tag as their first element.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final

import msgspec

from tidings.protocol import names

# -- constrained scalars ----------------------------------------------------------------

Id = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A request, subscription or session-scoped number chosen by its sender (int64, >= 0)."""

Offset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A record's position in its partition (int64, >= 0), as in the record-batch format."""

Partition = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]

Millis = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A time (ms since the Unix epoch) or a duration (ms)."""

Count = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
Positive = Annotated[int, msgspec.Meta(ge=1, le=2**32 - 1)]
Nonce = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # msgspec bounds stop at int64
Version = Annotated[int, msgspec.Meta(ge=0, le=2**16 - 1)]
ProducerId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ProducerEpoch = Annotated[int, msgspec.Meta(ge=0, le=2**15 - 1)]
"""int16 as in the batch header, where -1 means "not idempotent", so never -1 here."""

_MAX = names.MAX_NAME_LENGTH
TopicName = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX, pattern=names.TOPIC_NAME)]
TopicPattern = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX, pattern=names.TOPIC_PATTERN)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=_MAX, pattern=names.NAME)]
"""A consumer group or service name."""

ErrorCode = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*\Z")]
"""A stable, machine-readable error code in snake_case, like ``frame_too_large``."""

MIN_FRAME_SIZE: Final = 64 * 1024
"""The smallest frame limit a peer may announce: it must fit a handshake and a few batches."""
MAX_FRAME_SIZE_LIMIT: Final = 2**32 - 1
FrameSize = Annotated[int, msgspec.Meta(ge=MIN_FRAME_SIZE, le=MAX_FRAME_SIZE_LIMIT)]


class Value(msgspec.Struct, frozen=True, array_like=True):
    """Base of every struct carried inside a frame header: immutable and compact on the wire."""


# -- enums (sent as their integer values) -------------------------------------------------


class AckMode(enum.IntEnum):
    """When the broker answers a Produce."""

    NONE = 0
    """Fire and forget: no ProduceResult. A failure comes back as a request-scoped Error."""
    DURABLE = 1
    """ProduceResult once the batches are durable under the topic's fsync policy."""


class GroupMode(enum.IntEnum):
    """How the members of one consumer group share a subscription's work."""

    PARTITIONED = 0
    """Partitions are assigned to members, so each key is handled in order by one member."""
    SHARED = 1
    """Any member takes any message. There is no order, and parallelism is highest."""


# -- start positions: where a group with no committed position begins -----------------------


class Earliest(Value, frozen=True, kw_only=True, tag=0):
    """The oldest record still retained."""


class Latest(Value, frozen=True, kw_only=True, tag=1):
    """Only records appended after the subscription (or reset) takes effect."""


class AtOffset(Value, frozen=True, kw_only=True, tag=2):
    """This offset in every partition (clamped to what is retained)."""

    offset: Offset


class AtTime(Value, frozen=True, kw_only=True, tag=3):
    """The first record whose append time is at or after ``time`` (ms since the epoch)."""

    time: Millis


Start = Earliest | Latest | AtOffset | AtTime


# -- handshake --------------------------------------------------------------------------------


class ProducerClaim(Value, frozen=True, kw_only=True):
    """A Hello's request to produce idempotently.

    With no id the broker assigns a new one. With the id and epoch of an
    earlier session, the producer resumes its sequence numbers, so a batch it
    retries after a reconnect is not written twice.
    """

    producer_id: ProducerId | None = None
    producer_epoch: ProducerEpoch | None = None

    def __post_init__(self) -> None:
        if (self.producer_id is None) != (self.producer_epoch is None):
            raise ValueError("a producer claim gives both producer_id and producer_epoch, or neither")


# -- produce results ------------------------------------------------------------------------


class Appended(Value, frozen=True, kw_only=True, tag=0):
    """One batch of a Produce is stored, at offsets ``base_offset..last_offset`` inclusive."""

    partition: Partition
    base_offset: Offset
    last_offset: Offset
    append_time: Millis
    duplicate: bool = False
    """True when an idempotent retry matched a batch already stored: same offsets, not written twice."""

    def __post_init__(self) -> None:
        if self.last_offset < self.base_offset:
            raise ValueError(f"last_offset {self.last_offset} < base_offset {self.base_offset}")


class Rejected(Value, frozen=True, kw_only=True, tag=1):
    """One batch of a Produce was refused, such as a CRC mismatch, a sequence gap or a full disk."""

    code: ErrorCode
    message: str


BatchResult = Appended | Rejected


# -- deliveries -----------------------------------------------------------------------------


class DeliverySpan(Value, frozen=True, kw_only=True):
    """Which records of one delivered batch are for the consumer, and on which delivery.

    The broker sends stored batches as they are, and never cuts records out of
    them. To deliver only part of a batch (a redelivery of one message, or a
    partition read from the middle of a batch), it sends the whole batch and
    names the offsets that count. Records outside every span of their batch
    are skipped by the consumer. ``delivery`` is 1 on the first delivery and
    grows with each redelivery; it is what ``max_deliveries`` is compared to.
    """

    batch: Count
    """Index of the batch in the frame's payload."""
    first: Offset
    last: Offset
    delivery: Positive = 1

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"delivery span last {self.last} < first {self.first}")
