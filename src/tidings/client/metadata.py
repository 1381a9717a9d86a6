"""How many partitions a topic has: what the producer needs to place a keyed record itself.

The producer computes partitions on the client (``partition_for_key``), so it
can batch per partition and number batches per partition for idempotence.
For that it needs the partition count, learnt once per topic with
DescribeTopic and cached for the client's life (partition counts do not
change under a running topic).

An unknown topic is reported as None, not created here. The producer then
creates it the way the broker's own policy wants (see
``Producer._publish_creating``): it sends the first record with no
partition, so the broker applies its auto-create setting and its default
partition count, and answers with the broker's own error when auto-creation
is off. CreateTopic would do neither: it cannot ask for "the broker's
default" partitions, and it would create topics on a broker that refuses to
auto-create them.

Concurrent lookups of one topic share one DescribeTopic.
"""

from __future__ import annotations

import asyncio

from tidings.client.admin import Admin
from tidings.errors import BrokerError, PublishError


class TopicMetadata:
    """The partition count of each topic this client publishes to."""

    def __init__(self, admin: Admin, *, auto_create: bool) -> None:
        self._admin = admin
        self._auto_create = auto_create
        self._partitions: dict[str, int] = {}
        self._absent: set[str] = set()
        self._lookups: dict[str, asyncio.Future[int | None]] = {}

    def __repr__(self) -> str:
        return f"<TopicMetadata {self._partitions}>"

    def cached(self, topic: str) -> int | None:
        return self._partitions.get(topic)

    async def partitions(self, topic: str) -> int | None:
        """The partition count of ``topic``; None if it does not exist (yet). ``PublishError`` otherwise."""
        known = self._partitions.get(topic)
        if known is not None or topic in self._absent:
            return known
        lookup = self._lookups.get(topic)
        if lookup is None:
            lookup = asyncio.ensure_future(self._look_up(topic))
            self._lookups[topic] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(topic, None))
        return await asyncio.shield(lookup)

    def forget(self, topic: str) -> None:
        """Drop what is known of ``topic`` (created or deleted since): the next publish looks it up again."""
        self._partitions.pop(topic, None)
        self._absent.discard(topic)

    async def _look_up(self, topic: str) -> int | None:
        try:
            description = await self._admin.describe_topic(topic)
        except BrokerError as exc:
            if exc.code != "unknown_topic":
                raise PublishError(f"cannot publish to {topic}: {exc}", reason=exc.code) from exc
            if not self._auto_create:
                raise PublishError(
                    f"cannot publish to {topic}: no such topic, and auto_create_topics is off",
                    reason="unknown_topic",
                ) from exc
            self._absent.add(topic)  # until the producer has created it (and calls ``forget``)
            return None
        count = len(description.partitions)
        if count < 1:
            raise PublishError(
                f"cannot publish to {topic}: the broker lists no partitions", reason="unknown_topic"
            )
        self._partitions[topic] = count
        return count
