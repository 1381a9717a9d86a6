"""``tidings://``: the native backend, a thin adapter of the contract onto ``tidings.client``.

Everything the contract asks for is the broker's own behaviour, so this
module only renames: ``publish`` -> ``Client.publish``, ``subscribe`` ->
``Client.subscribe``, a ``Delivery`` is a client ``Message`` seen through
``TidingsDelivery``. The client already raises ``tidings.errors`` classes
only; the few ``ValueError``\\ s it keeps for programming mistakes are
prevented by checking arguments here first (``InvalidArgument``).

``msg_id`` travels in the ``tidings-msg-id`` header (``MSG_ID_HEADER``),
hidden from ``Delivery.headers`` and shown as ``Delivery.msg_id``. The
broker's idempotence is the producer's: a batch the client resends after a
lost connection or a lost ack is recognised by producer id and sequence and
stored once (``idempotent_publish``). It does not deduplicate by application
id, so ``dedupe_by_id`` is not declared: publishing one ``msg_id`` twice
stores it twice, and consumers (the framework's inbox) deduplicate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Self

import msgspec

from tidings.backends.base import (
    MSG_ID_HEADER,
    Admin,
    Announcer,
    Backend,
    Capabilities,
    Delivery,
    GroupMode,
    HandledEvent,
    HeadersIn,
    OutgoingMessage,
    PublishedEvent,
    Receipt,
    Reply,
    StartPosition,
    Subscription,
    check_start,
    check_subscription,
    redact,
)
from tidings.client import Client, ClientConfig, Message, TransportFactory
from tidings.client import Subscription as ClientSubscription
from tidings.errors import InvalidArgument, InvalidBackendConfig, NotConnected, UnknownGroup, UnknownTopic
from tidings.protocol import HandledType, PublishedType

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
    dedupe_by_id=False,
    reconnects=True,
    topic_patterns=True,
    reasons={
        "dedupe_by_id": "the broker deduplicates a producer's retries (producer id and sequence), not "
        "application message ids; msg_id is delivered so consumers can deduplicate",
    },
)


@dataclass(frozen=True, slots=True)
class TidingsBackendConfig:
    """Settings of a ``tidings://`` backend; each is the ``ClientConfig`` field of the same name."""

    url: str = "tidings://127.0.0.1:7400"
    service: str = "python"
    client_id: str | None = None
    token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | bool | None = None
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    reconnect_timeout: float = 30.0
    """How long publishes and requests wait for a lost connection to come back before ``ConnectionLost``."""
    close_timeout: float = 10.0
    linger: float = 0.0
    auto_create_topics: bool = True

    def __repr__(self) -> str:
        return f"TidingsBackendConfig(url={redact(self.url)!r}, service={self.service!r}, ...)"

    @classmethod
    def from_url(cls, url: str, *, service: str, **options: Any) -> TidingsBackendConfig:
        """``url``, ``service`` and ``options`` (field names); ``InvalidBackendConfig`` for an unknown one."""
        cls.check_options(options, redact(url))
        return cls(url=url, service=service, **options)

    @classmethod
    def check_options(cls, options: Mapping[str, Any], where: str) -> None:
        known = {f.name for f in dataclasses.fields(cls)} - {"url", "service"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidBackendConfig(
                f"unknown option(s) {', '.join(unknown)} for {where!r} (options: {', '.join(sorted(known))})"
            )

    def client_config(self) -> ClientConfig:
        try:
            # not dataclasses.asdict: it deep-copies, and an SSLContext cannot be copied
            return ClientConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        except ValueError as exc:  # a bad URL, or a bad value the client refuses (InvalidName is one too)
            raise InvalidBackendConfig(f"tidings backend for {redact(self.url)!r}: {exc}") from exc


def from_url(url: str, *, service: str, **options: Any) -> TidingsBackend:
    """The opener ``open_backend`` uses for ``tidings://`` and ``tidings+tls://``."""
    config = TidingsBackendConfig.from_url(url, service=service, **options)
    config.client_config()  # refuse a bad URL or value now, not at open()
    return TidingsBackend(config)


class TidingsDelivery:
    """A client ``Message`` as a ``Delivery``: ``msg_id`` taken out of the headers."""

    __slots__ = ("_message", "headers", "msg_id")

    def __init__(self, message: Message) -> None:
        self._message = message
        headers: Mapping[str, bytes] = message.headers
        self.msg_id: str | None = None
        if MSG_ID_HEADER in headers:
            self.msg_id = headers[MSG_ID_HEADER].decode("utf-8", "replace")
            headers = {name: value for name, value in headers.items() if name != MSG_ID_HEADER}
        self.headers = headers

    def __repr__(self) -> str:
        return f"<TidingsDelivery {self._message!r}>"

    @property
    def topic(self) -> str:
        return self._message.topic

    @property
    def partition(self) -> int:
        return self._message.partition

    @property
    def offset(self) -> int:
        return self._message.offset

    @property
    def key(self) -> bytes | None:
        return self._message.key

    @property
    def data(self) -> bytes:
        return self._message.data

    @property
    def timestamp(self) -> datetime:
        return self._message.timestamp

    @property
    def append_time(self) -> datetime | None:
        return self._message.append_time

    @property
    def delivery_count(self) -> int:
        return self._message.delivery_count

    @property
    def is_request(self) -> bool:
        return self._message.is_request

    async def ack(self) -> None:
        await self._message.ack()

    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        if delay < 0:
            raise InvalidArgument(f"nack delay must be >= 0 seconds, not {delay}")
        await self._message.nack(delay, reason=reason)

    async def term(self, reason: str | None = None) -> None:
        await self._message.term(reason)

    async def reply(self, data: bytes, *, headers: HeadersIn | None = None) -> None:
        await self._message.reply(data, headers=headers)


class TidingsSubscription:
    """A client ``Subscription`` yielding ``TidingsDelivery``."""

    def __init__(self, subscription: ClientSubscription) -> None:
        self._subscription = subscription

    def __repr__(self) -> str:
        return f"<TidingsSubscription {self._subscription!r}>"

    @property
    def topic(self) -> str:
        return self._subscription.topic

    @property
    def group(self) -> str:
        return self._subscription.group

    def __aiter__(self) -> AsyncIterator[TidingsDelivery]:
        return self

    async def __anext__(self) -> TidingsDelivery:
        return TidingsDelivery(await self._subscription.__anext__())

    async def close(self) -> None:
        await self._subscription.close()


class TidingsBackend:
    """The contract over one ``tidings.client.Client``. Also implements ``Admin``."""

    def __init__(
        self,
        config: TidingsBackendConfig,
        *,
        transport: TransportFactory | None = None,
        capabilities: Capabilities = CAPABILITIES,
    ) -> None:
        self.config = config
        self._transport = transport
        self._capabilities = capabilities
        self._client: Client | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url} service={self.service!r} client={self._client!r}>"

    @property
    def url(self) -> str:
        return redact(self.config.url)

    @property
    def service(self) -> str:
        return self.config.service

    @property
    def capabilities(self) -> Capabilities:
        return self._capabilities

    @property
    def client(self) -> Client:
        """The client underneath, once open (``NotConnected`` before)."""
        if self._client is None:
            raise NotConnected(f"{self.url}: the backend is not open")
        return self._client

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._client is not None:
            return
        client = Client(self.config.client_config(), transport=self._transport)
        await client.open()
        self._client = client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

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
        result = await self.client.publish(topic, data, key=key, headers=_with_id(headers, msg_id))
        return Receipt(result.topic, result.partition, result.offset)

    async def publish_batch(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Receipt]:
        # Publishes started in one turn of the event loop share the producer's batch (linger 0), and
        # the producer keeps each partition's order, hence each key's.
        client = self.client
        results = await asyncio.gather(
            *(
                client.publish(
                    topic, m.data, key=m.key, headers=_with_id(m.headers, m.msg_id), timestamp=m.timestamp
                )
                for m in messages
            )
        )
        return [Receipt(r.topic, r.partition, r.offset) for r in results]

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
        answer = await self.client.request(topic, data, timeout=timeout, key=key, headers=headers)
        return Reply(topic=topic, data=answer.data, headers=answer.headers)

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
    ) -> TidingsSubscription:
        start = check_subscription(mode, start, prefetch, ack_deadline, max_deliveries)
        subscription = await self.client.subscribe(
            topic,
            group,
            start=start,
            mode=mode,
            prefetch=prefetch,
            ack_deadline=ack_deadline,
            max_deliveries=max_deliveries,
            requests=requests,
        )
        return TidingsSubscription(subscription)

    # -- Admin -------------------------------------------------------------------------

    async def create_topic(self, topic: str, *, partitions: int = 1) -> None:
        if partitions < 1:
            raise InvalidArgument(f"a topic has at least one partition, not {partitions}")
        await self.client.admin.create_topic(topic, partitions)

    async def reset_group(self, group: str, topic: str, to: StartPosition) -> None:
        await self.client.admin.reset_group(group, topic, check_start(to))

    async def topic_end_offsets(self, topic: str) -> dict[int, int]:
        description = await self.client.admin.describe_topic(topic)
        return {info.partition: info.end_offset for info in description.partitions}

    async def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        try:
            description = await self.client.admin.describe_group(group)
        except UnknownGroup:
            return {}
        return {p.partition: p.committed for p in description.partitions if p.topic == topic}

    async def list_topics(self) -> dict[str, int]:
        topics: dict[str, int] = {}
        for name in await self.client.admin.list_topics():
            try:
                topics[name] = len((await self.client.admin.describe_topic(name)).partitions)
            except UnknownTopic:  # deleted between the two calls
                continue
        return topics

    # -- Announcer ---------------------------------------------------------------------

    async def announce(self, publishes: Sequence[PublishedEvent], handles: Sequence[HandledEvent]) -> None:
        """Send the service's typed events to the broker's flow map (schemas as JSON text)."""
        await self.client.announce(
            [
                PublishedType(
                    topic=p.topic,
                    type=p.type,
                    version=p.version,
                    schema_json="" if p.schema is None else msgspec.json.encode(p.schema).decode(),
                )
                for p in publishes
            ],
            [HandledType(topic=h.topic, group=h.group, type=h.type) for h in handles],
        )


def _with_id(headers: HeadersIn | None, msg_id: str | None) -> HeadersIn | None:
    if msg_id is None:
        return headers
    return {**(headers or {}), MSG_ID_HEADER: msg_id}


def _implements_the_contract(
    backend: TidingsBackend, subscription: TidingsSubscription, delivery: TidingsDelivery
) -> tuple[Backend, Admin, Announcer, Subscription, Delivery]:
    """Never called: mypy checks here that these classes implement the contract's protocols."""
    return backend, backend, backend, subscription, delivery
