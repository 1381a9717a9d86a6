"""Topics as JetStream streams: created on first use or by ``create_topic``, looked up once, cached.

One stream per topic (``naming.stream_name``), with one subject per partition
(``naming.subjects``): file storage, ``config.replicas`` replicas, limits
retention, ``config.duplicate_window`` for ``Nats-Msg-Id``. The topic and its
partition count are also written into the stream's metadata, so tools see
which topic a stream holds. A topic's partition count is fixed when its
stream is created.

Concurrent creators are safe: JetStream treats creating a stream with the
same configuration as a no-op, and one with another configuration (another
partition count) fails, after which the existing stream is read and used.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from nats.js import JetStreamContext, api

from tidings.backends.nats import naming
from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.errors import STREAM_NAME_IN_USE, STREAM_NOT_FOUND, api_code, retrying, translated
from tidings.errors import BrokerError, InvalidArgument, InvalidTopicName, TopicExists, UnknownTopic
from tidings.protocol.names import is_topic_name

TOPIC_METADATA = "tidings-topic"
PARTITIONS_METADATA = "tidings-partitions"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """A topic's stream and partition count."""

    topic: str
    stream: str
    partitions: int


def check_topic(topic: str) -> None:
    if not is_topic_name(topic):
        raise InvalidTopicName(f"not a topic name: {topic!r} (dot-separated tokens of A-Z a-z 0-9 _ -)")


def stream_config(topic: str, partitions: int, config: NatsConfig) -> api.StreamConfig:
    """The JetStream configuration of ``topic``'s stream."""
    return api.StreamConfig(
        name=naming.stream_name(topic),
        description=f"Tidings topic {topic}",
        subjects=naming.subjects(topic, partitions),
        retention=api.RetentionPolicy.LIMITS,
        storage=api.StorageType.FILE,
        num_replicas=config.replicas,
        duplicate_window=config.duplicate_window,
        max_age=config.max_age,
        max_bytes=config.max_bytes,
        discard=api.DiscardPolicy.OLD,
        metadata={TOPIC_METADATA: topic, PARTITIONS_METADATA: str(partitions)},
    )


def info_of(topic: str, stream: api.StreamInfo) -> TopicInfo:
    return TopicInfo(topic, naming.stream_name(topic), len(stream.config.subjects or ()) or 1)


class Streams:
    """The streams of the topics this backend has used (cached: a topic's partitions never change)."""

    def __init__(self, js: JetStreamContext, config: NatsConfig) -> None:
        self._js = js
        self._config = config
        self._known: dict[str, TopicInfo] = {}
        self._lock = asyncio.Lock()

    def forget(self, topic: str) -> None:
        """Drop the cached stream of ``topic`` (it was deleted, or may have been)."""
        self._known.pop(topic, None)

    async def lookup(self, topic: str) -> TopicInfo:
        """The stream of ``topic``; ``UnknownTopic`` if there is none."""
        check_topic(topic)
        known = self._known.get(topic)
        if known is not None:
            return known
        stream = await retrying(
            f"looking up topic {topic!r}",
            lambda: self._js.stream_info(naming.stream_name(topic)),
            self._config.reconnect_timeout,
        )
        info = info_of(topic, stream)
        self._known[topic] = info
        return info

    async def ensure(self, topic: str) -> TopicInfo:
        """The stream of ``topic``, created with ``config.partitions`` partitions if there is none."""
        known = self._known.get(topic)
        if known is not None:
            return known
        try:
            return await self.lookup(topic)
        except UnknownTopic:
            pass
        async with self._lock:
            try:
                return await self._create(topic, self._config.partitions)
            except TopicExists:
                return await self.lookup(topic)

    async def create(self, topic: str, partitions: int) -> TopicInfo:
        """A new stream for ``topic``; ``TopicExists`` if it has one already."""
        check_topic(topic)
        if partitions < 1:
            raise InvalidArgument(f"a topic has at least one partition, not {partitions}")
        try:
            await self.lookup(topic)
        except UnknownTopic:
            return await self._create(topic, partitions)
        raise TopicExists(f"topic {topic!r} exists (stream {naming.stream_name(topic)})")

    async def delete(self, topic: str) -> None:
        self.forget(topic)
        with translated(f"deleting topic {topic!r}"):
            await self._js.delete_stream(naming.stream_name(topic))

    async def _create(self, topic: str, partitions: int) -> TopicInfo:
        try:
            created = await retrying(
                f"creating topic {topic!r}",
                lambda: self._js.add_stream(stream_config(topic, partitions, self._config)),
                self._config.reconnect_timeout,
            )
        except BrokerError as exc:
            if api_code(exc.__cause__ or exc) == STREAM_NAME_IN_USE:
                raise TopicExists(f"topic {topic!r} exists with another configuration") from exc
            raise
        info = info_of(topic, created)
        self._known[topic] = info
        return info


def is_missing_stream(exc: BaseException) -> bool:
    return api_code(exc) == STREAM_NOT_FOUND
