"""One subscription: reading a consumer group's streams, redelivering, settling, leaving.

Tasks (one each, started by ``start``, cancelled by ``close``):

* the *reader*: ``XREADGROUP ... BLOCK`` on the partitions it reads (all
  of them in ``shared`` mode, the owned ones in ``partitioned`` mode), at
  most ``ceil(room / partitions)`` entries per partition, where ``room`` is
  ``prefetch`` minus what is unsettled (so one read may bring up to
  ``partitions - 1`` more than ``prefetch``; they wait here, pending);
* the *reclaimer*: ``scripts.RECLAIM`` on each partition read, every
  ``min(reclaim_interval, ack_deadline / 2)`` seconds and when a nack's
  delay is due: delayed entries now due, then entries idle past
  ``ack_deadline`` (``XPENDING IDLE`` + ``XCLAIM``, which counts the
  delivery; ``delivery_count`` is the PEL's times-delivered). An entry
  claimed past ``max_deliveries`` is dead-lettered instead;
* the *coordinator* (``partitioned`` only): ``coordinator.Coordinator`` rounds.

``nack(delay)`` keeps the entry pending (a crash cannot lose it), puts its
due time in the group's delay zset and restarts its idle clock
(``scripts.NACK``); later entries flow on meanwhile. ``term`` and a nack
of the ``max_deliveries``-th delivery dead-letter (``RedisPublisher.
dead_letter``), then ``XACK``.

After a lost connection the reader first claims back every entry pending
for this consumer (they may have been handed out before the outage and
never settled; the server may have restarted), then reads on: the
application sees them again with ``delivery_count`` one higher, as from
the broker after a reconnect. ``close`` hands what is unsettled back to
the group (``scripts.HAND_BACK``) so other members take it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from redis.asyncio import Redis

from tidings.backends.base import Delivery
from tidings.backends.redis.codec import Entry
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.coordinator import Coordinator
from tidings.backends.redis.delivery import RedisDelivery, RequestDelivery
from tidings.backends.redis.errors import is_no_group, retryable, translate
from tidings.backends.redis.inbox import Inbox
from tidings.backends.redis.keys import Keys, StreamId
from tidings.backends.redis.ownership import Ownership
from tidings.backends.redis.publisher import RedisPublisher
from tidings.backends.redis.retry import backoff, retrying
from tidings.backends.redis.scripts import Scripts
from tidings.backends.redis.tasks import stop
from tidings.errors import SubscriptionClosed, TidingsError

logger = logging.getLogger("tidings.backends.redis")

RETURNED = "tidings-returned"
"""The consumer name unsettled entries are handed back to when a member leaves."""


class RedisSubscription:
    """The deliveries of one member of one group on one topic."""

    def __init__(
        self,
        *,
        client: Redis,
        scripts: Scripts,
        publisher: RedisPublisher,
        config: RedisConfig,
        url: str,
        topic: str,
        group: str,
        mode: str,
        partitions: int,
        consumer: str,
        prefetch: int,
        ack_deadline: float,
        max_deliveries: int | None,
        create_group: Callable[[int], Awaitable[None]],
        on_close: Callable[[RedisSubscription], Awaitable[None]],
        inbox: Inbox | None = None,
    ) -> None:
        self._client, self._scripts, self._publisher = client, scripts, publisher
        self._config, self._url = config, url
        self._topic, self._group, self._mode = topic, group, mode
        self._keys = Keys(config.prefix, topic)
        self._partitions = partitions
        self._consumer = consumer
        self._prefetch, self._ack_deadline, self._max_deliveries = prefetch, ack_deadline, max_deliveries
        self._create_group, self._on_close = create_group, on_close
        self._ownership = Ownership(partitions)
        self._coordinator: Coordinator | None = None
        if mode == "shared":
            self._ownership.started(range(partitions))
        else:
            self._coordinator = Coordinator(
                scripts=scripts,
                keys=self._keys,
                group=group,
                consumer=consumer,
                config=config,
                url=url,
                ownership=self._ownership,
                member=self,
            )
        self._inbox = inbox if inbox is not None else Inbox()
        self._own_inbox = inbox is None
        self._unsettled: dict[tuple[int, str], RedisDelivery] = {}
        self._reading_changed = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._reclaim_now = asyncio.Event()
        self._closed = False
        self._recover = False
        self._reads_started = self._reads_done = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._timer: asyncio.TimerHandle | None = None
        """Wakes the reclaimer when the earliest of ``_dues`` comes."""
        self._dues: list[float] = []
        """When this member's nacked entries are due (loop time), a heap: one timer at a time."""

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<RedisSubscription {self._topic} group={self._group} {self._mode} consumer={self._consumer} "
            f"reading={sorted(self._ownership.reading)} unsettled={len(self._unsettled)} {state}>"
        )

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def group(self) -> str:
        return self._group

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the tasks; in partitioned mode, first wait (``rebalance_timeout``) to own a share."""
        if self._coordinator is not None:
            await self._coordinator.join()
            self._tasks.append(asyncio.create_task(self._coordinator.run(), name=f"coordinate {self._topic}"))
        self._tasks.append(asyncio.create_task(self._read_forever(), name=f"read {self._topic}"))
        self._tasks.append(asyncio.create_task(self._reclaim_forever(), name=f"reclaim {self._topic}"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reading_changed.set()
        if self._timer is not None:
            self._timer.cancel()
        await stop(self._tasks)
        with contextlib.suppress(TidingsError):
            await self._leave()
        await self._on_close(self)
        if self._own_inbox:
            self._inbox.close()

    async def _leave(self) -> None:
        async def leave() -> None:
            for partition in range(self._partitions):
                await self._scripts.hand_back(
                    keys=[self._keys.stream(partition)], args=[self._group, self._consumer, RETURNED]
                )
            if self._coordinator is not None:
                await self._coordinator.leave()

        await retrying(
            leave, f"leaving group {self._group!r}", url=self._url, deadline=self._config.connect_timeout
        )

    # -- iteration ---------------------------------------------------------------------

    def __aiter__(self) -> RedisSubscription:
        return self

    async def __anext__(self) -> Delivery:
        return await self._inbox.next()

    def push_request(self, delivery: RequestDelivery) -> None:
        """Hand a request to this responder (from the backend's request hub)."""
        self._inbox.put(delivery)

    def _deliver(self, partition: int, raw_id: bytes | str, fields: Any, count: int) -> None:
        entry_id = StreamId.parse(raw_id)
        entry = Entry.decode(_as_dict(fields))
        delivery = RedisDelivery(self._topic, partition, entry_id, entry, delivery_count=count, settler=self)
        slot = (partition, str(entry_id))
        queued = self._unsettled.get(slot)
        if queued is not None:
            self._inbox.discard(queued)
        self._unsettled[slot] = delivery
        self._inbox.put(delivery)
        self._update_room()

    def _forget(self, partitions: set[int]) -> None:
        """Drop the entries of ``partitions`` not yet handed out: they stay pending for the next owner."""
        dropped = self._inbox.drop(
            lambda d: isinstance(d, RedisDelivery) and d.topic == self._topic and d.partition in partitions
        )
        for delivery in dropped:
            assert isinstance(delivery, RedisDelivery)
            self._unsettled.pop((delivery.partition, str(delivery.id)), None)
        self._update_room()

    def _update_room(self) -> None:
        if len(self._unsettled) < self._prefetch:
            self._room.set()
        else:
            self._room.clear()

    # -- reading -------------------------------------------------------------------------

    async def _read_forever(self) -> None:
        attempt = 0
        while not self._closed:
            await self._room.wait()
            partitions = sorted(self._ownership.reading)
            try:
                if self._recover:
                    await self._recover_own(partitions)
                    self._recover = False
                if not partitions:
                    self._reading_changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._reading_changed.wait(), self._config.block_interval)
                    continue
                room = max(1, self._prefetch - len(self._unsettled))
                self._reads_started += 1
                try:
                    response: Any = await self._client.xreadgroup(  # RESP2: [[stream, entries], ...]
                        self._group,
                        self._consumer,
                        {self._keys.stream(p): ">" for p in partitions},
                        count=math.ceil(room / len(partitions)),
                        block=int(self._config.block_interval * 1000),
                    )
                finally:
                    self._reads_done += 1
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                if not await self._survive(exc, partitions, attempt):
                    return
                continue
            for stream, entries in response or []:
                partition = int(_text(stream).rpartition(":")[2])
                if partition not in self._ownership.reading:
                    continue  # dropped while this read ran: the entries stay pending for the next owner
                for raw_id, fields in entries:
                    if fields is not None:
                        self._deliver(partition, raw_id, fields, 1)

    async def _survive(self, exc: Exception, partitions: Sequence[int], attempt: int) -> bool:
        """Wait out a lost server (then recover), recreate a lost group; False: the subscription failed."""
        if retryable(exc):
            self._recover = True
            await asyncio.sleep(backoff(attempt))
            return True
        if is_no_group(exc):  # the server lost the group (no persistence, or it was deleted)
            logger.warning(
                "group %r vanished from %s on %s: creating it again", self._group, self._topic, self._url
            )
            try:
                for partition in partitions:
                    await self._create_group(partition)
            except TidingsError as error:
                self.fail(error)
                return False
            return True
        self.fail(SubscriptionClosed(str(translate(exc, f"reading {self._topic!r}", url=self._url))))
        return False

    async def _recover_own(self, partitions: Sequence[int]) -> None:
        """After an outage: take back every entry pending for this consumer, before reading newer ones."""
        self._forget(set(range(self._partitions)))
        for partition in partitions:
            await self._claim(partition, min_idle=0, only_mine=True, budget=max(self._prefetch, 100))

    # -- reclaiming ----------------------------------------------------------------------

    async def _reclaim_forever(self) -> None:
        interval = min(self._config.reclaim_interval, self._ack_deadline / 2)
        attempt = 0
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reclaim_now.wait(), interval)
            self._reclaim_now.clear()
            try:
                for partition in sorted(self._ownership.reading):
                    room = self._prefetch - len(self._unsettled)
                    if room <= 0:
                        break
                    await self._claim(
                        partition, min_idle=int(self._ack_deadline * 1000), only_mine=False, budget=room
                    )
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                if not retryable(exc) and not is_no_group(exc):
                    self.fail(
                        SubscriptionClosed(str(translate(exc, f"reclaiming {self._topic!r}", url=self._url)))
                    )
                    return
                await asyncio.sleep(backoff(attempt))

    async def _claim(self, partition: int, *, min_idle: int, only_mine: bool, budget: int) -> None:
        claimed = await self._scripts.reclaim(
            keys=[self._keys.stream(partition), self._keys.delay(self._group, partition)],
            args=[self._group, self._consumer, min_idle, budget, self._consumer if only_mine else ""],
        )
        for raw_id, fields, count in claimed:
            deliveries = int(count)
            if self._max_deliveries is not None and deliveries > self._max_deliveries:
                entry = RedisDelivery(
                    self._topic,
                    partition,
                    StreamId.parse(raw_id),
                    Entry.decode(_as_dict(fields)),
                    delivery_count=deliveries - 1,
                    settler=self,
                )
                await self._publisher.dead_letter(
                    entry,
                    self._group,
                    deliveries - 1,
                    f"not settled within the ack deadline ({self._ack_deadline:g} s)",
                )
                await self._client.xack(self._keys.stream(partition), self._group, raw_id)
            else:
                self._deliver(partition, raw_id, fields, deliveries)

    # -- settling ------------------------------------------------------------------------

    async def settle_ack(self, delivery: RedisDelivery) -> None:
        await self._settle(delivery, "ack", lambda: self._xack(delivery))

    async def settle_nack(self, delivery: RedisDelivery, delay: float, reason: str | None) -> None:
        if self._max_deliveries is not None and delivery.delivery_count >= self._max_deliveries:
            await self._dead_letter(delivery, reason or f"failed {delivery.delivery_count} deliveries")
            return

        async def nack() -> None:
            await self._scripts.nack(
                keys=[
                    self._keys.stream(delivery.partition),
                    self._keys.delay(self._group, delivery.partition),
                ],
                args=[self._group, self._consumer, str(delivery.id), int(delay * 1000)],
            )

        await self._settle(delivery, "nack", nack)
        heapq.heappush(self._dues, asyncio.get_running_loop().time() + delay)
        self._schedule_wake()

    async def settle_term(self, delivery: RedisDelivery, reason: str | None) -> None:
        await self._dead_letter(delivery, reason or "terminated")

    async def _dead_letter(self, delivery: RedisDelivery, reason: str) -> None:
        async def move() -> None:
            await self._publisher.dead_letter(delivery, self._group, delivery.delivery_count, reason)
            await self._xack(delivery)

        await self._settle(delivery, "dead-letter", move)

    async def _xack(self, delivery: RedisDelivery) -> None:
        await self._client.xack(self._keys.stream(delivery.partition), self._group, str(delivery.id))

    async def _settle(self, delivery: RedisDelivery, what: str, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await retrying(
                call, f"{what} of {delivery!r}", url=self._url, deadline=self._config.reconnect_timeout
            )
        finally:
            slot = (delivery.partition, str(delivery.id))
            if self._unsettled.get(slot) is delivery:
                del self._unsettled[slot]
            self._update_room()

    def _schedule_wake(self) -> None:
        loop = asyncio.get_running_loop()
        if self._dues and self._dues[0] <= loop.time():
            while self._dues and self._dues[0] <= loop.time():
                heapq.heappop(self._dues)
            self._reclaim_now.set()
        if not self._dues or self._closed:
            return
        if self._timer is not None:
            if self._timer.when() <= self._dues[0]:
                return
            self._timer.cancel()
        self._timer = loop.call_at(self._dues[0], self._wake_reclaimer)

    def _wake_reclaimer(self) -> None:
        self._timer = None
        self._schedule_wake()

    # -- what the coordinator asks (partitioned mode) ----------------------------------------

    def reads(self) -> tuple[int, int]:
        return self._reads_started, self._reads_done

    def unsettled_partitions(self) -> set[int]:
        return {partition for partition, _ in self._unsettled}

    def forget(self, partitions: set[int]) -> None:
        self._forget(partitions)

    async def take(self, partition: int) -> None:
        await self._claim(partition, min_idle=0, only_mine=False, budget=max(self._prefetch, 100))

    def reading_changed(self) -> None:
        self._reading_changed.set()

    def fail(self, error: TidingsError) -> None:
        self._inbox.fail(error)

    @property
    def closed(self) -> bool:
        return self._closed


def _as_dict(fields: Any) -> dict[bytes, bytes]:
    """Entry fields as redis-py returns them (a dict) or as a script does (a flat list)."""
    if isinstance(fields, dict):
        return fields
    return {fields[i]: fields[i + 1] for i in range(0, len(fields), 2)}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
