"""``RedisBackend``: the contract over one redis-py client; also ``Admin``."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tidings.backends.base import (
    Admin,
    Backend,
    Capabilities,
    Delivery,
    GroupMode,
    HeadersIn,
    OutgoingMessage,
    Receipt,
    Reply,
    StartPosition,
    Subscription,
    check_start,
    check_subscription,
    redact,
)
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.delivery import RedisDelivery, RequestDelivery
from tidings.backends.redis.durability import Durability, read_durability, warn_if_not_durable
from tidings.backends.redis.errors import translate
from tidings.backends.redis.groups import Groups
from tidings.backends.redis.inbox import Inbox
from tidings.backends.redis.patterns import PatternSubscription
from tidings.backends.redis.publisher import RedisPublisher, Topics, check_topic
from tidings.backends.redis.requests import RequestHub
from tidings.backends.redis.scripts import Scripts
from tidings.backends.redis.subscription import RedisSubscription
from tidings.errors import InvalidArgument, InvalidName, NotConnected
from tidings.protocol.names import NAME, is_topic_pattern, is_wildcard

CAPABILITIES: Final = Capabilities(
    persistent=True,
    ordered_per_key=True,
    consumer_groups=True,
    shared_groups=True,
    replay_from_earliest=True,
    replay_by_offset=True,
    replay_by_time=True,
    request_reply=True,
    no_responders=True,
    ack_deadline=True,
    nack_delay=True,
    max_deliveries=True,
    native_dead_letters=True,
    idempotent_publish=True,
    dedupe_by_id=True,
    reconnects=True,
    topic_patterns=True,
)

_GROUP_NAME = re.compile(NAME)


class _Connection:
    """What an open backend holds."""

    def __init__(self, client: Redis, config: RedisConfig, url: str) -> None:
        self.client = client
        self.scripts = Scripts(client)
        self.topics = Topics(client, self.scripts, config, url)
        self.publisher = RedisPublisher(client, self.scripts, self.topics, config, url)
        self.requests = RequestHub(client, self.scripts, config, url)
        self.groups = Groups(client, self.scripts, self.topics, config, url)


class RedisBackend:
    """Tidings on Redis Streams (see the package docstring for the mapping)."""

    def __init__(self, config: RedisConfig) -> None:
        self.config = config
        self._url = redact(config.url)
        self._connection: _Connection | None = None
        self._subscriptions: set[RedisSubscription] = set()
        self._patterns: set[PatternSubscription] = set()
        self.durability: Durability | None = None
        """The server's persistence settings, read at ``open``."""

    def __repr__(self) -> str:
        state = "open" if self._connection is not None else "closed"
        subscriptions = len(self._subscriptions)
        return f"<RedisBackend {self._url} service={self.service!r} {state} subscriptions={subscriptions}>"

    @property
    def url(self) -> str:
        return self._url

    @property
    def service(self) -> str:
        return self.config.service

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def _open(self) -> _Connection:
        if self._connection is None:
            raise NotConnected(f"{self._url}: the backend is not open")
        return self._connection

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._connection is not None:
            return
        client = Redis.from_url(
            self.config.url,
            decode_responses=False,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self.config.connect_timeout,
            socket_timeout=self.config.block_interval + self.config.connect_timeout + 5.0,
            client_name=f"tidings-{self.service}",
        )
        try:
            await client.ping()
            self.durability = await read_durability(client)
        except Exception as exc:
            await client.aclose()
            raise translate(exc, "connecting", url=self._url, connecting=True) from exc
        if self.config.warn_not_durable:
            warn_if_not_durable(self.durability, self._url)
        connection = _Connection(client, self.config, self._url)
        try:
            await connection.requests.start()
        except BaseException:
            await connection.requests.close()
            await client.aclose()
            raise
        self._connection = connection

    async def close(self) -> None:
        connection = self._connection
        if connection is None:
            return
        for pattern in list(self._patterns):
            await pattern.close()
        for subscription in list(self._subscriptions):
            await subscription.close()
        self._connection = None
        await connection.requests.close()
        await connection.client.aclose()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- Publisher ---------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        data: bytes,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
        msg_id: str | None = None,
    ) -> Receipt:
        return await self._open.publisher.publish(topic, data, key=key, headers=headers, msg_id=msg_id)

    async def publish_batch(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Receipt]:
        return await self._open.publisher.publish_batch(topic, messages)

    async def request(
        self,
        topic: str,
        data: bytes,
        *,
        timeout: float,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> Reply:
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, not {timeout}")
        return await self._open.requests.request(
            check_topic(topic), data, timeout=timeout, key=key, headers=headers
        )

    # -- Subscriber --------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        *,
        group: str,
        mode: GroupMode = "partitioned",
        start: StartPosition = "latest",
        prefetch: int = 100,
        ack_deadline: float = 30.0,
        max_deliveries: int | None = 5,
        requests: bool = True,
    ) -> RedisSubscription | PatternSubscription:
        start = check_subscription(mode, start, prefetch, ack_deadline, max_deliveries)
        if not _GROUP_NAME.match(group):
            raise InvalidName(f"not a group name: {group!r} (letters, digits, _, - and .)")
        connection = self._open

        async def subscribe_topic(name: str, begin: StartPosition, inbox: Inbox | None) -> RedisSubscription:
            return await self._subscribe_topic(
                name,
                group,
                mode,
                begin,
                prefetch,
                ack_deadline,
                max_deliveries,
                inbox=inbox,
                requests=requests,
            )

        if not is_wildcard(topic):
            return await subscribe_topic(check_topic(topic), start, None)
        if not is_topic_pattern(topic):
            raise InvalidName(
                f"not a topic pattern: {topic!r} (tokens, '*' for one, a final '>' for the rest)"
            )
        pattern = PatternSubscription(
            client=connection.client,
            hub=connection.requests,
            config=self.config,
            url=self._url,
            pattern=topic,
            group=group,
            start=start,
            subscribe_topic=subscribe_topic,
            on_close=self._closed_pattern,
        )
        try:
            await pattern.start()
        except BaseException:
            await pattern.close()
            raise
        self._patterns.add(pattern)
        return pattern

    async def _subscribe_topic(  # noqa: PLR0917 - subscribe's own arguments, passed on
        self,
        topic: str,
        group: str,
        mode: GroupMode,
        start: StartPosition,
        prefetch: int,
        ack_deadline: float,
        max_deliveries: int | None,
        *,
        inbox: Inbox | None,
        requests: bool,
    ) -> RedisSubscription:
        connection = self._open
        partitions = await connection.topics.partitions(topic)
        await connection.groups.check_mode(topic, group, mode)

        async def create_group(partition: int) -> None:
            await connection.groups.create(topic, group, partition, start)

        for partition in range(partitions):
            await create_group(partition)
        subscription = RedisSubscription(
            client=connection.client,
            scripts=connection.scripts,
            publisher=connection.publisher,
            config=self.config,
            url=self._url,
            topic=topic,
            group=group,
            mode=mode,
            partitions=partitions,
            consumer=f"{self.service}-{uuid.uuid4().hex[:12]}",
            prefetch=prefetch,
            ack_deadline=ack_deadline,
            max_deliveries=max_deliveries,
            create_group=create_group,
            on_close=self._closed_subscription,
            inbox=inbox,
        )
        if requests:  # an events-only subscription is never handed a request, nor counted as a responder
            await connection.requests.add_responder(topic, subscription.push_request)
        self._subscriptions.add(subscription)
        try:
            await subscription.start()
        except BaseException:
            await subscription.close()
            raise
        return subscription

    async def _closed_subscription(self, subscription: RedisSubscription) -> None:
        self._subscriptions.discard(subscription)
        if self._connection is not None:
            await self._connection.requests.remove_responder(subscription.topic, subscription.push_request)

    async def _closed_pattern(self, pattern: PatternSubscription) -> None:
        self._patterns.discard(pattern)

    # -- Admin -------------------------------------------------------------------------

    async def create_topic(self, topic: str, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise InvalidArgument(f"a topic has at least one partition, not {partitions}")
        await self._open.groups.create_topic(check_topic(topic), partitions)

    async def reset_group(self, group: str, topic: str, to: StartPosition) -> None:
        await self._open.groups.reset(group, topic, check_start(to))

    async def topic_end_offsets(self, topic: str) -> dict[int, int]:
        return await self._open.groups.end_offsets(topic)

    async def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        return await self._open.groups.committed(group, topic)

    async def list_topics(self) -> dict[str, int]:
        return await self._open.groups.list_topics()


def _implements_the_contract(
    backend: RedisBackend,
    subscription: RedisSubscription,
    pattern: PatternSubscription,
    delivery: RedisDelivery,
    request: RequestDelivery,
) -> tuple[Backend, Admin, Subscription, Subscription, Delivery, Delivery]:
    """Never called: mypy checks here that these classes implement the contract's protocols."""
    return backend, backend, subscription, pattern, delivery, request
