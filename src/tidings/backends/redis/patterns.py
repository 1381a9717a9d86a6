"""Pattern subscriptions: one topic subscription per matching topic, found by announcement and by scan.

``subscribe("shop.*", ...)`` takes every topic the pattern matches
(``tidings.protocol.names.topic_matches``: ``*`` one token, a final ``>``
one or more). Redis knows no pattern of streams, so the adapter finds the
topics itself, two ways:

* at once: creating a topic (``scripts.PARTITIONS``: a first publish or
  subscribe, or ``create_topic``) publishes its name on ``Ptopics``, which
  every pattern subscription's backend listens on;
* as a backstop (an announcement missed while disconnected, a topic made
  by another tool): a ``SCAN`` of the topics' meta hashes at subscribe and
  every ``pattern_rescan_interval``.

Each matching topic gets an ordinary topic subscription of the same group,
mode and settings, filling one shared ``Inbox``. Topics there when the
pattern subscription starts begin at its ``start``; topics found later
begin at their earliest message, so what was published to a new topic
before it was found is not missed. ``prefetch`` applies to each topic.
Requests to a matching topic reach the pattern's subscribers too, once
the topic has been found.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from tidings.backends.base import Delivery, StartPosition
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.inbox import Inbox
from tidings.backends.redis.keys import meta_pattern, topic_of_meta, topics_channel
from tidings.backends.redis.requests import RequestHub
from tidings.backends.redis.retry import retrying
from tidings.backends.redis.subscription import RedisSubscription
from tidings.backends.redis.tasks import stop
from tidings.errors import TidingsError
from tidings.protocol.names import topic_matches

logger = logging.getLogger("tidings.backends.redis")

TopicSubscriber = Callable[[str, StartPosition, Inbox], Awaitable[RedisSubscription]]
"""Subscribes the pattern's group to one topic (``start``), delivering into the inbox."""


class PatternSubscription:
    """Every topic matching ``pattern``, now and later, as one subscription."""

    def __init__(
        self,
        *,
        client: Redis,
        hub: RequestHub,
        config: RedisConfig,
        url: str,
        pattern: str,
        group: str,
        start: StartPosition,
        subscribe_topic: TopicSubscriber,
        on_close: Callable[[PatternSubscription], Awaitable[None]],
    ) -> None:
        self._client, self._hub, self._config, self._url = client, hub, config, url
        self._pattern, self._group, self._start = pattern, group, start
        self._subscribe_topic, self._on_close = subscribe_topic, on_close
        self._inbox = Inbox()
        self._topics: dict[str, asyncio.Future[RedisSubscription]] = {}
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<PatternSubscription {self._pattern} group={self._group} topics={sorted(self._topics)} {state}>"
        )

    @property
    def topic(self) -> str:
        return self._pattern

    @property
    def group(self) -> str:
        return self._group

    def __aiter__(self) -> PatternSubscription:
        return self

    async def __anext__(self) -> Delivery:
        return await self._inbox.next()

    async def start(self) -> None:
        await self._hub.add_listener(topics_channel(self._config.prefix), self._announced)
        await asyncio.gather(*(self._take(topic, self._start) for topic in await self._scan()))
        self._task = asyncio.create_task(self._rescan_forever(), name=f"rescan {self._pattern}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await stop([self._task, *self._work])
        with contextlib.suppress(TidingsError):
            await self._hub.remove_listener(topics_channel(self._config.prefix), self._announced)
        for taking in self._topics.values():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await (await taking).close()
        self._inbox.close()
        await self._on_close(self)

    def _announced(self, data: bytes) -> None:
        topic = data.decode("utf-8", "replace")
        if topic_matches(self._pattern, topic) and topic not in self._topics and not self._closed:
            task = asyncio.create_task(self._take_quietly(topic))
            self._work.add(task)
            task.add_done_callback(self._work.discard)

    async def _take_quietly(self, topic: str) -> None:
        try:
            await self._take(topic, "earliest")
        except TidingsError as exc:  # the next rescan tries again
            logger.warning("pattern %r could not take topic %r yet: %s", self._pattern, topic, exc)

    async def _take(self, topic: str, start: StartPosition) -> None:
        """Subscribe ``topic`` once; topics are taken in parallel, so a slow one holds up no other."""
        if self._closed:
            return
        taking = self._topics.get(topic)
        if taking is None or (taking.done() and (taking.cancelled() or taking.exception() is not None)):
            taking = asyncio.ensure_future(self._subscribe_topic(topic, start, self._inbox))
            self._topics[topic] = taking
        await asyncio.shield(taking)

    async def _scan(self) -> list[str]:
        async def scan() -> list[str]:
            found = []
            async for key in self._client.scan_iter(
                match=meta_pattern(self._config.prefix), count=1000, _type="HASH"
            ):
                topic = topic_of_meta(
                    self._config.prefix, key.decode() if isinstance(key, bytes) else str(key)
                )
                if topic is not None and topic_matches(self._pattern, topic):
                    found.append(topic)
            return sorted(found)

        return await retrying(
            scan,
            f"looking for topics matching {self._pattern!r}",
            url=self._url,
            deadline=self._config.reconnect_timeout,
        )

    async def _rescan_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._config.pattern_rescan_interval)
            try:
                missing = [topic for topic in await self._scan() if topic not in self._topics]
                await asyncio.gather(*(self._take(topic, "earliest") for topic in missing))
            except TidingsError as exc:
                logger.info("rescanning for %r failed: %s", self._pattern, exc)
