"""``Client``: one logical session with the broker that survives reconnects.

The client owns the parts that outlive a connection (the producer, the
subscriptions, the admin API) and the one ``ClientConnection`` of the
moment. It routes the frames the pump does not answer itself (deliveries,
forwarded requests, pings) and it supervises: when the connection ends, it
dials again with full-jitter exponential backoff (``backoff_delay``),
claims the same producer id in its Hello, re-subscribes every
subscription, and lets the producer resend its in-flight batches.
Operations that need the connection wait for it, up to
``reconnect_timeout``, then fail with ``ConnectionLost``.

The first connect is not retried: a wrong URL or a broker that is down
fails ``open()`` at once with ``ConnectFailed``, which is what a script or
the CLI wants to report.

Lifecycle (``ClientState``)::

    IDLE --open()--> CONNECTING --Welcome--> CONNECTED <--reconnected-- RECONNECTING
                          |                    |  \\--connection lost----------^
                          +--refused-----------+--close()--> CLOSED
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import os
import socket
import uuid
from collections.abc import Generator, Iterable
from datetime import datetime
from typing import Any, Literal

from tidings import errors
from tidings.client import requests
from tidings.client.admin import Admin
from tidings.client.config import ClientConfig, backoff_delay, check_name, check_pattern, parse_url
from tidings.client.connection import ClientConnection, keep_alive
from tidings.client.consumer import Subscription
from tidings.client.message import HeadersIn, Message, PublishResult, PublishResults, StartIn, start_position
from tidings.client.metadata import TopicMetadata
from tidings.client.producer import Producer
from tidings.client.publisher import Publisher
from tidings.client.transport import TcpTransport, Transport, TransportFactory, tls_context
from tidings.protocol import (
    PROTOCOL_VERSION,
    Announced,
    Close,
    Deliver,
    Error,
    Frame,
    GroupMode,
    HandledType,
    Hello,
    Ping,
    Pong,
    PublishedType,
    Request,
    Unsubscribed,
)

log = logging.getLogger("tidings.client")


class ClientState(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


def default_client_id(service: str) -> str:
    return f"{service}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Client:
    """An asyncio client of a Tidings broker. Make one with ``tidings.connect(...)``."""

    def __init__(
        self, config: ClientConfig | None = None, *, transport: TransportFactory | None = None
    ) -> None:
        self._config = config or ClientConfig()
        self.address = parse_url(self._config.url)
        self.client_id = self._config.client_id or default_client_id(self._config.service)
        self._dial_transport = transport or self._tcp
        self.state = ClientState.IDLE
        self.admin = Admin(self)
        self._metadata = TopicMetadata(self.admin, auto_create=self._config.auto_create_topics)
        self._producer = Producer(self, self._metadata)
        self._subscriptions: dict[int, Subscription] = {}
        self._subscription_ids = itertools.count(1)
        self._responder_turn = itertools.count()
        self._conn: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._lost = asyncio.Event()
        self._last_error: errors.TidingsError | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self.reconnects = 0
        """How many times the connection was lost and made again."""

    def __repr__(self) -> str:
        session = ""
        if self._conn is not None and self._conn.protocol.welcome is not None:
            session = f" session={self._conn.protocol.welcome.session_id}"
        return (
            f"<Client {self._config.service!r} {self.address.url} {self.state.name}{session} "
            f"subscriptions={len(self._subscriptions)} unacked_publishes={self._producer.pending}>"
        )

    @property
    def config(self) -> ClientConfig:
        return self._config

    @property
    def connected(self) -> bool:
        return self.state is ClientState.CONNECTED

    @property
    def closed(self) -> bool:
        return self.state is ClientState.CLOSED

    @property
    def producer_id(self) -> int | None:
        """The idempotent producer id the broker granted, if any."""
        return self._producer.producer_id

    # -- lifecycle ------------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, Client]:
        return self.open().__await__()

    async def __aenter__(self) -> Client:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> Client:
        """Connect (once, without retrying): ``ConnectFailed`` or ``HandshakeRejected`` if that fails."""
        if self.state is not ClientState.IDLE:
            if self.state is ClientState.CLOSED:
                raise errors.NotConnected("the client is closed; make a new one")
            return self
        self.state = ClientState.CONNECTING
        try:
            conn = await self._dial()
        except BaseException:
            self.state = ClientState.CLOSED
            raise
        self._adopt(conn)
        self._supervisor = asyncio.create_task(self._supervise(), name="tidings-client-supervisor")
        return self

    async def close(self) -> None:
        """Send what is queued (publishes, acks), unsubscribe, and close. Waits up to ``close_timeout``."""
        if self.state is ClientState.CLOSED:
            return
        if self.state is ClientState.IDLE:
            self.state = ClientState.CLOSED
            return
        try:
            async with asyncio.timeout(self._config.close_timeout):
                await self._producer.flush()
                await asyncio.gather(*(s.close() for s in list(self._subscriptions.values())))
        except (TimeoutError, errors.TidingsError) as exc:
            log.warning("closing with work unfinished: %s", exc)
        self.state = ClientState.CLOSED
        self._connected.set()  # wake waiters: they see CLOSED
        self._producer.close(errors.NotConnected("the client closed before the broker answered"))
        for subscription in list(self._subscriptions.values()):
            subscription.on_connection_lost()
            subscription.on_unsubscribed(
                Unsubscribed(subscription_id=subscription.id, reason="client closed")
            )
        tasks = [t for t in (self._supervisor, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        if self._conn is not None:
            await self._conn.close("client closed", timeout=min(self._config.close_timeout, 2.0))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def connection(self) -> ClientConnection:
        if self._conn is not None and self._conn.is_open and self.state is ClientState.CONNECTED:
            return self._conn
        if self.state in (ClientState.IDLE, ClientState.CLOSED):
            raise errors.NotConnected(f"the client is {self.state.value}")
        try:
            async with asyncio.timeout(self._config.reconnect_timeout):
                while True:
                    await self._connected.wait()
                    if self._in(ClientState.CLOSED):
                        raise errors.NotConnected("the client is closed")
                    if self._conn is not None and self._conn.is_open and self.state is ClientState.CONNECTED:
                        return self._conn
                    self._connected.clear()
        except TimeoutError:
            why = f" (last error: {self._last_error})" if self._last_error else ""
            raise errors.ConnectionLost(
                f"no connection to {self.address.url} for {self._config.reconnect_timeout:g} s{why}"
            ) from None

    def live_connection(self) -> ClientConnection | None:
        if self._conn is not None and self._conn.is_open and self.state is ClientState.CONNECTED:
            return self._conn
        return None

    # -- publishing -------------------------------------------------------------------------

    async def publish(
        self,
        topic: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
        timestamp: datetime | None = None,
    ) -> PublishResult:
        """Publish one event; returns where it was stored once it is durable.

        ``data``: bytes, str (UTF-8) or any JSON-serialisable object.
        Concurrent publishes are batched for you (see ``ClientConfig.linger``).
        ``timestamp``: the event's time as the producer records it (now when None), for copies of
        history. A coroutine, so ``TaskGroup.create_task(client.publish(...))`` works; the hot
        loop that cannot afford a coroutine per event uses ``publish_many`` or
        ``client.publisher(topic).publish``, which returns the batch's future directly.
        """
        stamp = None if timestamp is None else round(timestamp.timestamp() * 1000)
        return await self._producer.publish(topic, data, key=key, headers=headers, timestamp=stamp)

    async def publish_many(
        self,
        topic: str,
        items: Iterable[Any],
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> PublishResults:
        """Publish every item to ``topic``, batched; results in order (see ``Publisher.publish_many``)."""
        return await self._producer.publish_many(topic, items, key=key, headers=headers)

    def publisher(self, topic: str) -> Publisher:
        return Publisher(self._producer, topic)

    async def flush(self) -> None:
        """Send queued publishes and settlements now, and wait for the publishes' acks."""
        for subscription in list(self._subscriptions.values()):
            subscription.flush()
        await self._producer.flush()

    # -- consuming --------------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        group: str | None = None,
        *,
        start: StartIn = "latest",
        mode: Literal["partitioned", "shared"] = "partitioned",
        prefetch: int = 100,
        ack_deadline: float = 30.0,
        max_deliveries: int | None = 5,
        requests: bool = True,
    ) -> Subscription:
        """Join ``group`` (default: this client's service name) on ``topic`` (a name or a pattern).

        ``start`` applies only where the group has no committed position yet.
        ``prefetch`` bounds the messages delivered and not yet settled.
        Unsettled messages are redelivered after ``ack_deadline`` seconds; past
        ``max_deliveries`` (None: no limit) they go to the dead-letter topic.
        ``requests=False``: requests to the topic are never routed here (events only).
        """
        if mode not in ("partitioned", "shared"):
            raise ValueError(f"mode is 'partitioned' or 'shared', not {mode!r}")
        if prefetch < 1 or ack_deadline <= 0 or (max_deliveries is not None and max_deliveries < 1):
            raise ValueError("prefetch >= 1, ack_deadline > 0 and max_deliveries >= 1 (or None)")
        subscription = Subscription(
            self,
            next(self._subscription_ids),
            topic=check_pattern(topic),
            group=check_name(group or self._config.service, "group"),
            mode=GroupMode.SHARED if mode == "shared" else GroupMode.PARTITIONED,
            start=start_position(start),
            prefetch=prefetch,
            ack_deadline_ms=max(1, round(ack_deadline * 1000)),
            max_deliveries=max_deliveries,
            requests=requests,
        )
        self._subscriptions[subscription.id] = subscription
        await subscription.join()
        return subscription

    def detach(self, subscription: Subscription) -> None:
        self._subscriptions.pop(subscription.id, None)

    # -- the flow map -----------------------------------------------------------------------

    async def announce(
        self, publishes: Iterable[PublishedType] = (), subscribes: Iterable[HandledType] = ()
    ) -> Announced:
        """Describe this service's typed events to the broker, which shows them on its flow map.

        ``publishes``: per topic, the event type, its version and JSON Schema
        (text); ``subscribes``: per topic and group, the type handled. The
        announcement replaces the previous one of this service.
        """
        return await self.admin.announce(self._config.service, publishes, subscribes)

    # -- request / reply --------------------------------------------------------------------

    async def request(
        self,
        topic: str,
        data: Any,
        *,
        timeout: float = 5.0,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> Message:
        """Send a request to one responder subscribed to ``topic`` and return its reply.

        ``RequestTimeout`` after ``timeout`` seconds; ``NoResponders`` at once
        if no one is subscribed.
        """
        return await requests.request(self, topic, data, timeout=timeout, key=key, headers=headers)

    # -- routing what the pump does not answer ------------------------------------------------

    def _route(self, frame: Frame) -> None:
        if isinstance(frame, Deliver):
            subscription = self._subscriptions.get(frame.subscription_id)
            if subscription is not None:
                subscription.on_deliver(frame)
            else:
                log.debug("dropping a delivery for unknown subscription %s", frame.subscription_id)
        elif isinstance(frame, Unsubscribed):
            subscription = self._subscriptions.get(frame.subscription_id)
            if subscription is not None:
                subscription.on_unsubscribed(frame)
        elif isinstance(frame, Request):
            self._route_request(frame)
        elif isinstance(frame, Close):  # the broker is draining; its half-close still reads our acks
            for subscription in list(self._subscriptions.values()):
                subscription.flush()
        elif isinstance(frame, Ping):
            conn = self.live_connection()
            if conn is not None:
                with contextlib.suppress(errors.TidingsError):
                    conn.send(Pong(nonce=frame.nonce))
        elif isinstance(frame, Error):
            log.warning(
                "the broker reported %s: %s (request %s)", frame.code, frame.message, frame.request_id
            )
        elif not isinstance(frame, Pong):
            log.debug("ignoring unexpected %s", type(frame).__name__)

    def _route_request(self, frame: Request) -> None:
        if self._conn is not None:
            turn = next(self._responder_turn)
            requests.route_request(frame, self._conn, self._subscriptions.values(), turn)

    # -- connecting and reconnecting ----------------------------------------------------------

    async def _tcp(self) -> Transport:
        config = self._config
        context = tls_context(
            config.tls,
            scheme_tls=self.address.tls,
            ca_file=config.tls_ca_file,
            cert_file=config.tls_cert_file,
            key_file=config.tls_key_file,
        )
        return await TcpTransport.open(self.address, timeout=config.connect_timeout, tls=context)

    async def _dial(self) -> ClientConnection:
        try:
            async with asyncio.timeout(self._config.connect_timeout):
                transport = await self._dial_transport()
        except TimeoutError:
            raise errors.ConnectFailed(
                f"cannot connect to {self.address.url}: no answer in {self._config.connect_timeout:g} s"
            ) from None
        conn = ClientConnection(transport, max_frame_size=self._config.max_frame_size, on_frame=self._route)
        token, username, password = self._config.credentials()
        hello = Hello(
            protocol_version=PROTOCOL_VERSION,
            service=self._config.service,
            client_id=self.client_id,
            max_frame_size=self._config.max_frame_size,
            auth_token=token,
            producer=self._producer.claim(),
            username=username,
            password=password,
        )
        await conn.open(hello, timeout=self._config.connect_timeout)
        return conn

    def _adopt(self, conn: ClientConnection) -> None:
        self._conn = conn
        self._producer.on_welcome(conn.welcome, conn.peer_max_frame_size)
        self.state = ClientState.CONNECTED
        self._last_error = None
        self._lost.clear()
        conn.ended.add_done_callback(lambda _: self._on_ended(conn))
        self._spawn(keep_alive(conn, self._config.ping_interval), "tidings-client-keepalive")
        for subscription in list(self._subscriptions.values()):
            subscription.on_reconnected()
        self._connected.set()

    def _on_ended(self, conn: ClientConnection) -> None:
        if conn is not self._conn or self.state is not ClientState.CONNECTED:
            return
        self._last_error = conn.ended.result()
        log.warning("connection to %s lost: %s; reconnecting", self.address.url, self._last_error)
        self.state = ClientState.RECONNECTING
        self._connected.clear()
        for subscription in list(self._subscriptions.values()):
            subscription.on_connection_lost()
        self._lost.set()

    async def _supervise(self) -> None:
        while self.state is not ClientState.CLOSED:
            await self._lost.wait()
            attempt = 0
            while self.state is ClientState.RECONNECTING:
                await asyncio.sleep(backoff_delay(self._config.reconnect, attempt))
                attempt += 1
                try:
                    conn = await self._dial()
                except errors.TidingsError as exc:
                    self._last_error = exc
                    log.info("reconnect attempt %d to %s failed: %s", attempt, self.address.url, exc)
                    continue
                if not self._in(ClientState.RECONNECTING):  # closed meanwhile
                    await conn.close("client closed")
                    return
                self.reconnects += 1
                log.info("reconnected to %s after %d attempt(s)", self.address.url, attempt)
                self._adopt(conn)

    def _in(self, state: ClientState) -> bool:
        """``self.state is state``, as a call: the state changes across awaits, which mypy cannot see."""
        return self.state is state

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def connect(
    url: str | None = None,
    service: str | None = None,
    client_id: str | None = None,
    token: str | None = None,
    *,
    transport: TransportFactory | None = None,
    **settings: Any,
) -> Client:
    """A client for the broker at ``url`` (default ``$TIDINGS_URL``, else ``tidings://127.0.0.1:7400``).

    Use it as ``async with tidings.connect(service="checkout") as client:``,
    or ``client = await tidings.connect(...)`` and ``await client.close()``.
    ``service`` names this service on the broker's flow map (default
    ``$TIDINGS_SERVICE``, else ``python``). ``settings`` are ``ClientConfig``
    fields (``linger``, ``reconnect_timeout``, ...). ``transport`` replaces
    TCP, for instance with a ``MockListener().connect`` in tests.

    Credentials, when the broker wants them: ``token`` (default
    ``$TIDINGS_TOKEN``), or ``username=`` and ``password=`` (or in the URL,
    ``tidings://user:pass@host``); TLS with ``tidings+tls://`` or ``tls=True``
    / ``tls=ssl_context``, plus ``tls_ca_file``, ``tls_cert_file`` and
    ``tls_key_file`` (see ``ClientConfig``).
    """
    config = ClientConfig(
        url=url or os.environ.get("TIDINGS_URL") or "tidings://127.0.0.1:7400",
        service=service or os.environ.get("TIDINGS_SERVICE") or "python",
        client_id=client_id,
        token=token,
        **settings,
    )
    return Client(config, transport=transport)
