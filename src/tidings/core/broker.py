"""``BrokerCore``: the one object the server calls, with frames in and frames out, and no I/O of its own.

Theory of operation
-------------------
The server owns sockets, timers and threads. For every frame a session
decodes, it calls ``handle(session_id, frame)``; the core answers by putting
``(session_id, frame)`` pairs in its outbox, which the server drains
(``take_outbox``) after every call and writes to the sessions named. Answers
to the sender, deliveries to consumers, requests forwarded to responders and
``Unsubscribed`` notices all leave the same way, so the server needs no
knowledge of who gets what.

Two things are the server's to finish, because they wait on a disk:

* ``handle(Produce)`` returns a ``ProduceTicket``: the batches are written;
  the server waits until each partition's group commit covers the ticket's
  offsets, then sends ``ticket.frame()``.
* Every append (produce or dead letter) is noted; the server drains
  ``take_appended()`` to start group commits, and calls
  ``records_durable(topic, partition)`` when one completes, which is what
  lets the engine deliver those records. So consumers see only durable
  records (docs/guarantees.md).

Time-driven work (ack deadlines, delayed redeliveries, request timeouts)
happens in ``tick``; the server calls it at ``next_wakeup()``. The clock is
injected: tests drive it by hand.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.core.admin import Admin
from tidings.core.auth import UNRESTRICTED, AuthConfig, Authenticator, Credentials, Principal, authorize
from tidings.core.auth.gate import required
from tidings.core.datadir import DataDir
from tidings.core.groups import Delivery, FileGroupStore, GroupEngine, MemberInfo
from tidings.core.limits import TopicLimits
from tidings.core.produce import ProducePath, ProduceTicket, rejected
from tidings.core.producers import DEFAULT_EXPIRY_MS, ProducerIds, ProducerRegistry
from tidings.core.requests import RequestRouter
from tidings.core.topics import MAX_PARTITIONS, TopicPolicy, TopicRegistry
from tidings.core.topology import DEFAULT_TTL_MS, EventType, Handles, TopologyRegistry, TopologyStore
from tidings.core.topology import FILE_NAME as TOPOLOGY_FILE
from tidings.errors import (
    BrokerError,
    NotAuthorized,
    RequestTimeout,
    ResponderGone,
    TidingsError,
    TooManyRequests,
)
from tidings.protocol.admin import AdminResponseBody, Announce, Announced, DeleteTopic
from tidings.protocol.frames import (
    Ack,
    AdminRequest,
    AdminResponse,
    Close,
    Credit,
    Deliver,
    Error,
    Frame,
    Hello,
    Nack,
    NoResponders,
    Ping,
    Pong,
    Produce,
    Reply,
    Request,
    Subscribe,
    Subscribed,
    Term,
    Unsubscribe,
    Unsubscribed,
    Welcome,
    error_frame,
)
from tidings.protocol.names import is_wildcard
from tidings.protocol.values import Appended
from tidings.storage.log import Clock, wall_clock_ms

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAME_SIZE = 8 * 1024 * 1024
UNKNOWN_SERVICE = "unknown"
"""The flow map's name for a producer whose session the topology does not know (never, after a Hello)."""
LOCAL_SESSION = "local"
"""Prefix of the session id the broker's own producers (the HTTP API) use on the produce path."""


def _broker_version() -> str:
    """The installed version, without importing the ``tidings`` package (which pulls in the client)."""
    try:
        return importlib.metadata.version("tidings")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


BROKER_VERSION = _broker_version()


@dataclass(frozen=True, slots=True)
class CoreConfig:
    data_dir: str
    policy: TopicPolicy = field(default_factory=TopicPolicy)
    auth_token: str | None = None
    """The older single shared token: it grants everything, to any service name (docs/security.md)."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE
    """What the Welcome announces: the largest frame the broker accepts."""
    producer_expiry_ms: int = DEFAULT_EXPIRY_MS
    max_delivery_bytes: int = 1 << 20
    delivery_burst_bytes: int | None = None
    """Deliveries one session gets per pump before it waits for a later loop turn (``GroupEngine.hold``).

    None (embedding the core alone): no bound. The server sets it, and holds a session whose socket
    does not drain."""
    topology_ttl_ms: int = DEFAULT_TTL_MS
    """A service (or one of its edges) silent this long leaves the flow map."""
    max_topics: int | None = None
    """Topics a client may make exist (CreateTopic or auto-creation); dead-letter topics are not refused."""
    max_partitions: int = MAX_PARTITIONS
    """Partitions a CreateTopic may ask for."""
    max_headers_bytes: int | None = None
    """The largest headers section of one record, in bytes."""

    def auth_config(self) -> AuthConfig:
        return self.auth if self.auth_token is None else self.auth.with_shared_token(self.auth_token)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """What the core knows of a connected session, from its Hello."""

    session_id: str
    client_id: str
    service: str
    producer: tuple[int, int] | None = None
    principal: Principal = UNRESTRICTED


class BrokerCore:
    """The broker, minus transport. ``open`` before use (blocking: logs recover), ``close`` at the end."""

    def __init__(self, config: CoreConfig, *, clock: Clock = wall_clock_ms) -> None:
        self.config = config
        self.clock = clock
        self.datadir = DataDir(config.data_dir)
        self.broker_id = self.datadir.broker_id
        self.topics = TopicRegistry(self.datadir, config.policy, clock=clock)
        self.producers = ProducerRegistry(
            ProducerIds(self.datadir.path("producer-ids")), expiry_ms=config.producer_expiry_ms
        )
        self.produce_path = ProducePath(self.topics, self.producers)
        self.router = RequestRouter(clock)
        self.store = FileGroupStore(os.path.join(self.datadir.groups, "progress"))
        self.topology = TopologyRegistry(clock=clock, ttl_ms=config.topology_ttl_ms)
        self.topology_store = TopologyStore(self.datadir.path(TOPOLOGY_FILE))
        self.engine: GroupEngine
        self.admin: Admin
        self.authenticator = Authenticator(config.auth_config())
        self.limits = TopicLimits(
            self.topics, config.max_topics, config.max_partitions, config.max_headers_bytes
        )
        self._sessions: dict[str, SessionInfo] = {}
        self._outbox: list[tuple[str, Frame]] = []
        self._handlers: dict[type[Frame], Callable[[str, Any], None]] = {
            Ping: self._ping,
            Subscribe: self._subscribe,
            Unsubscribe: self._unsubscribe,
            Credit: self._credit,
            Ack: self._ack,
            Nack: self._nack,
            Term: self._term,
            Request: self._request,
            Reply: self._reply,
            AdminRequest: self._admin_request,
            Error: self._peer_error,
            Close: self._close,
        }
        """What each frame a client sends (but Produce, Hello) does: a table rather than a chain of
        isinstance, because every ack, credit and reply passes here. Other frames are ignored."""

    def __repr__(self) -> str:
        return f"<BrokerCore {self.broker_id} {self.datadir.root} sessions={len(self._sessions)}>"

    # -- lifecycle -----------------------------------------------------------------

    def open(self) -> None:
        try:
            self.topics.open()
            self.topics.take_created()
            progress = self.store.load()
            self.topology_store.load_into(self.topology)
            self.topology.expire()  # what fell silent while the broker was down leaves at once
            self.engine = GroupEngine(
                self.topics,
                progress,
                clock=self.clock,
                max_delivery_bytes=self.config.max_delivery_bytes,
                burst_bytes=self.config.delivery_burst_bytes,
            )
        except BaseException:
            self.topics.close()
            self.datadir.close()
            raise
        self.admin = Admin(self.topics, self.engine, self.produce_path, self._unsubscribed)

    def close(self) -> None:
        """Close every log (fsync) and release the data directory. Blocking: run it in a thread."""
        try:
            self.topics.close()
        finally:
            self.datadir.close()

    # -- sessions ------------------------------------------------------------------

    def hello(
        self, session_id: str, hello: Hello, protocol_version: int, *, subjects: tuple[str, ...] = ()
    ) -> Welcome:
        """Accept a session, or raise the refusal (``NotAuthorized``, ``ProducerFenced``).

        ``subjects`` are the names of the client's TLS certificate, verified by
        the server's TLS layer: one way to authenticate (``tidings.core.auth``).
        """
        credentials = Credentials(hello.auth_token, hello.username, hello.password, subjects)
        principal = self.authenticator.authenticate(credentials, service=hello.service)
        producer = None
        if hello.producer is not None:
            producer = self.producers.claim(session_id, hello.producer)
        info = SessionInfo(session_id, hello.client_id, hello.service, producer, principal)
        self._sessions[session_id] = info
        self.topology.connected(session_id, hello.service, hello.client_id)
        return Welcome(
            protocol_version=protocol_version,
            broker_id=self.broker_id,
            broker_version=BROKER_VERSION,
            session_id=session_id,
            max_frame_size=self.config.max_frame_size,
            producer_id=None if producer is None else producer[0],
            producer_epoch=None if producer is None else producer[1],
        )

    def session_closed(self, session_id: str) -> None:
        """The session is gone (Close, error or lost transport): release all it held. Idempotent."""
        if self._sessions.pop(session_id, None) is None:
            return
        self.topology.disconnected(session_id)
        self.producers.release(session_id)
        self.engine.disconnect(session_id)
        for route in self.router.session_closed(session_id):
            gone = ResponderGone(f"the responder to request topic {route.topic!r} disconnected")
            self._outbox.append((route.requester, error_frame(gone, request_id=route.request_id)))
        self._collect()

    def take_outbox(self) -> list[tuple[str, Frame]]:
        outbox, self._outbox = self._outbox, []
        return outbox

    # -- frames --------------------------------------------------------------------

    def handle(self, session_id: str, frame: Frame) -> ProduceTicket | None:
        """Act on one frame from a session (after its Welcome). Answers go to the outbox."""
        request_id = getattr(frame, "request_id", None)
        try:
            self._permit(session_id, frame)
            if isinstance(frame, Produce):
                ticket = self.produce_path.produce(session_id, frame)
                self._note_produced(self.topology.service_of(session_id) or UNKNOWN_SERVICE, ticket)
                return ticket
            self._dispatch(session_id, frame)
        except TidingsError as exc:
            if isinstance(frame, Produce):  # a refused Produce is answered like any other: per batch
                return self._refused(session_id, frame, exc)
            self._answer_error(session_id, frame, exc, request_id)
        finally:
            self._collect()
        return None

    def _permit(self, session_id: str, frame: Frame) -> None:
        """Raise ``NotAuthorized`` or ``LimitExceeded`` unless the session may do what ``frame`` asks."""
        need = required(frame)
        if need is not None:
            info = self._sessions.get(session_id)
            if info is not None:
                authorize(info.principal, *need, service=info.service)
            elif self.authenticator.enabled:  # no Hello on record (already closed): fail closed
                raise NotAuthorized(f"session {session_id} is not authenticated")
        self._check_limits(frame)

    def _check_limits(self, frame: Frame) -> None:
        self.limits.check(frame, auto_create=self.config.policy.auto_create)

    def _refused(self, session_id: str, frame: Produce, exc: TidingsError) -> ProduceTicket:
        ticket = ProduceTicket(session_id, frame.request_id, frame.topic, frame.ack)
        ticket.results = [rejected(exc)] * len(frame.batches)
        return ticket

    def produce_as(self, service: str, frame: Produce) -> ProduceTicket:
        """A Produce from inside the broker (the HTTP API), on behalf of ``service``: same path, same checks.

        Only non-idempotent batches make sense here (no session owns a producer id). The
        caller has authorized ``service`` to publish to the topic; the limits are checked here.
        """
        try:
            try:
                self._check_limits(frame)
            except TidingsError as exc:
                return self._refused(f"{LOCAL_SESSION}:{service}", frame, exc)
            ticket = self.produce_path.produce(f"{LOCAL_SESSION}:{service}", frame)
            self._note_produced(service, ticket)
            return ticket
        finally:
            self._collect()

    def _note_produced(self, service: str, ticket: ProduceTicket) -> None:
        """Count the Produce for the flow map: records from the results, no record decoded."""
        records = 0
        for result in ticket.results:
            if isinstance(result, Appended) and not result.duplicate:
                records += result.last_offset - result.base_offset + 1
        if records:
            self.topology.published(service, ticket.topic, records, ticket.size)

    def _dispatch(self, session: str, frame: Frame) -> None:
        handler = self._handlers.get(type(frame))
        if handler is not None:
            handler(session, frame)

    def _ping(self, session: str, frame: Ping) -> None:
        self._outbox.append((session, Pong(nonce=frame.nonce)))

    def _unsubscribe(self, session: str, frame: Unsubscribe) -> None:
        self.engine.unsubscribe(session, frame.subscription_id)
        reply = Unsubscribed(subscription_id=frame.subscription_id, request_id=frame.request_id)
        self._outbox.append((session, reply))

    def _credit(self, session: str, frame: Credit) -> None:
        self.engine.credit(session, frame.subscription_id, frame.credits)

    def _ack(self, session: str, frame: Ack) -> None:
        self.engine.ack(session, frame.subscription_id, frame.offsets)

    def _nack(self, session: str, frame: Nack) -> None:
        self.engine.nack(
            session, frame.subscription_id, frame.offsets, delay_ms=frame.delay_ms, reason=frame.reason
        )

    def _term(self, session: str, frame: Term) -> None:
        self.engine.term(session, frame.subscription_id, frame.offsets, reason=frame.reason)

    def _reply(self, session: str, frame: Reply) -> None:
        route = self.router.reply(session, frame.request_id)
        if route is not None:
            self._outbox.append((route.requester, Reply(request_id=route.request_id, batch=frame.batch)))

    def _admin_request(self, session: str, frame: AdminRequest) -> None:
        body: AdminResponseBody
        if isinstance(frame.body, Announce):
            body = self._announce(frame.body)
        else:
            body = self.admin.handle(frame.body)
            if isinstance(frame.body, DeleteTopic):
                self.topology.topic_deleted(frame.body.name)
        self._outbox.append((session, AdminResponse(request_id=frame.request_id, body=body)))

    def _close(self, session: str, frame: Close) -> None:
        self.session_closed(session)

    def _answer_error(self, session: str, frame: Frame, exc: TidingsError, request_id: int | None) -> None:
        if request_id is not None and not isinstance(frame, Reply):
            self._outbox.append((session, error_frame(exc, request_id=request_id)))
        elif isinstance(exc, BrokerError):  # an ack for a subscription just ended, ...: nothing to answer
            log.debug("session %s: %s ignored: %s", session, type(frame).__name__, exc)
        else:
            log.warning("session %s: %s failed: %s", session, type(frame).__name__, exc)

    def _subscribe(self, session: str, frame: Subscribe) -> None:
        if not is_wildcard(frame.topic) and self.config.policy.auto_create:
            self.topics.ensure(frame.topic)  # else the engine waits for the topic to be created
        info = self._sessions[session]
        self.topology.subscribed(info.service, frame.topic, frame.group)
        self.engine.subscribe(
            MemberInfo(session, info.client_id, info.service),
            frame.subscription_id,
            frame.topic,
            frame.group,
            mode=frame.mode,
            start=frame.start,
            credits=frame.credits,
            ack_deadline_ms=frame.ack_deadline_ms,
            max_deliveries=frame.max_deliveries,
            requests=frame.requests,
        )
        self._outbox.append(
            (session, Subscribed(request_id=frame.request_id, subscription_id=frame.subscription_id))
        )

    def _announce(self, body: Announce) -> Announced:
        """A service's typed events, for the flow map (``Announce`` in ``tidings.protocol.admin``)."""
        self.topology.announced(
            body.service,
            [EventType(p.topic, p.type, p.version, p.schema_json) for p in body.publishes],
            [Handles(s.topic, s.group, s.type) for s in body.subscribes],
        )
        return Announced(service=body.service, publishes=len(body.publishes), subscribes=len(body.subscribes))

    def _request(self, session: str, frame: Request) -> None:
        responder = self.router.choose(frame.topic, self.engine.responders(frame.topic))
        if responder is None:
            self._outbox.append((session, NoResponders(request_id=frame.request_id)))
            return
        if frame.reply_to is not None:  # the reply is published to a topic: no route to keep
            self._outbox.append((responder, frame))
            return
        if self.router.full(session):
            raise TooManyRequests(f"{self.router.max_in_flight} requests already await replies")
        broker_id = self.router.open(session, frame.request_id, responder, frame.topic, frame.timeout_ms)
        forwarded = Request(
            request_id=broker_id, topic=frame.topic, timeout_ms=frame.timeout_ms, batch=frame.batch
        )
        self._outbox.append((responder, forwarded))

    def _peer_error(self, session: str, frame: Error) -> None:
        if frame.request_id is None:  # fatal: the peer is going away
            self.session_closed(session)
            return
        route = self.router.reply(session, frame.request_id)  # a responder failing a forwarded request
        if route is not None:
            relayed = Error(code=frame.code, message=frame.message, request_id=route.request_id)
            self._outbox.append((route.requester, relayed))

    def _unsubscribed(self, session_id: str, subscription_id: int, reason: str) -> None:
        self._outbox.append((session_id, Unsubscribed(subscription_id=subscription_id, reason=reason)))

    # -- what the server drives ----------------------------------------------------

    def records_durable(self, topic: str, partition: int) -> None:
        """A group commit moved the partition's high watermark: the engine may deliver more."""
        if self.topics.find(topic) is not None:
            self.engine.records_available(topic, partition)
            self._collect()

    def hold_deliveries(self, session_id: str) -> None:
        """Build no Deliver frames for the session: its socket is not draining (the server's call)."""
        self.engine.hold(session_id)

    def release_deliveries(self, session_id: str) -> None:
        """Deliver to the session again; what it may take now goes to the outbox."""
        self.engine.release(session_id)
        self._collect()

    def take_burst_held(self) -> list[str]:
        """Sessions ``delivery_burst_bytes`` held in the last calls: release each on a later loop turn."""
        return self.engine.take_burst_held()

    def take_appended(self) -> dict[tuple[str, int], int]:
        return self.topics.take_appended()

    def tick(self) -> None:
        """Timed work that is due: the engine's deadlines and redeliveries, request timeouts."""
        self.engine.tick()
        for route in self.router.expire():
            timeout = RequestTimeout(f"no reply from a responder to {route.topic!r} in time")
            self._outbox.append((route.requester, error_frame(timeout, request_id=route.request_id)))
        self._collect()

    def next_wakeup(self) -> int | None:
        engine, router = self.engine.next_wakeup(), self.router.next_deadline()
        if engine is None or router is None:
            return router if engine is None else engine
        return min(engine, router)

    def _collect(self) -> None:
        """Move the engine's deliveries to the outbox, and announce topics created meanwhile."""
        for name in self.topics.take_created():
            self.engine.topic_created(name)
        topology = self.topology
        for delivery in self.engine.take_deliveries():
            service = topology.service_of(delivery.session_id)
            if service is not None:  # else the session is gone and the frame goes nowhere
                topology.delivered(service, delivery.topic, delivery.group, delivery.count, delivery.size)
            self._outbox.append((delivery.session_id, deliver_frame(delivery)))


def deliver_frame(delivery: Delivery) -> Deliver:
    return Deliver(
        subscription_id=delivery.subscription_id,
        topic=delivery.topic,
        partition=delivery.partition,
        spans=delivery.spans,
        batches=delivery.batches,
    )
