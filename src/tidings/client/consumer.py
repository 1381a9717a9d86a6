"""Subscriptions: deliveries in, credits and coalesced acks out.

Flow control is by credits. Subscribe grants ``prefetch``; every message the
broker delivers uses one; the client gives one back for every message the
application settles (ack, nack or term). So at most ``prefetch`` messages
are ever held by the client, delivered and unsettled, however slow the
handler is, and the broker's memory per consumer is bounded too.

Acks are per message on the wire too, but sent as coalesced offset ranges
(``delivery_ranges``), tagged with the delivery each message came with, so
an ack that reaches the broker after the message was redelivered (its
handler overran the ack deadline) is ignored instead of settling the newer
delivery. Settlements collect in the subscription and go out
as one Ack (plus one Nack per (delay, reason), one Term per reason, and one
Credit for all of them) when any of these holds:

* ``ack_batch`` (256) settlements are waiting, or half of ``prefetch`` if that
  is fewer: a fast consumer sends few frames, and its credits go back while
  the other half of its window still has messages to hand out (with a
  ``prefetch`` below ``ack_batch``, waiting for the buffer to empty first
  halved a fast consumer's throughput);
* the application asks for the next message and none is buffered: it is
  about to wait for the broker, and holding its acks back would hold back
  the credits it needs (so a slow stream pays no added latency);
* ``ack_interval`` (5 ms) has passed since the first waiting settlement.

``await msg.ack()`` therefore returns at once; ``await sub.close()`` (and
``client.close()``) flush what is waiting.

Across a reconnect: messages buffered but not yet handed to the application
are dropped (the broker redelivers them: the member left), settlements are
kept and sent on the new connection, and the subscription is re-subscribed
with the same id, group and topic. Its position comes from the group's
committed progress, and its credits are ``prefetch`` minus the messages
the application still holds.

States (``SubscriptionState``)::

    SUBSCRIBING --Subscribed--> ACTIVE --connection lost--> RECONNECTING --Subscribed--> ACTIVE
         |                        |  \\--close()--> CLOSING --Unsubscribed--> CLOSED
         +--refused---------------+---broker's Unsubscribed / refused resubscribe--> CLOSED (error)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

from tidings.client.channel import Channel, call
from tidings.client.connection import ClientConnection
from tidings.client.delivery import BatchCache, records_in_spans
from tidings.client.message import (
    HeadersIn,
    Message,
    PublishResult,
    Settlement,
    encode_data,
    encode_headers,
)
from tidings.errors import ConnectionLost, InvalidBatchError, SubscriptionClosed, TidingsError
from tidings.protocol import (
    Ack,
    Credit,
    Deliver,
    Frame,
    GroupMode,
    Nack,
    Reply,
    Request,
    Start,
    Subscribe,
    Subscribed,
    Term,
    Unsubscribe,
    Unsubscribed,
    delivery_ranges,
)
from tidings.records import BatchBuilder, iter_records

log = logging.getLogger("tidings.client")

Position = tuple[str, int, int, int]  # (topic, partition, offset, delivery)


class SubscriptionState(enum.Enum):
    SUBSCRIBING = "subscribing"
    ACTIVE = "active"
    RECONNECTING = "reconnecting"
    CLOSING = "closing"
    CLOSED = "closed"


class SubscriptionOwner(Channel, Protocol):
    """What a subscription needs from its client."""

    def live_connection(self) -> ClientConnection | None:
        """The open connection right now, or None while reconnecting: for frames that may wait."""
        ...

    def detach(self, subscription: Subscription) -> None:
        """Stop routing frames to ``subscription``."""
        ...

    async def publish(
        self, topic: str, data: Any, *, key: str | bytes | None = None, headers: HeadersIn | None = None
    ) -> PublishResult: ...


class Subscription:
    """Messages of one topic (or pattern) for one consumer group. Iterate with ``async for``."""

    def __init__(
        self,
        owner: SubscriptionOwner,
        subscription_id: int,
        *,
        topic: str,
        group: str,
        mode: GroupMode,
        start: Start,
        prefetch: int,
        ack_deadline_ms: int,
        max_deliveries: int | None,
        requests: bool = True,
    ) -> None:
        self.id = subscription_id
        self.requests = requests
        self._flush_at = min(owner.config.ack_batch, max(1, prefetch // 2))
        self.topic = topic
        self.group = group
        self.mode = mode
        self.start = start
        self.prefetch = prefetch
        self.ack_deadline_ms = ack_deadline_ms
        self.max_deliveries = max_deliveries
        self.state = SubscriptionState.SUBSCRIBING
        self.error: TidingsError | None = None
        """Why the broker ended the subscription, if it did."""
        self._owner = owner
        self._config = owner.config
        self._buffer: deque[Message] = deque()
        self._wakeup = asyncio.Event()
        self._outstanding = 0  # delivered to this client and not settled
        self._owed = 0  # settled since the last Credit
        self._acks: list[Position] = []
        self._nacks: defaultdict[tuple[int, str | None], list[Position]] = defaultdict(list)
        self._terms: defaultdict[str | None, list[Position]] = defaultdict(list)
        self._waiting = 0  # settlements not yet sent
        self._timer: asyncio.TimerHandle | None = None
        self._joining: asyncio.Task[None] | None = None
        self._requests: dict[Message, tuple[ClientConnection, int]] = {}
        self._batches = BatchCache()

    def __repr__(self) -> str:
        return (
            f"<Subscription {self.id} {self.topic!r} group={self.group!r} {self.state.name} "
            f"buffered={len(self._buffer)} unsettled={self._outstanding} unsent_acks={self._waiting}>"
        )

    # -- user API -------------------------------------------------------------------------

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        while True:
            if self._buffer:
                return self._buffer.popleft()
            if self.state is SubscriptionState.CLOSED and self.error is not None:
                raise self.error
            if self.state in (SubscriptionState.CLOSING, SubscriptionState.CLOSED):
                raise StopAsyncIteration
            if self._waiting or self._owed:
                self.flush()  # about to wait for the broker: let it have our acks and credits now
            self._wakeup.clear()
            await self._wakeup.wait()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Unsubscribe. Settlements still waiting are sent first; messages not yet handed out are let go."""
        if self.state in (SubscriptionState.CLOSING, SubscriptionState.CLOSED):
            return
        was_active = self.state is SubscriptionState.ACTIVE
        self.flush()
        self.state = SubscriptionState.CLOSING
        self._wakeup.set()
        if self._joining is not None:
            self._joining.cancel()
        if was_active and self._owner.live_connection() is not None:
            with contextlib.suppress(TidingsError):
                await call(
                    self._owner,
                    lambda rid: Unsubscribe(request_id=rid, subscription_id=self.id),
                    Unsubscribed,
                    what=f"unsubscribe from {self.topic}",
                )
        self._end(None)

    def flush(self) -> None:
        """Send waiting settlements and credits now (``close`` does it for you)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self._owner.live_connection()
        if conn is None or self.state in (SubscriptionState.SUBSCRIBING, SubscriptionState.RECONNECTING):
            return  # kept for the next connection, after (re)subscribing
        try:
            if self._acks:
                conn.send(Ack(subscription_id=self.id, offsets=delivery_ranges(self._acks)))
                self._acks.clear()
            for (delay_ms, reason), positions in list(self._nacks.items()):
                offsets = delivery_ranges(positions)
                conn.send(Nack(subscription_id=self.id, offsets=offsets, delay_ms=delay_ms, reason=reason))
                del self._nacks[(delay_ms, reason)]
            for reason, positions in list(self._terms.items()):
                conn.send(Term(subscription_id=self.id, offsets=delivery_ranges(positions), reason=reason))
                del self._terms[reason]
            self._waiting = 0
            if self._owed and self.state is SubscriptionState.ACTIVE:
                conn.send(Credit(subscription_id=self.id, credits=self._owed))
                self._owed = 0
        except ConnectionLost:
            pass  # kept; the client reconnects and flushes again

    # -- settling (called by Message) -------------------------------------------------------

    def settle(self, message: Message, how: Settlement, *, delay: float, reason: str | None) -> None:
        position = (message.topic, message.partition, message.offset, message.delivery_count)
        if how == "ack":
            self._acks.append(position)
        elif how == "nack":
            self._nacks[(round(delay * 1000), reason)].append(position)
        else:
            self._terms[reason].append(position)
        self._outstanding -= 1
        self._owed += 1
        self._waiting += 1
        if self._waiting >= self._flush_at:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._config.ack_interval, self.flush)

    async def reply(self, message: Message, data: Any, headers: HeadersIn | None) -> None:
        if message.reply_to is not None:
            await self._owner.publish(message.reply_to, data, headers=headers)
            return
        conn, request_id = self._requests.pop(message, (None, 0))
        if conn is None or not conn.is_open:
            raise ConnectionLost(
                "cannot reply: the connection the request came on is gone (it was answered or lost)"
            )
        builder = BatchBuilder()
        builder.add(encode_data(data), headers=encode_headers(headers))
        conn.send(Reply(request_id=request_id, batch=builder.build()))

    # -- frames from the broker (called by the Client) ---------------------------------------

    def on_deliver(self, frame: Deliver) -> None:
        if self.state in (SubscriptionState.CLOSING, SubscriptionState.CLOSED):
            return  # the broker takes them back when the Unsubscribe lands
        try:
            received = list(records_in_spans(frame, self._batches))
        except InvalidBatchError as exc:
            self._refuse_corrupt(frame, exc)
            return
        for record, delivery in received:
            self._buffer.append(
                Message(
                    topic=frame.topic,
                    partition=frame.partition,
                    offset=record.offset,
                    record=record,
                    delivery_count=delivery,
                    settler=self,
                )
            )
        self._outstanding += len(received)
        self._wakeup.set()

    def on_request(self, frame: Request, conn: ClientConnection) -> None:
        """A request for this responder, forwarded by the broker."""
        try:
            record = next(iter(iter_records(frame.batch)))
        except (InvalidBatchError, StopIteration) as exc:
            log.warning("dropping a request on %s with an unreadable batch: %s", frame.topic, exc)
            return
        message = Message(
            topic=frame.topic,
            partition=-1,
            offset=-1,
            record=record,
            settler=self,
            reply_id=frame.request_id,
            reply_to=frame.reply_to,
        )
        self._requests[message] = (conn, frame.request_id)
        self._buffer.append(message)
        self._wakeup.set()

    def on_unsubscribed(self, frame: Unsubscribed) -> None:
        reason = frame.reason or "the broker ended the subscription"
        self._end(SubscriptionClosed(f"subscription to {self.topic} ended: {reason}", reason="unsubscribed"))

    # -- connection lifecycle (called by the Client) -----------------------------------------

    async def join(self) -> None:
        """Subscribe (first time): ``SubscriptionClosed`` if the broker refuses."""
        await self._subscribe(first=True)

    def on_connection_lost(self) -> None:
        dropped = [m for m in self._buffer if not m.is_request]
        self._outstanding -= len(dropped)
        self._buffer.clear()
        self._requests.clear()
        self._owed = 0
        if self.state is SubscriptionState.ACTIVE:
            self.state = SubscriptionState.RECONNECTING

    def on_client_closed(self) -> None:
        """The client closed under this subscription: end it quietly."""
        self.on_connection_lost()
        self._end(None)

    def on_reconnected(self) -> None:
        if self.state is SubscriptionState.RECONNECTING and self._joining is None:
            self._joining = asyncio.create_task(
                self._subscribe(first=False), name=f"tidings-resubscribe-{self.id}"
            )

    async def _subscribe(self, *, first: bool) -> None:
        try:
            await call(
                self._owner, self._subscribe_frame, Subscribed, what=f"subscribe to {self.topic}", retry=True
            )
        except ConnectionLost:
            if first:
                self._end(None)
                raise
            return  # still RECONNECTING: the next connection tries again
        except TidingsError as exc:
            code = getattr(exc, "code", "subscribe_failed")
            closed = SubscriptionClosed(f"cannot subscribe to {self.topic}: {exc}", reason=code)
            self._end(closed)
            if first:
                raise closed from exc
            return
        finally:
            self._joining = None
        if self.state in (SubscriptionState.SUBSCRIBING, SubscriptionState.RECONNECTING):
            self.state = SubscriptionState.ACTIVE
            self.flush()

    def _subscribe_frame(self, request_id: int) -> Frame:
        return Subscribe(
            request_id=request_id,
            subscription_id=self.id,
            topic=self.topic,
            group=self.group,
            mode=self.mode,
            start=self.start,
            credits=max(0, self.prefetch - self._outstanding),
            ack_deadline_ms=self.ack_deadline_ms,
            max_deliveries=self.max_deliveries,
            requests=self.requests,
        )

    def _end(self, error: TidingsError | None) -> None:
        if self.state is not SubscriptionState.CLOSED:
            self.state = SubscriptionState.CLOSED
            self.error = error
            self._owner.detach(self)
        self._wakeup.set()
        if self._waiting:
            self.flush()

    def _refuse_corrupt(self, frame: Deliver, exc: InvalidBatchError) -> None:
        """Hand a damaged delivery straight back (nack), which also returns its credits."""
        log.error(
            "delivery on %s/%s failed its checks (%s): nacked for redelivery",
            frame.topic,
            frame.partition,
            exc,
        )
        positions = [
            (frame.topic, frame.partition, offset, span.delivery)
            for span in frame.spans
            for offset in range(span.first, span.last + 1)
        ]
        self._nacks[(0, "corrupt batch")].extend(positions)
        self._owed += len({position[2] for position in positions})
        self._waiting += 1
        self.flush()
