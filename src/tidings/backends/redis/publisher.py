"""Publishing: partition choice, the atomic append script, deduplication and retries.

A topic's partition count lives in its meta hash (``keys.Keys.meta``); the
first publish or subscribe to an unknown topic creates it with one
partition, like the broker's auto-create, and every backend caches it
(partition counts never change). A keyed message goes to
``partition_for_key(key, n)``, the broker's own rule, so a key lands on the
partition it would on ``tidings://``; a message without a key goes round
robin.

Every message is appended by ``scripts.PUBLISH``, which gives it the next
offset and remembers its id for ``RedisConfig.dedupe_window``: the
``msg_id`` if one was given (``dedupe_by_id``: a second publish stores
nothing and gets the first receipt, ``duplicate=True``), else a fresh
random token, so that a publish retried after a lost connection (the reply
lost, the write maybe done) finds its first attempt instead of storing a
copy (``idempotent_publish``). A retry that finds its own first attempt is
not reported as a duplicate. The cost: one small key per message, kept for
the window.

``publish_batch`` sends every message in one pipeline (one round trip);
scripts run in order, so each key's order is kept.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from tidings.backends.base import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    Delivery,
    HeadersIn,
    OutgoingMessage,
    Receipt,
    dead_letter_topic,
)
from tidings.backends.redis.codec import encode_headers, entry_fields, flatten, key_bytes
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.keys import Keys, StreamId, topics_channel
from tidings.backends.redis.retry import retrying
from tidings.backends.redis.scripts import Scripts
from tidings.errors import InvalidName, UnknownTopic
from tidings.protocol.names import is_topic_name
from tidings.records import partition_for_key


@dataclass(frozen=True, slots=True)
class _Append:
    """One message ready for ``scripts.PUBLISH``."""

    partition: int
    fields: list[bytes]
    dedupe_key: str
    given_id: bool


def check_topic(topic: str) -> str:
    if not is_topic_name(topic):
        raise InvalidName(f"not a topic name: {topic!r} (dot-separated tokens of letters, digits, _ and -)")
    return topic


class Topics:
    """Partition counts by topic, read (or auto-created) once from each topic's meta hash."""

    def __init__(self, client: Redis, scripts: Scripts, config: RedisConfig, url: str) -> None:
        self._client, self._scripts, self._config, self._url = client, scripts, config, url
        self._partitions: dict[str, int] = {}

    def keys(self, topic: str) -> Keys:
        return Keys(self._config.prefix, topic)

    async def partitions(self, topic: str, *, create: bool = True, what: str = "reading topic") -> int:
        """``topic``'s partition count; a missing topic is created with one (``create``) or unknown.

        ``what`` names the operation in errors (``publish ...`` makes a refusal a ``PublishError``).
        """
        known = self._partitions.get(topic)
        if known is not None:
            return known
        _, count = await retrying(
            lambda: self.create(topic, 1 if create else 0),
            f"{what} {topic!r}",
            url=self._url,
            deadline=self._config.reconnect_timeout,
        )
        if count == 0:
            raise UnknownTopic(f"no topic {topic!r} on {self._url}")
        self._partitions[topic] = count
        return count

    async def create(self, topic: str, partitions: int) -> tuple[bool, int]:
        """Create ``topic`` with ``partitions`` unless it exists (0: only look): (created, partitions)."""
        created, count = await self._scripts.partitions(
            keys=[self.keys(check_topic(topic)).meta],
            args=[partitions, topics_channel(self._config.prefix), topic],
        )
        if int(count):
            self._partitions[topic] = int(count)
        return bool(created), int(count)


class RedisPublisher:
    """``publish``, ``publish_batch`` and dead-lettering, over one client."""

    def __init__(
        self, client: Redis, scripts: Scripts, topics: Topics, config: RedisConfig, url: str
    ) -> None:
        self._client, self._scripts, self._topics = client, scripts, topics
        self._config, self._url = config, url
        self._round_robin = itertools.count()

    async def publish(
        self,
        topic: str,
        data: bytes,
        *,
        key: str | bytes | None,
        headers: HeadersIn | None,
        msg_id: str | None,
    ) -> Receipt:
        return (await self.publish_batch(topic, [OutgoingMessage(data, key, headers, msg_id)]))[0]

    async def publish_batch(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Receipt]:
        if not messages:
            return []
        partitions = await self._topics.partitions(topic, what="publish to")
        keys = self._topics.keys(topic)
        now = int(time.time() * 1000)
        appends = []
        for message in messages:
            key = key_bytes(message.key)
            if key is not None:
                partition = partition_for_key(key, partitions)
            else:
                partition = next(self._round_robin) % partitions
            stamp = now if message.timestamp is None else int(message.timestamp.timestamp() * 1000)
            fields = entry_fields(
                bytes(message.data), key, encode_headers(message.headers), message.msg_id, stamp
            )
            if message.msg_id is not None:
                dedupe = keys.msg_id(message.msg_id)
            else:
                dedupe = keys.retry_id(uuid.uuid4().hex)
            appends.append(_Append(partition, flatten(fields), dedupe, message.msg_id is not None))
        return await self._append(topic, keys, appends)

    async def dead_letter(self, delivery: Delivery, group: str, deliveries: int, reason: str) -> None:
        """Store a copy of ``delivery`` on ``dead_letter_topic(topic, group)`` with the ``DLQ_*`` headers.

        Idempotent: the copy's id is made of where the message was and how often it was delivered, so
        a dead-lettering retried (after a lost connection, or by another member) stores one copy.
        """
        topic = dead_letter_topic(delivery.topic, group)
        partitions = await self._topics.partitions(topic, what="publish to")
        keys = self._topics.keys(topic)
        headers = dict(delivery.headers)
        headers.update(
            {
                DLQ_TOPIC: delivery.topic.encode(),
                DLQ_PARTITION: str(delivery.partition).encode(),
                DLQ_OFFSET: str(delivery.offset).encode(),
                DLQ_GROUP: group.encode(),
                DLQ_DELIVERIES: str(deliveries).encode(),
                DLQ_REASON: reason.encode(),
            }
        )
        key = delivery.key
        partition = partition_for_key(key, partitions) if key is not None else delivery.partition % partitions
        fields = entry_fields(
            delivery.data, key, headers, delivery.msg_id, int(delivery.timestamp.timestamp() * 1000)
        )
        token = f"dlq-{delivery.partition}-{delivery.offset}-{deliveries}"
        await self._append(topic, keys, [_Append(partition, flatten(fields), keys.retry_id(token), False)])

    async def _append(self, topic: str, keys: Keys, appends: list[_Append]) -> list[Receipt]:
        maxlen = self._config.retention or 0
        window = int(self._config.dedupe_window * 1000)
        attempts = 0

        async def attempt() -> list[Any]:
            nonlocal attempts
            attempts += 1
            async with self._client.pipeline(transaction=False) as pipe:
                for append in appends:
                    await self._scripts.publish(
                        keys=[keys.stream(append.partition), append.dedupe_key],
                        args=[maxlen, window, append.partition, *append.fields],
                        client=pipe,
                    )
                return list(await pipe.execute())

        results = await retrying(
            attempt, f"publish to {topic!r}", url=self._url, deadline=self._config.reconnect_timeout
        )
        receipts = []
        for append, result in zip(appends, results, strict=True):
            seen, where = result
            if int(seen):
                partition_text, _, stored = _text(where).partition(" ")
                receipts.append(
                    Receipt(
                        topic,
                        int(partition_text),
                        StreamId.parse(stored).offset,
                        duplicate=append.given_id and attempts == 1,
                    )
                )
            else:
                receipts.append(Receipt(topic, append.partition, StreamId.parse(_text(where)).offset))
        return receipts


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
