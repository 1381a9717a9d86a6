"""A subscription: its pullers, the prefetch window, settling, and dead letters.

Where messages come from (``pulling.Puller``):

* ``shared`` mode: one puller on the group's consumer (``<group>``); any
  member takes any message.
* ``partitioned`` mode: one consumer per partition (``<group>_p<N>``), pulled
  only by the member that owns the partition (``ownership``), so each
  partition, hence each key, is read by one member at a time, in order.

The window. Each puller asks the server for at most ``prefetch`` messages
not yet settled; they wait here in arrival order, and at most ``prefetch``
of them are handed to the application unsettled at a time. Unsettled and
waiting messages are kept by stream sequence: a redelivery of one still
waiting takes its place; a redelivery of one the application holds is
queued as a new delivery (the old one's late settlement still reaches the
server, which acknowledges by sequence).

After a reconnect every unsettled message is handed back with ``-NAK`` and
later settlements of it are ignored: the consumer is durable and forgets
nothing, but would otherwise redeliver them only when their ack deadline
runs out, behind newer messages. ``close`` hands them back the same way.

Requests to the topic arrive on a core NATS queue subscription, made only
with ``requests=True``; every such subscription of the topic, whatever its
group, is in the one queue group ``RESPONDERS``, so each request reaches
exactly one of them. They are handed out first and are not counted in the
window.

Dead letters (``native_dead_letters``, done by the adapter): ``term`` and a
``nack`` of the ``max_deliveries``-th delivery republish the message to
``dead_letter_topic(topic, group)`` with the ``DLQ_*`` headers, then
``+TERM`` it. A message that comes back past ``max_deliveries`` (its last
allowed delivery's ack deadline ran out; the consumer allows one extra
delivery for this) is dead-lettered the same way without reaching the
application.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub

from tidings.backends.base import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    OutgoingMessage,
    Receipt,
    dead_letter_topic,
)
from tidings.backends.nats import codec, naming
from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.delivery import NatsDelivery, NatsRequest, Settlement
from tidings.backends.nats.errors import translated
from tidings.backends.nats.ownership import Ownership
from tidings.backends.nats.pulling import Puller
from tidings.backends.nats.streams import TopicInfo
from tidings.errors import ConnectionLost, TidingsError

log = logging.getLogger("tidings.backends.nats")

DeadLetterPublish = Callable[[str, OutgoingMessage, str], Awaitable[Receipt]]
"""``publish(topic, message, nats_msg_id)``: how a subscription stores a dead letter."""
RESPONDERS: Final = "tidings-responders"
"""The queue group of every subscription that takes requests: NATS hands each request to one member."""
EnsureConsumer = Callable[[str, int | None], Awaitable[None]]
"""``ensure(consumer_name, partition)``: the group's consumer (of one partition or all), created if new."""


class NatsSubscription:
    """The deliveries of one member of a group: ``async for``, then ``close``."""

    def __init__(
        self,
        nc: NatsClient,
        info: TopicInfo,
        group: str,
        *,
        partitioned: bool,
        requests: bool,
        prefetch: int,
        ack_deadline: float,
        max_deliveries: int | None,
        config: NatsConfig,
        connected: asyncio.Event,
        dead_letter: DeadLetterPublish,
        ensure_consumer: EnsureConsumer,
        consumer_exists: Callable[[str], Awaitable[bool]],
        locks: Any,
        on_close: Callable[[NatsSubscription], None],
    ) -> None:
        self._nc = nc
        self._info = info
        self._group = group
        self._partitioned = partitioned
        self._takes_requests = requests
        self._prefetch = prefetch
        self._ack_deadline = ack_deadline
        self._max_deliveries = max_deliveries
        self._config = config
        self._connected = connected
        self._dead_letter = dead_letter
        self._ensure_consumer = ensure_consumer
        self._consumer_exists = consumer_exists
        self._locks = locks
        self._on_close = on_close
        self._waiting: collections.deque[NatsDelivery] = collections.deque()
        self._requests: collections.deque[NatsRequest] = collections.deque()
        self._pending: dict[int, NatsDelivery] = {}  # waiting or handed out, by stream sequence
        self._handed = 0
        self._changed = asyncio.Event()
        self._failure: TidingsError | None = None
        self._pullers: dict[int | None, Puller] = {}  # by partition (None: the whole topic)
        self._sources: dict[int, Puller] = {}  # stream sequence -> the puller it came from
        self._ownership: Ownership | None = None
        self._request_sub: NatsSub | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<NatsSubscription {self.topic} group={self.group!r} {state} "
            f"mode={'partitioned' if self._partitioned else 'shared'} pullers={len(self._pullers)} "
            f"handed={self._handed}/{self._prefetch} waiting={len(self._waiting)}>"
        )

    @property
    def topic(self) -> str:
        return self._info.topic

    @property
    def group(self) -> str:
        return self._group

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        with translated(f"subscribing {self.group!r} to {self.topic!r}"):
            if self._takes_requests:
                self._request_sub = await self._nc.subscribe(
                    naming.request_subject(self.topic), queue=RESPONDERS, cb=self._on_request
                )
            await self._nc.flush(timeout=self._config.request_timeout)  # type: ignore[arg-type]
            if not self._partitioned:
                await self._ensure_consumer(naming.consumer_name(self.group), None)
                await self._start_puller(None, naming.consumer_name(self.group))
                return
            self._ownership = Ownership(
                self._nc,
                self._locks,
                stream=self._info.stream,
                group_token=naming.consumer_name(self.group),
                partitions=self._info.partitions,
                member_ttl=self._config.member_ttl,
                acquire=self._acquire,
                release=self._release,
            )
            await self._ownership.start()

    async def _acquire(self, partition: int) -> None:
        consumer = naming.partition_consumer_name(self.group, partition)
        await self._ensure_consumer(consumer, partition)
        await self._start_puller(partition, consumer)

    async def _start_puller(self, partition: int | None, consumer: str) -> None:
        puller = Puller(
            self._nc,
            self._info.stream,
            consumer,
            self._config,
            connected=self._connected,
            room=self._room,
            accept=self._accept,
            failed=self._fail,
            consumer_exists=self._consumer_exists,
        )
        self._pullers[partition] = puller
        await puller.start()

    async def _release(self, partition: int) -> None:
        """Stop pulling ``partition``, hand back what waits, and wait for what the application holds.

        The wait ends when the application settled it, its ack deadline passed (the server redelivers it
        anyway), or the subscription closes (which hands it back).
        """
        puller = self._pullers.pop(partition, None)
        if puller is None:
            return
        arrived_late = await puller.stop()
        await self._hand_back(
            [d for d in self._waiting if self._sources.get(d.offset) is puller], arrived_late
        )
        deadline = time.monotonic() + self._ack_deadline
        while not self._closed and time.monotonic() < deadline and self._held_from(puller):
            await asyncio.sleep(0.02)
        if self._closed:  # leaving: what the application holds goes back too (close's promise)
            await self._hand_back(self._held_from(puller))

    def _held_from(self, puller: Puller) -> list[NatsDelivery]:
        return [d for d in self._pending.values() if self._sources.get(d.offset) is puller]

    def reconnected(self) -> None:
        """The connection came back (called by the backend): hand back what is unsettled, pull anew."""
        task = asyncio.create_task(self._hand_back(list(self._pending.values())))
        task.add_done_callback(self._renew_pulls)
        if self._ownership is not None:
            self._ownership.reconnected()

    def _renew_pulls(self, _: object) -> None:
        for puller in self._pullers.values():
            puller.renew()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        if self._ownership is not None:
            await self._ownership.close()
        arrived_late: list[Msg] = []
        for puller in list(self._pullers.values()):
            arrived_late.extend(await puller.stop())
        self._pullers.clear()
        if self._request_sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._request_sub.unsubscribe()
        await self._hand_back(list(self._pending.values()), arrived_late)
        self._changed.set()

    # -- iteration ---------------------------------------------------------------------

    def __aiter__(self) -> NatsSubscription:
        return self

    async def __anext__(self) -> NatsDelivery | NatsRequest:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._requests:
                return self._requests.popleft()
            if self._failure is not None:
                raise self._failure
            while self._waiting and self._waiting[0].settled:
                self._waiting.popleft()
            if self._waiting and self._handed < self._prefetch:
                delivery = self._waiting.popleft()
                self._handed += 1
                delivery.handed = True
                return delivery
            self._changed.clear()
            await self._changed.wait()

    # -- the window --------------------------------------------------------------------

    def _room(self, puller: Puller) -> int:
        mine = sum(1 for seq in self._pending if self._sources.get(seq) is puller)
        return self._prefetch - mine

    def _accept(self, puller: Puller, msg: Msg) -> None:
        delivery = NatsDelivery(msg, self.topic, self)
        limit = self._max_deliveries
        if limit is not None and delivery.delivery_count > limit:
            delivery.settled = True
            reason = f"not settled within the ack deadline on delivery {limit} of {limit}"
            asyncio.create_task(self._bury_quietly(delivery, reason, limit))  # noqa: RUF006
            return
        previous = self._pending.get(delivery.offset)
        placed = False
        if previous is not None and not previous.handed:
            with contextlib.suppress(ValueError):  # still waiting: the redelivery takes its place
                self._waiting[self._waiting.index(previous)] = delivery
                placed = True
        if previous is not None:
            previous.settled = True  # superseded: a late settlement is still sent (see settle)
            previous.superseded = True
            if previous.handed:
                self._handed -= 1
        self._pending[delivery.offset] = delivery
        self._sources[delivery.offset] = puller
        if not placed:
            self._waiting.append(delivery)
        self._changed.set()

    def _forget(self, delivery: NatsDelivery) -> None:
        if self._pending.get(delivery.offset) is delivery:
            del self._pending[delivery.offset]
            puller = self._sources.pop(delivery.offset, None)
            if puller is not None:
                puller.wake()
        if delivery.handed and not delivery.superseded:
            self._handed -= 1
        self._changed.set()

    def _fail(self, error: TidingsError) -> None:
        self._failure = error
        self._changed.set()

    # -- settling ----------------------------------------------------------------------

    async def settle(self, delivery: NatsDelivery, how: Settlement, delay: float, reason: str | None) -> None:
        if delivery.settled and not delivery.superseded:
            return
        late = delivery.superseded
        delivery.settled = True
        delivery.superseded = False
        if not late:
            self._forget(delivery)
        if how is Settlement.ACK:
            await self._tell(delivery, b"+ACK")
        elif late:
            return  # the redelivered copy is the one to nack or terminate
        elif how is Settlement.NACK and (
            self._max_deliveries is None or delivery.delivery_count < self._max_deliveries
        ):
            body = b"-NAK" + (b" " + json.dumps({"delay": int(delay * 1e9)}).encode() if delay > 0 else b"")
            await self._tell(delivery, body)
        else:
            default = "terminated" if how is Settlement.TERM else "nacked at max_deliveries"
            await self._bury(delivery, reason or default, delivery.delivery_count)

    async def _bury(self, delivery: NatsDelivery, reason: str, deliveries: int) -> None:
        """Store ``delivery`` as a dead letter, then tell JetStream never to deliver it again."""
        headers: dict[str, str | bytes] = dict(delivery.headers)
        headers.update(
            {
                DLQ_TOPIC: delivery.topic,
                DLQ_PARTITION: str(delivery.partition),
                DLQ_OFFSET: str(delivery.offset),
                DLQ_GROUP: self.group,
                DLQ_DELIVERIES: str(deliveries),
                DLQ_REASON: reason,
            }
        )
        # Keep the caller's id; else one derived from the original, so a second attempt (a crash between
        # the dead letter and the TERM) is deduplicated.
        nats_id = delivery.msg_id or f"{codec.AUTO_ID_PREFIX}dlq-{self._info.stream}-{delivery.offset}"
        message = OutgoingMessage(delivery.data, key=delivery.key, headers=headers)
        await self._dead_letter(dead_letter_topic(delivery.topic, self.group), message, nats_id)
        await self._tell(delivery, b"+TERM " + reason.encode()[:1024])

    async def _bury_quietly(self, delivery: NatsDelivery, reason: str, deliveries: int) -> None:
        try:
            await self._bury(delivery, reason, deliveries)
        except TidingsError as exc:  # it comes back after the ack deadline, and is tried again then
            log.warning("dead-lettering %r failed: %s", delivery, exc)

    async def _tell(self, delivery: NatsDelivery, body: bytes) -> None:
        """Send one acknowledgement and wait for the server to confirm it, retrying while it is away."""
        reply = delivery.msg.reply
        deadline = time.monotonic() + self._config.reconnect_timeout
        while True:
            try:
                await self._nc.request(reply, body, timeout=self._config.request_timeout)
                return
            except nats.errors.NoRespondersError:
                return  # the consumer is gone: nothing left to settle
            except (nats.errors.TimeoutError, nats.errors.OutboundBufferLimitError) as exc:
                if time.monotonic() > deadline:
                    raise ConnectionLost(
                        f"settling {delivery!r}: not confirmed within {self._config.reconnect_timeout:g} s"
                    ) from exc
            except nats.errors.Error as exc:
                with translated(f"settling {delivery!r}"):
                    raise exc from None

    async def _hand_back(self, deliveries: list[NatsDelivery], arrived_late: Sequence[Msg] = ()) -> None:
        """``-NAK`` these unsettled messages, so the group gets them again at once (each confirmed).

        ``arrived_late`` came after their puller stopped (never seen by the application). JetStream
        redelivers NAKed messages in the order the NAKs reached it, not by sequence, so they go one at
        a time in stream order: a partition's next owner gets them in their order, ahead of newer ones.
        """
        for delivery in deliveries:
            if not delivery.settled:
                delivery.settled = True
                self._forget(delivery)
        in_order = sorted(
            [(delivery.offset, delivery.msg) for delivery in deliveries]
            + [(msg.metadata.sequence.stream, msg) for msg in arrived_late],
            key=lambda pair: pair[0],
        )
        for _, msg in in_order:
            with contextlib.suppress(nats.errors.Error):
                await self._nc.request(msg.reply, b"-NAK", timeout=self._config.request_timeout)

    # -- requests ----------------------------------------------------------------------

    async def _on_request(self, msg: Msg) -> None:
        if not self._closed:
            self._requests.append(NatsRequest(msg, self.topic, self._nc))
            self._changed.set()
