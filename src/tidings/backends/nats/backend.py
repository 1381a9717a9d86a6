"""``NatsBackend``: the backend contract over one nats-py connection with JetStream.

Opening connects (reconnecting forever afterwards, every
``config.reconnect_wait`` seconds), checks the server's fsync policy
(``durability``), and keeps a JetStream context. Publishing, subscribing and
topic management are delegated to ``publishing``, ``subscription`` and
``streams``; this class wires them together and keeps the connection state
they share (``connected``, and the subscriptions to tell about a reconnect).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api

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
from tidings.backends.nats import codec, consumers, durability, naming, ownership
from tidings.backends.nats.capabilities import CAPABILITIES
from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.delivery import NatsDelivery, NatsRequest
from tidings.backends.nats.errors import STREAM_NOT_FOUND, api_code, retrying, translate, translated
from tidings.backends.nats.patterns import PatternSubscription
from tidings.backends.nats.publishing import Publisher
from tidings.backends.nats.streams import TOPIC_METADATA, Streams, TopicInfo, check_topic
from tidings.backends.nats.subscription import NatsSubscription
from tidings.errors import (
    ConnectFailed,
    GroupModeConflict,
    InvalidArgument,
    InvalidTopicName,
    NotConnected,
    TidingsError,
    UnknownGroup,
)
from tidings.protocol.names import is_topic_pattern, is_wildcard

log = logging.getLogger("tidings.backends.nats")


class NatsBackend:
    """The contract over NATS JetStream (see the package docstring). Also implements ``Admin``."""

    def __init__(self, config: NatsConfig) -> None:
        self.config = config
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        self._streams: Streams | None = None
        self._publisher: Publisher | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._subscriptions: set[NatsSubscription | PatternSubscription] = set()
        self._locks: Any = None
        self.durability_warning: str | None = None
        """What the fsync check found wrong at ``open`` (None: nothing, or not checked)."""

    def __repr__(self) -> str:
        if self._nc is None:
            state = "closed"
        elif self._nc.is_connected:
            state = "connected"
        else:
            state = "reconnecting"
        return (
            f"<NatsBackend {self.url} service={self.service!r} {state} "
            f"subscriptions={len(self._subscriptions)}>"
        )

    @property
    def url(self) -> str:
        return redact(self.config.url)

    @property
    def service(self) -> str:
        return self.config.service

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def nc(self) -> NatsClient:
        """The nats-py connection, once open (``NotConnected`` before)."""
        if self._nc is None:
            raise NotConnected(f"{self.url}: the backend is not open")
        return self._nc

    def _parts(self) -> tuple[NatsClient, JetStreamContext, Streams, Publisher]:
        if self._nc is None or self._js is None or self._streams is None or self._publisher is None:
            raise NotConnected(f"{self.url}: the backend is not open")
        return self._nc, self._js, self._streams, self._publisher

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self) -> None:
        if self._nc is not None:
            return
        config = self.config

        async def disconnected() -> None:
            self._connected.clear()
            self._lost.set()  # publishes waiting for acknowledgements resend after the reconnect

        async def reconnected() -> None:
            self._lost = asyncio.Event()
            self._connected.set()
            for subscription in list(self._subscriptions):
                subscription.reconnected()

        async def error(exc: Exception) -> None:
            log.debug("nats connection %s: %s", self.url, exc)

        try:
            nc = await nats.connect(
                config.servers(),
                name=f"tidings:{config.service}",
                connect_timeout=config.connect_timeout,
                reconnect_time_wait=config.reconnect_wait,
                # Give up on the first connection after one retry per server (ConnectFailed); once
                # connected, reconnect forever (set below): nats-py reads the option at each attempt.
                max_reconnect_attempts=1,
                allow_reconnect=True,
                error_cb=error,
                disconnected_cb=disconnected,
                reconnected_cb=reconnected,
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {self.url}: {exc or type(exc).__name__}") from exc
        nc.options["max_reconnect_attempts"] = -1
        try:
            self.durability_warning = await durability.check_sync(
                nc, config.monitor_url, config.sync_check, self.url
            )
        except BaseException:
            await nc.close()
            raise
        self._connected.set()
        self._nc = nc
        self._js = nc.jetstream(timeout=config.request_timeout)
        self._streams = Streams(self._js, config)
        self._publisher = Publisher(nc, self._js, self._streams, config, lost=lambda: self._lost)

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        self._locks = None
        for subscription in list(self._subscriptions):
            await subscription.close()
        if nc is not None and not nc.is_closed:
            try:
                await nc.flush(timeout=2)
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("flush before close of %s: %s", self.url, exc)
            await nc.close()

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
        receipts = await self.publish_batch(topic, [OutgoingMessage(data, key, headers, msg_id)])
        return receipts[0]

    async def publish_batch(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Receipt]:
        *_, publisher = self._parts()
        if not messages:
            return []
        return await publisher.publish(topic, messages)

    async def request(
        self,
        topic: str,
        data: bytes,
        *,
        timeout: float,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> Reply:
        nc, *_ = self._parts()
        if timeout <= 0:
            raise InvalidArgument(f"timeout must be > 0 seconds, not {timeout}")
        check_topic(topic)
        sent = codec.reply_headers(headers) or {}
        if key is not None:
            sent[codec.KEY] = codec.encode_value(key)
        try:
            answer = await nc.request(
                naming.request_subject(topic), bytes(data), timeout=timeout, headers=sent
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise translate(exc, f"request to {topic!r}") from exc
        return Reply(topic=topic, data=answer.data, headers=codec.incoming(answer.headers).headers)

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
    ) -> NatsSubscription | PatternSubscription:
        nc, js, *_ = self._parts()
        start = check_subscription(mode, start, prefetch, ack_deadline, max_deliveries)
        if not group:
            raise InvalidArgument("group must not be empty")
        options: dict[str, Any] = {
            "group": group,
            "mode": mode,
            "start": start,
            "prefetch": prefetch,
            "ack_deadline": ack_deadline,
            "max_deliveries": max_deliveries,
        }
        if not is_wildcard(topic):
            return await self._subscribe_topic(topic, requests=requests, **options)
        if not is_topic_pattern(topic):
            raise InvalidTopicName(f"not a topic pattern: {topic!r}")

        async def open_topic(concrete: str, begin: StartPosition) -> NatsSubscription:
            return await self._subscribe_topic(concrete, requests=False, **{**options, "start": begin})

        pattern = PatternSubscription(
            nc,
            js,
            topic,
            group,
            start=start,
            requests=requests,
            open_topic=open_topic,
            patience=self.config.reconnect_timeout,
        )
        self._subscriptions.add(pattern)
        try:
            await pattern.start()
        except BaseException:
            self._subscriptions.discard(pattern)
            await pattern.close()
            raise
        return pattern

    async def _subscribe_topic(
        self,
        topic: str,
        *,
        group: str,
        mode: GroupMode,
        start: StartPosition,
        prefetch: int,
        ack_deadline: float,
        max_deliveries: int | None,
        requests: bool,
    ) -> NatsSubscription:
        """A member subscription to one concrete topic (its stream created if new)."""
        nc, js, streams, publisher = self._parts()
        info = await streams.ensure(topic)
        locks = await self._locks_bucket(js) if mode == "partitioned" else None

        async def ensure_consumer(name: str, partition: int | None) -> None:
            only = None if partition is None else naming.subject(topic, partition)
            wanted = consumers.consumer_config(
                group, start, ack_deadline, max_deliveries, self.config, name=name, filter_subject=only
            )
            await consumers.ensure_consumer(js, info.stream, wanted, self.config.reconnect_timeout)

        async def dead_letter(dlq_topic: str, message: OutgoingMessage, nats_id: str) -> Receipt:
            return (await publisher.publish(dlq_topic, [message], [nats_id]))[0]

        async def consumer_exists(name: str) -> bool:
            try:
                with translated(f"looking up group {group!r} on {topic!r}"):
                    await js.consumer_info(info.stream, name)
            except UnknownGroup:
                return False
            except TidingsError:  # cannot tell now (the server is away): assume it is
                return True
            return True

        other = (
            naming.consumer_name(group) if mode == "partitioned" else naming.partition_consumer_name(group, 0)
        )
        try:  # asked again while JetStream elects a leader, like every other management call here
            await retrying(
                f"looking up group {group!r} on {topic!r}",
                lambda: js.consumer_info(info.stream, other),
                self.config.reconnect_timeout,
            )
        except UnknownGroup:
            pass
        else:  # both kinds of consumer would receive every message: a group has one mode
            raise GroupModeConflict(
                f"group {group!r} on {topic!r} is {'shared' if mode == 'partitioned' else 'partitioned'}, "
                f"not {mode}: delete its consumers to change its mode"
            )

        subscription = NatsSubscription(
            nc,
            info,
            group,
            partitioned=mode == "partitioned",
            requests=requests,
            prefetch=prefetch,
            ack_deadline=ack_deadline,
            max_deliveries=max_deliveries,
            config=self.config,
            connected=self._connected,
            dead_letter=dead_letter,
            ensure_consumer=ensure_consumer,
            consumer_exists=consumer_exists,
            locks=locks,
            on_close=self._subscriptions.discard,
        )
        self._subscriptions.add(subscription)
        try:
            await subscription.start()
        except BaseException:
            await subscription.close()
            raise
        return subscription

    # -- Admin -------------------------------------------------------------------------

    async def create_topic(self, topic: str, *, partitions: int = 1) -> None:
        *_, streams, _ = self._parts()
        await streams.create(topic, partitions)

    async def reset_group(self, group: str, topic: str, to: StartPosition) -> None:
        """Replace each of the group's consumers by one starting at ``to``.

        JetStream cannot move a consumer that started at "latest", so each is deleted and created again
        with its settings; members pulling it carry on with the new one. A group with no consumer yet
        gets its partitioned consumers.
        """
        _, js, streams, _ = self._parts()
        start = check_start(to)
        info = await streams.lookup(topic)
        existing = await self._consumers_of(js, info, group)
        if not existing:
            existing = {
                naming.partition_consumer_name(group, p): consumers.consumer_config(
                    group,
                    start,
                    30.0,
                    5,
                    self.config,
                    name=naming.partition_consumer_name(group, p),
                    filter_subject=naming.subject(topic, p),
                )
                for p in range(info.partitions)
            }
        for name, current in existing.items():
            wanted = consumers.consumer_config(
                group,
                start,
                current.ack_wait or 30.0,
                None,
                self.config,
                name=name,
                filter_subject=current.filter_subject,
            ).evolve(max_deliver=current.max_deliver, max_ack_pending=current.max_ack_pending)
            await consumers.delete_consumer(js, info.stream, name)
            with translated(f"resetting group {group!r} on {topic!r}"):
                await js.add_consumer(info.stream, config=wanted)

    async def _consumers_of(
        self, js: JetStreamContext, info: TopicInfo, group: str
    ) -> dict[str, api.ConsumerConfig]:
        """The configurations of ``group``'s consumers on ``info``'s stream: shared, then per partition."""
        names = [naming.consumer_name(group)]
        names += [naming.partition_consumer_name(group, p) for p in range(info.partitions)]
        found: dict[str, api.ConsumerConfig] = {}
        for name in names:
            try:
                with translated(f"reading group {group!r} on {info.topic!r}"):
                    found[name] = (await js.consumer_info(info.stream, name)).config
            except UnknownGroup:
                continue
        return found

    async def _locks_bucket(self, js: JetStreamContext) -> Any:
        if self._locks is None:
            with translated("opening the partition locks bucket"):
                self._locks = await ownership.locks_bucket(js, self.config.member_ttl, self.config.replicas)
        return self._locks

    async def list_topics(self) -> dict[str, int]:
        """The Tidings streams of the account (``TIDINGS_*``), by topic, with their partition counts."""
        _, js, _, _ = self._parts()
        topics: dict[str, int] = {}
        offset = 0
        while True:
            with translated("listing the topics"):
                page = await js.streams_info(offset=offset)
            for stream in page:
                metadata = stream.config.metadata or {}
                topic = metadata.get(TOPIC_METADATA)
                if topic and stream.config.name == naming.stream_name(topic):
                    topics[topic] = len(stream.config.subjects or ()) or 1
            if not page:
                return topics
            offset += len(page)

    async def topic_end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, one past the last sequence stored on its subject (0 for an empty partition).

        Offsets are stream sequences, shared by the partitions, so the stream's next sequence is not
        any one partition's end: a partition whose last message is older would never be "reached" by
        a group's committed offset (one past its ack floor), and ``tidings replay`` would never stop.
        """
        _, js, streams, _ = self._parts()
        info = await streams.lookup(topic)
        ends: dict[int, int] = {}
        for partition in range(info.partitions):
            with translated(f"reading topic {topic!r}"):
                try:
                    last = await js.get_last_msg(info.stream, naming.subject(topic, partition))
                except nats.js.errors.NotFoundError as exc:
                    if api_code(exc) == STREAM_NOT_FOUND:
                        raise
                    ends[partition] = 0  # no message on this partition's subject yet
                    continue
            ends[partition] = (last.seq or 0) + 1
        return ends

    async def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, one past its consumer's ack floor (everything at or below it is settled).

        Partitioned groups have a consumer per partition; a shared group's one consumer covers them all.
        """
        _, js, streams, _ = self._parts()
        info = await streams.lookup(topic)
        offsets: dict[int, int] = {}
        names: list[tuple[str, list[int]]] = [(naming.consumer_name(group), list(range(info.partitions)))]
        names += [(naming.partition_consumer_name(group, p), [p]) for p in range(info.partitions)]
        for name, partitions in names:
            try:
                with translated(f"reading group {group!r} on {topic!r}"):
                    consumer = await js.consumer_info(info.stream, name)
            except UnknownGroup:
                continue
            floor = consumer.ack_floor.stream_seq if consumer.ack_floor is not None else 0
            offsets.update(dict.fromkeys(partitions, floor + 1))
        return offsets


def _implements_the_contract(
    backend: NatsBackend,
    subscription: NatsSubscription,
    pattern: PatternSubscription,
    delivery: NatsDelivery,
    request: NatsRequest,
) -> tuple[Backend, Admin, Subscription, Subscription, Delivery, Delivery]:
    """Never called: mypy checks here that these classes implement the contract's protocols."""
    return backend, backend, subscription, pattern, delivery, request
