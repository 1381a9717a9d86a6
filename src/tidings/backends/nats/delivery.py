"""Deliveries: a JetStream message or a core NATS request, seen as the contract's ``Delivery``.

A ``NatsDelivery`` is settled through its subscription (``Settler``), which
owns the bookkeeping: the prefetch window, the dead-letter topic, and
whether the message was handed back (after a reconnect or ``close``), after
which settling it does nothing. Each settlement is sent as a JetStream
acknowledgement *with a reply subject*, so the server confirms it: an
``ack`` that returned is recorded, and survives a restart of the server.

* ``ack`` -> ``+ACK``.
* ``nack(delay)`` -> ``-NAK {"delay": ns}``; at the subscription's
  ``max_deliveries``, the message is dead-lettered instead (below).
* ``term(reason)`` -> the message is republished to
  ``dead_letter_topic(topic, group)`` with the ``DLQ_*`` headers, then
  ``+TERM``: JetStream itself only emits an advisory, so the adapter writes
  the dead letter on the server's behalf.

A ``NatsRequest`` is a request on the topic's request subject: ``reply``
answers it; settling it does nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from tidings.backends.base import HeadersIn
from tidings.backends.nats import codec, naming
from tidings.backends.nats.errors import translated
from tidings.errors import InvalidArgument


class Settlement(enum.Enum):
    ACK = "ack"
    NACK = "nack"
    TERM = "term"


class Settler(Protocol):
    async def settle(
        self, delivery: NatsDelivery, how: Settlement, delay: float, reason: str | None
    ) -> None: ...


class NatsDelivery:
    """One JetStream message of a subscription."""

    __slots__ = (
        "_settler",
        "append_time",
        "data",
        "delivery_count",
        "handed",
        "headers",
        "key",
        "msg",
        "msg_id",
        "offset",
        "partition",
        "settled",
        "stored_id",
        "superseded",
        "timestamp",
        "topic",
    )

    def __init__(self, msg: Msg, topic: str, settler: Settler) -> None:
        metadata = msg.metadata
        fields = codec.incoming(msg.headers)
        self.msg = msg
        self.topic = topic
        self.partition = naming.partition_of(msg.subject)
        self.offset: int = metadata.sequence.stream
        self.key = fields.key
        self.headers: Mapping[str, bytes] = fields.headers
        self.data: bytes = msg.data
        self.msg_id = fields.msg_id
        self.stored_id = codec.raw_msg_id(msg.headers)
        self.append_time: datetime | None = metadata.timestamp
        self.timestamp: datetime = fields.timestamp or metadata.timestamp or datetime.now(UTC)
        self.delivery_count: int = metadata.num_delivered
        self.settled = False
        """Settled, handed back, or superseded by a redelivery: settling it again does nothing."""
        self.handed = False
        """Handed to the application (else still waiting in the subscription's window)."""
        self.superseded = False
        """Redelivered while the application held it: its one late settlement still reaches the server."""
        self._settler = settler

    def __repr__(self) -> str:
        state = "settled" if self.settled else "unsettled"
        return (
            f"<NatsDelivery {self.topic}[{self.partition}]@{self.offset} "
            f"delivery={self.delivery_count} {len(self.data)}B {state}>"
        )

    @property
    def is_request(self) -> bool:
        return False

    async def ack(self) -> None:
        await self._settler.settle(self, Settlement.ACK, 0.0, None)

    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        if delay < 0:
            raise InvalidArgument(f"nack delay must be >= 0 seconds, not {delay}")
        await self._settler.settle(self, Settlement.NACK, delay, reason)

    async def term(self, reason: str | None = None) -> None:
        await self._settler.settle(self, Settlement.TERM, 0.0, reason)

    async def reply(self, data: bytes, *, headers: HeadersIn | None = None) -> None:
        raise InvalidArgument(f"{self!r} is a stored message, not a request: there is no one to reply to")


class NatsRequest:
    """A request delivered to one member of the group (a queue subscription on the request subject)."""

    __slots__ = ("_nc", "_reply_to", "data", "headers", "key", "timestamp", "topic")

    def __init__(self, msg: Msg, topic: str, nc: NatsClient) -> None:
        fields = codec.incoming(msg.headers)
        self._nc = nc
        self._reply_to = msg.reply
        self.topic = topic
        self.key = fields.key
        self.headers: Mapping[str, bytes] = fields.headers
        self.data: bytes = msg.data
        self.timestamp: datetime = fields.timestamp or datetime.now(UTC)

    def __repr__(self) -> str:
        return f"<NatsRequest {self.topic} {len(self.data)}B>"

    partition = -1
    offset = -1
    msg_id: str | None = None
    append_time: datetime | None = None
    delivery_count = 1

    @property
    def is_request(self) -> bool:
        return True

    async def ack(self) -> None:
        return None

    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        return None

    async def term(self, reason: str | None = None) -> None:
        return None

    async def reply(self, data: bytes, *, headers: HeadersIn | None = None) -> None:
        if not self._reply_to:
            raise InvalidArgument(f"{self!r} was published without a reply subject")
        with translated(f"replying to a request on {self.topic!r}"):
            await self._nc.publish(self._reply_to, bytes(data), headers=codec.reply_headers(headers))
