"""``Publisher``: a handle on one topic for code that publishes to it often."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import Any

from tidings.client.config import check_topic
from tidings.client.message import HeadersIn, PublishResult, PublishResults
from tidings.client.producer import Producer


class Publisher:
    """A handle bound to one topic, for code that publishes to it often: ``client.publisher(topic)``.

    ``publish`` is the cheapest way to publish one event at a time: it is a
    plain function that queues the event and returns the future its durable
    ack resolves (await it, or gather many), with no coroutine in between:
    a publish loop spends its time in the event loop's own futures, not in
    layers of ours.

    ``publish_many`` is the documented batch call. It looks the topic up once,
    queues the items in runs (no task, coroutine or future per event), encodes
    them in C when the extension is built and waits for all the acks, so
    thousands of events cost one or a few Produce frames.
    """

    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self.topic = check_topic(topic)

    def __repr__(self) -> str:
        return f"<Publisher {self.topic!r}>"

    def publish(
        self, data: Any, *, key: str | bytes | None = None, headers: HeadersIn | None = None
    ) -> Awaitable[PublishResult]:
        """Queue one event; await the result for its durable ack (raises as ``Client.publish`` does)."""
        return self._producer.publish(self.topic, data, key=key, headers=headers)

    async def publish_many(
        self, items: Iterable[Any], *, key: str | bytes | None = None, headers: HeadersIn | None = None
    ) -> PublishResults:
        """Publish every item (same key and headers for all); results in order. Raises the first failure."""
        return await self._producer.publish_many(self.topic, items, key=key, headers=headers)
