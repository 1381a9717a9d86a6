"""``Delivery`` objects: a stream entry handed to a subscription, or a request handed to a responder.

A ``RedisDelivery`` settles through its subscription (``Settler``), at most
once: the first ``ack``/``nack``/``term`` wins and later ones do nothing. A
``RequestDelivery`` is not stored (``partition`` and ``offset`` are -1);
settling it does nothing and ``reply`` publishes the answer to the
requester's reply channel.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from tidings.backends.base import HeadersIn
from tidings.backends.redis.codec import Entry, Request
from tidings.backends.redis.keys import StreamId
from tidings.errors import InvalidArgument


class Settler(Protocol):
    """What settles a ``RedisDelivery``: its subscription."""

    async def settle_ack(self, delivery: RedisDelivery) -> None: ...
    async def settle_nack(self, delivery: RedisDelivery, delay: float, reason: str | None) -> None: ...
    async def settle_term(self, delivery: RedisDelivery, reason: str | None) -> None: ...


class RedisDelivery:
    """One stream entry delivered to one member of a group."""

    __slots__ = ("_entry", "_settler", "delivery_count", "id", "partition", "settled", "topic")

    def __init__(
        self,
        topic: str,
        partition: int,
        entry_id: StreamId,
        entry: Entry,
        *,
        delivery_count: int,
        settler: Settler,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.id = entry_id
        self._entry = entry
        self.delivery_count = delivery_count
        self._settler = settler
        self.settled = False

    def __repr__(self) -> str:
        state = "settled" if self.settled else "unsettled"
        return (
            f"<RedisDelivery {self.topic}[{self.partition}]@{self.offset} id={self.id} "
            f"delivery={self.delivery_count} {state} data={self.data[:32]!r}>"
        )

    @property
    def offset(self) -> int:
        return self.id.offset

    @property
    def key(self) -> bytes | None:
        return self._entry.key

    @property
    def headers(self) -> Mapping[str, bytes]:
        return self._entry.headers

    @property
    def data(self) -> bytes:
        return self._entry.data

    @property
    def msg_id(self) -> str | None:
        return self._entry.msg_id

    @property
    def timestamp(self) -> datetime:
        return self._entry.timestamp

    @property
    def append_time(self) -> datetime | None:
        return self.id.append_time

    @property
    def is_request(self) -> bool:
        return False

    def _first_settlement(self) -> bool:
        if self.settled:
            return False
        self.settled = True
        return True

    async def ack(self) -> None:
        if self._first_settlement():
            await self._settler.settle_ack(self)

    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        if delay < 0:
            raise InvalidArgument(f"nack delay must be >= 0 seconds, not {delay}")
        if self._first_settlement():
            await self._settler.settle_nack(self, delay, reason)

    async def term(self, reason: str | None = None) -> None:
        if self._first_settlement():
            await self._settler.settle_term(self, reason)

    async def reply(self, data: bytes, *, headers: HeadersIn | None = None) -> None:
        raise InvalidArgument(f"{self!r} is a stored message, not a request: there is no one to reply to")


Replier = Callable[[Request, bytes, HeadersIn | None], Awaitable[None]]
"""Publishes a reply to ``request``'s requester."""


class RequestDelivery:
    """A request taken from a topic's request list by this responder."""

    __slots__ = ("_replier", "_request", "replied", "topic")

    def __init__(self, topic: str, request: Request, replier: Replier) -> None:
        self.topic = topic
        self._request = request
        self._replier = replier
        self.replied = False

    def __repr__(self) -> str:
        return f"<RequestDelivery {self.topic} id={self._request.id} data={self.data[:32]!r}>"

    partition = -1
    offset = -1
    delivery_count = 1
    append_time = None
    msg_id = None

    @property
    def key(self) -> bytes | None:
        return self._request.key

    @property
    def headers(self) -> Mapping[str, bytes]:
        return self._request.headers

    @property
    def data(self) -> bytes:
        return self._request.data

    @property
    def timestamp(self) -> datetime:
        return datetime.fromtimestamp(self._request.producer_ms / 1000, UTC)

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
        if self.replied:
            return
        self.replied = True
        await self._replier(self._request, data, headers)
