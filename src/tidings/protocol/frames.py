"""Every frame of the Tidings wire protocol, as an immutable value.

A frame is a frozen ``msgspec.Struct``. Its ``kind`` (a class attribute) is
the byte that names it on the wire (see ``tidings.protocol.codec``), and its
fields are the header, a msgpack array in declaration order. Four kinds also
carry record batches in the frame's payload, *outside* the header, so the
bytes a producer built are the bytes the broker stores and a consumer
receives:

* ``Produce`` and ``Deliver`` carry ``batches``: one or more batches.
* ``Request`` and ``Reply`` carry ``batch``: exactly one batch.

Decoded batches are ``memoryview`` slices of the received bytes, not
copies. Keep the views or copy them with ``bytes(view)``. Either way the
frame's bytes stay alive as long as a view does.

Who may send what, and when, is in ``tidings.protocol.state``. Responses
carry the ``request_id`` of the request they answer. Ids are chosen by the
sender of the request, are unique among its requests in flight on the
connection, and mean nothing on any other connection.
"""

from __future__ import annotations

import enum
from typing import ClassVar, Final

import msgspec

from tidings.errors import TidingsError
from tidings.protocol.admin import AdminRequestBody, AdminResponseBody
from tidings.protocol.ranges import PartitionRanges, check_unique_partitions
from tidings.protocol.values import (
    AckMode,
    BatchResult,
    Count,
    DeliverySpan,
    ErrorCode,
    FrameSize,
    GroupMode,
    Id,
    Latest,
    Millis,
    Name,
    Nonce,
    Partition,
    Positive,
    ProducerClaim,
    ProducerEpoch,
    ProducerId,
    Start,
    TopicName,
    TopicPattern,
    Version,
)
from tidings.records import Buffer

PROTOCOL_VERSION: Final = 1
"""The newest protocol version this build speaks."""
MIN_PROTOCOL_VERSION: Final = 1
"""The oldest protocol version this build still speaks."""

MAX_ERROR_MESSAGE: Final = 1024
"""``error_frame`` cuts longer messages, so an Error frame stays small whatever the exception says."""


class FrameKind(enum.IntEnum):
    """The ``kind`` byte of each frame. Numbers are grouped by purpose, and gaps leave room to grow."""

    HELLO = 1
    WELCOME = 2
    CLOSE = 3
    ERROR = 4
    PING = 5
    PONG = 6
    PRODUCE = 10
    PRODUCE_RESULT = 11
    SUBSCRIBE = 20
    SUBSCRIBED = 21
    UNSUBSCRIBE = 22
    UNSUBSCRIBED = 23
    DELIVER = 24
    CREDIT = 25
    ACK = 26
    NACK = 27
    TERM = 28
    REQUEST = 30
    REPLY = 31
    NO_RESPONDERS = 32
    ADMIN_REQUEST = 40
    ADMIN_RESPONSE = 41


class Frame(msgspec.Struct, frozen=True, array_like=True):
    """Base of every frame. Subclasses set ``kind``.

    Required fields come first, and new fields are only ever appended, with a
    default: the wire order is the declaration order.
    """

    kind: ClassVar[FrameKind]


# -- connection lifecycle -------------------------------------------------------------------


class Hello(Frame, frozen=True, kw_only=True):
    """Client to server, first frame: who is connecting, and what it wants from the session."""

    kind: ClassVar[FrameKind] = FrameKind.HELLO
    protocol_version: Version
    """The newest version the client speaks. The server answers with the version both will use."""
    service: Name
    """The service the client runs as: the broker's flow map is drawn with these names."""
    client_id: str
    max_frame_size: FrameSize
    """The largest frame (length field) the client accepts; the server never sends a larger one."""
    auth_token: str | None = None
    """A token the broker's ``[auth]`` configuration grants (docs/security.md)."""
    producer: ProducerClaim | None = None
    """Present when the client wants to produce idempotently."""
    username: str | None = None
    """With ``password``: the other way to authenticate. Send both only over TLS off loopback."""
    password: str | None = None

    def __repr__(self) -> str:  # the default repr would put secrets in logs and test output
        secret = "***" if self.auth_token or self.password else None
        return (
            f"Hello(protocol_version={self.protocol_version}, service={self.service!r}, "
            f"client_id={self.client_id!r}, max_frame_size={self.max_frame_size}, "
            f"auth_token={secret if self.auth_token else None}, producer={self.producer!r}, "
            f"username={self.username!r}, password={secret if self.password else None})"
        )


class Welcome(Frame, frozen=True, kw_only=True):
    """Server to client: the handshake succeeded, and these are the session's terms."""

    kind: ClassVar[FrameKind] = FrameKind.WELCOME
    protocol_version: Version
    broker_id: str
    broker_version: str
    session_id: str
    max_frame_size: FrameSize
    """The largest frame the broker accepts. The client splits its Produce frames to fit."""
    producer_id: ProducerId | None = None
    producer_epoch: ProducerEpoch | None = None


class Close(Frame, frozen=True, kw_only=True):
    """Either side: "I will send nothing more". The other side may still finish and reply, then Close."""

    kind: ClassVar[FrameKind] = FrameKind.CLOSE
    reason: str = ""


class Error(Frame, frozen=True, kw_only=True):
    """Either side: something failed.

    With a ``request_id`` the error answers one request, and the connection
    goes on. Without one it is *fatal*: like Close, the sender will send
    nothing more and will close the connection.
    """

    kind: ClassVar[FrameKind] = FrameKind.ERROR
    code: ErrorCode
    message: str
    request_id: Id | None = None

    @property
    def fatal(self) -> bool:
        return self.request_id is None


class Ping(Frame, frozen=True, kw_only=True):
    """Either side: are you there? Answered by a Pong with the same nonce."""

    kind: ClassVar[FrameKind] = FrameKind.PING
    nonce: Nonce


class Pong(Frame, frozen=True, kw_only=True):
    kind: ClassVar[FrameKind] = FrameKind.PONG
    nonce: Nonce


# -- producing ----------------------------------------------------------------------------


class Produce(Frame, frozen=True, kw_only=True):
    """Client to server: append ``batches`` to ``topic``.

    ``partition=None`` lets the broker choose by the key of each batch's first
    record. Producers therefore batch per key, or per partition when they
    choose it themselves.
    """

    kind: ClassVar[FrameKind] = FrameKind.PRODUCE
    request_id: Id
    topic: TopicName
    batches: tuple[Buffer, ...]
    partition: Partition | None = None
    ack: AckMode = AckMode.DURABLE

    def __post_init__(self) -> None:
        if not self.batches:
            raise ValueError("a Produce carries at least one batch")


class ProduceResult(Frame, frozen=True, kw_only=True):
    """Server to client: one result per batch of the Produce, in the same order."""

    kind: ClassVar[FrameKind] = FrameKind.PRODUCE_RESULT
    request_id: Id
    results: tuple[BatchResult, ...]


# -- consuming ----------------------------------------------------------------------------


class Subscribe(Frame, frozen=True, kw_only=True):
    """Client to server: join ``group`` on ``topic`` (a name or a pattern) and start deliveries.

    ``subscription_id`` is chosen by the client, so it can route a Deliver
    that arrives before the Subscribed. ``start`` applies where the group
    has no committed position yet. ``credits`` is how many messages may be
    delivered before the next Credit. ``max_deliveries=None`` means no limit.
    Past the limit, a message goes to the dead-letter topic. ``requests``:
    whether Requests to the topic may be routed to this subscription (a
    responder); False for one that only consumes events, so a request never
    lands where nobody will answer it.
    """

    kind: ClassVar[FrameKind] = FrameKind.SUBSCRIBE
    request_id: Id
    subscription_id: Id
    topic: TopicPattern
    group: Name
    mode: GroupMode = GroupMode.PARTITIONED
    start: Start = Latest()
    credits: Count = 0
    ack_deadline_ms: Positive = 30_000
    max_deliveries: Positive | None = None
    requests: bool = True


class Subscribed(Frame, frozen=True, kw_only=True):
    """Server to client: the subscription is live."""

    kind: ClassVar[FrameKind] = FrameKind.SUBSCRIBED
    request_id: Id
    subscription_id: Id


class Unsubscribe(Frame, frozen=True, kw_only=True):
    """Client to server: stop deliveries. In-flight messages are still settled by the client's acks."""

    kind: ClassVar[FrameKind] = FrameKind.UNSUBSCRIBE
    request_id: Id
    subscription_id: Id


class Unsubscribed(Frame, frozen=True, kw_only=True):
    """Server to client: no Deliver for this subscription follows this frame.

    This answers an Unsubscribe (``request_id`` set), or it ends the
    subscription on the broker's side (no ``request_id``, and a ``reason``
    such as a deleted topic).
    """

    kind: ClassVar[FrameKind] = FrameKind.UNSUBSCRIBED
    subscription_id: Id
    request_id: Id | None = None
    reason: str | None = None


class Deliver(Frame, frozen=True, kw_only=True):
    """Server to client: messages of one partition for one subscription.

    ``spans`` names, for each batch, the offsets delivered and their
    delivery count (see ``DeliverySpan``). Every span names a batch of the
    frame, and every batch is named by at least one span. Each delivered
    message uses one credit.
    """

    kind: ClassVar[FrameKind] = FrameKind.DELIVER
    subscription_id: Id
    topic: TopicName
    partition: Partition
    spans: tuple[DeliverySpan, ...]
    batches: tuple[Buffer, ...]

    def __post_init__(self) -> None:
        if not self.batches:
            raise ValueError("a Deliver carries at least one batch")
        named = set()
        for span in self.spans:
            if span.batch >= len(self.batches):
                raise ValueError(f"delivery span names batch {span.batch} of {len(self.batches)}")
            named.add(span.batch)
        if len(named) != len(self.batches):
            unnamed = sorted(set(range(len(self.batches))) - named)
            raise ValueError(f"batches {unnamed} have no delivery span: they would be sent for nothing")


class Credit(Frame, frozen=True, kw_only=True):
    """Client to server: the broker may deliver ``credits`` more messages on this subscription."""

    kind: ClassVar[FrameKind] = FrameKind.CREDIT
    subscription_id: Id
    credits: Positive


class Ack(Frame, frozen=True, kw_only=True):
    """Client to server: each listed message was handled. See ``tidings.protocol.ranges``."""

    kind: ClassVar[FrameKind] = FrameKind.ACK
    subscription_id: Id
    offsets: tuple[PartitionRanges, ...]

    def __post_init__(self) -> None:
        check_unique_partitions(self.offsets)


class Nack(Frame, frozen=True, kw_only=True):
    """Client to server: each listed message failed. Redeliver it after ``delay_ms``.

    Once past ``max_deliveries``, it is dead-lettered with ``reason``.
    """

    kind: ClassVar[FrameKind] = FrameKind.NACK
    subscription_id: Id
    offsets: tuple[PartitionRanges, ...]
    delay_ms: Millis = 0
    reason: str | None = None

    def __post_init__(self) -> None:
        check_unique_partitions(self.offsets)


class Term(Frame, frozen=True, kw_only=True):
    """Client to server: never redeliver these messages. They go to the dead-letter topic with ``reason``."""

    kind: ClassVar[FrameKind] = FrameKind.TERM
    subscription_id: Id
    offsets: tuple[PartitionRanges, ...]
    reason: str | None = None

    def __post_init__(self) -> None:
        check_unique_partitions(self.offsets)


# -- request / reply ------------------------------------------------------------------------


class Request(Frame, frozen=True, kw_only=True):
    """Either direction: a request whose message is ``batch``.

    A client sends it to the broker. The broker forwards it, with its own
    ``request_id``, to one responder subscribed to ``topic``. A reply goes back
    as a Reply on each hop. With ``reply_to`` set, the responder publishes its
    reply to that topic instead, which gives durable replies.
    """

    kind: ClassVar[FrameKind] = FrameKind.REQUEST
    request_id: Id
    topic: TopicName
    timeout_ms: Positive
    batch: Buffer
    reply_to: TopicName | None = None


class Reply(Frame, frozen=True, kw_only=True):
    """Either direction: the answer to the Request with this ``request_id`` (the correlation id)."""

    kind: ClassVar[FrameKind] = FrameKind.REPLY
    request_id: Id
    batch: Buffer


class NoResponders(Frame, frozen=True, kw_only=True):
    """Server to client: no one is subscribed to the Request's topic."""

    kind: ClassVar[FrameKind] = FrameKind.NO_RESPONDERS
    request_id: Id


# -- administration -------------------------------------------------------------------------


class AdminRequest(Frame, frozen=True, kw_only=True):
    """Client to server: one administrative operation (see ``tidings.protocol.admin``)."""

    kind: ClassVar[FrameKind] = FrameKind.ADMIN_REQUEST
    request_id: Id
    body: AdminRequestBody


class AdminResponse(Frame, frozen=True, kw_only=True):
    kind: ClassVar[FrameKind] = FrameKind.ADMIN_RESPONSE
    request_id: Id
    body: AdminResponseBody


def error_frame(exc: TidingsError, *, request_id: int | None = None) -> Error:
    """The Error frame that reports ``exc`` to the peer.

    The code is the exception's ``code`` attribute, or ``internal_error`` for
    errors that have none.
    """
    code = getattr(exc, "code", "internal_error")
    message = str(exc) or type(exc).__name__
    if len(message) > MAX_ERROR_MESSAGE:
        message = message[: MAX_ERROR_MESSAGE - 3] + "..."
    return Error(code=code, message=message, request_id=request_id)
