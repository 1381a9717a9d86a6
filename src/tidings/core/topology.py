"""The topology registry: which services publish and subscribe to what, how fast, and with which types.

Clients name their service in the Hello (``docs/protocol.md``); the broker
notes, per service, the topics it publishes to and the (topic, group) pairs
it subscribes with, when each was first and last seen, its live message
rates, its connected instances, and the event types it announced (name,
version, JSON Schema; the ``Announce`` frame). The dashboard draws the flow
map from ``flow()``.

Cost on the hot path
--------------------
``published`` is called once per Produce frame and ``delivered`` once per
Deliver frame, with counts the caller already has (batch headers, delivery
spans). Each is a couple of dict lookups and a ``RateWindow.add``: no record
is decoded, nothing is allocated per message.

Persistence
-----------
``encode``/``decode`` give the persisted form: what survives a restart is
who talked to whom and when (and the announced types), not the rates nor the
connected instances, which are live by nature. ``TopologyStore`` writes it
to ``<data>/topology.json`` atomically (``datadir.write_atomic``: the old or
the new file, never a mix), from a thread, every few seconds and at
shutdown. The body is JSON with a ``version``, so an operator can read it.
A damaged file is logged and the map starts empty: unlike group progress,
losing the map loses no data and it rebuilds itself from live traffic.

Ageing out
----------
``expire(now)`` removes a service with no connected instance that has been
silent for ``ttl_ms``, and, in a service still present, a publish or
subscribe edge silent that long. The server calls it periodically.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

import msgspec

from tidings.core.datadir import read_optional, write_atomic
from tidings.core.windows import RateWindow
from tidings.storage.log import Clock

log = logging.getLogger(__name__)

FILE_NAME: Final = "topology.json"
FORMAT_VERSION: Final = 1
DEFAULT_TTL_MS: Final = 7 * 24 * 3600 * 1000


# -- what the framework announces -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventType:
    """One typed event a service publishes to a topic (from ``tidings.App``'s typed events)."""

    topic: str
    type: str
    version: int = 1
    schema_json: str = ""
    """The type's JSON Schema, as the service sent it (kept as text: the broker never interprets it)."""


@dataclass(frozen=True, slots=True)
class Handles:
    """One typed event a service consumes: from ``topic`` with ``group``."""

    topic: str
    group: str
    type: str


# -- live state -----------------------------------------------------------------------------


@dataclass(slots=True)
class Edge:
    """A service publishing to a topic, or subscribed to one with a group: when, and how fast."""

    first_seen: int
    last_seen: int
    rate: RateWindow = field(default_factory=RateWindow)
    bytes: RateWindow = field(default_factory=RateWindow)


@dataclass(slots=True)
class Instance:
    session_id: str
    client_id: str
    connected_at: int


@dataclass(slots=True)
class Service:
    name: str
    first_seen: int
    last_seen: int
    publishes: dict[str, Edge] = field(default_factory=dict)
    subscribes: dict[tuple[str, str], Edge] = field(default_factory=dict)
    """(topic or pattern, group) -> edge; the rate is messages delivered to this service."""
    instances: dict[str, Instance] = field(default_factory=dict)
    event_types: dict[tuple[str, str], EventType] = field(default_factory=dict)
    handles: dict[tuple[str, str, str], Handles] = field(default_factory=dict)

    def seen(self, now: int) -> None:
        self.last_seen = now


@dataclass(slots=True)
class TopicTraffic:
    """What was published to one topic, whoever published it (for the topic view and metrics)."""

    records: RateWindow = field(default_factory=RateWindow)
    bytes: RateWindow = field(default_factory=RateWindow)


# -- the persisted form ---------------------------------------------------------------------


class _PublishDoc(msgspec.Struct):
    topic: str
    first_seen: int
    last_seen: int


class _SubscribeDoc(msgspec.Struct):
    topic: str
    group: str
    first_seen: int
    last_seen: int


class _EventTypeDoc(msgspec.Struct):
    topic: str
    type: str
    version: int = 1
    schema_json: str = ""


class _HandlesDoc(msgspec.Struct):
    topic: str
    group: str
    type: str


class _ServiceDoc(msgspec.Struct):
    name: str
    first_seen: int
    last_seen: int
    publishes: list[_PublishDoc] = []
    subscribes: list[_SubscribeDoc] = []
    event_types: list[_EventTypeDoc] = []
    handles: list[_HandlesDoc] = []


class _TopologyDoc(msgspec.Struct):
    version: int
    services: list[_ServiceDoc]


class TopologyRegistry:
    """Every service the broker has heard of (see the module docstring). Single-threaded: the event loop."""

    def __init__(self, *, clock: Clock, ttl_ms: int = DEFAULT_TTL_MS) -> None:
        if ttl_ms < 1:
            raise ValueError(f"ttl_ms must be positive, not {ttl_ms}")
        self.clock = clock
        self.ttl_ms = ttl_ms
        self.services: dict[str, Service] = {}
        self.topics: dict[str, TopicTraffic] = {}
        self._sessions: dict[str, str] = {}  # session id -> service name
        self.dirty = False
        """Something persistent changed since the last ``encode`` (cleared by ``encode``)."""

    def __repr__(self) -> str:
        return f"<TopologyRegistry services={len(self.services)} sessions={len(self._sessions)}>"

    def _service(self, name: str, now: int) -> Service:
        service = self.services.get(name)
        if service is None:
            service = self.services[name] = Service(name, now, now)
            self.dirty = True
        service.last_seen = now
        return service

    def service_of(self, session_id: str) -> str | None:
        return self._sessions.get(session_id)

    # -- events --------------------------------------------------------------------------------

    def connected(self, session_id: str, service: str, client_id: str) -> None:
        now = self.clock()
        self._sessions[session_id] = service
        self._service(service, now).instances[session_id] = Instance(session_id, client_id, now)

    def disconnected(self, session_id: str) -> None:
        name = self._sessions.pop(session_id, None)
        service = self.services.get(name) if name is not None else None
        if service is not None:
            service.instances.pop(session_id, None)
            service.last_seen = self.clock()
            self.dirty = True

    def published(self, service: str, topic: str, records: int, size: int) -> None:
        """One Produce of ``records`` new records (``size`` bytes of batches) by ``service``."""
        now = self.clock()
        owner = self._service(service, now)
        edge = owner.publishes.get(topic)
        if edge is None:
            edge = owner.publishes[topic] = Edge(now, now)
            self.dirty = True
        edge.last_seen = now
        edge.rate.add(records, now)
        edge.bytes.add(size, now)
        traffic = self.topics.get(topic)
        if traffic is None:
            traffic = self.topics[topic] = TopicTraffic()
        traffic.records.add(records, now)
        traffic.bytes.add(size, now)

    def subscribed(self, service: str, topic: str, group: str) -> None:
        now = self.clock()
        owner = self._service(service, now)
        edge = owner.subscribes.get((topic, group))
        if edge is None:
            owner.subscribes[topic, group] = Edge(now, now)
            self.dirty = True
        else:
            edge.last_seen = now

    def delivered(self, service: str, topic: str, group: str, count: int, size: int) -> None:
        """One Deliver frame of ``count`` messages of ``topic`` to a member of ``group``.

        Keyed by the topic delivered, not the pattern subscribed to, so a
        wildcard subscription shows one edge per topic it actually reads.
        """
        now = self.clock()
        owner = self._service(service, now)
        edge = owner.subscribes.get((topic, group))
        if edge is None:
            edge = owner.subscribes[topic, group] = Edge(now, now)
            self.dirty = True
        edge.last_seen = now
        edge.rate.add(count, now)
        edge.bytes.add(size, now)

    def announced(self, service: str, publishes: Iterable[EventType], handles: Iterable[Handles]) -> None:
        """A service's typed events: replaces what it announced before (its code may have changed)."""
        now = self.clock()
        owner = self._service(service, now)
        owner.event_types = {(e.topic, e.type): e for e in publishes}
        owner.handles = {(h.topic, h.group, h.type): h for h in handles}
        for event in owner.event_types.values():
            owner.publishes.setdefault(event.topic, Edge(now, now))
        for handled in owner.handles.values():
            owner.subscribes.setdefault((handled.topic, handled.group), Edge(now, now))
        self.dirty = True

    def topic_deleted(self, topic: str) -> None:
        self.topics.pop(topic, None)
        for service in self.services.values():
            service.publishes.pop(topic, None)
            for key in [k for k in service.subscribes if k[0] == topic]:
                del service.subscribes[key]
        self.dirty = True

    # -- ageing --------------------------------------------------------------------------------

    def expire(self, now: int | None = None) -> list[str]:
        """Forget what has been silent for ``ttl_ms``; returns the services removed."""
        now = self.clock() if now is None else now
        cutoff = now - self.ttl_ms
        removed: list[str] = []
        for name, service in list(self.services.items()):
            if service.instances:
                service.last_seen = now
            elif service.last_seen < cutoff:
                del self.services[name]
                removed.append(name)
                continue
            for topic in [t for t, e in service.publishes.items() if e.last_seen < cutoff]:
                del service.publishes[topic]
                self.dirty = True
            for key in [k for k, e in service.subscribes.items() if e.last_seen < cutoff]:
                del service.subscribes[key]
                self.dirty = True
        if removed:
            self.dirty = True
            log.info("topology: forgot silent service(s) %s", ", ".join(removed))
        return removed

    # -- persistence ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The persisted form (JSON); clears ``dirty``. Live instances count as seen now."""
        now = self.clock()
        docs = []
        for service in sorted(self.services.values(), key=lambda s: s.name):
            last = now if service.instances else service.last_seen
            docs.append(
                _ServiceDoc(
                    name=service.name,
                    first_seen=service.first_seen,
                    last_seen=last,
                    publishes=[
                        _PublishDoc(topic, e.first_seen, e.last_seen)
                        for topic, e in sorted(service.publishes.items())
                    ],
                    subscribes=[
                        _SubscribeDoc(topic, group, e.first_seen, e.last_seen)
                        for (topic, group), e in sorted(service.subscribes.items())
                    ],
                    event_types=[
                        _EventTypeDoc(e.topic, e.type, e.version, e.schema_json)
                        for _, e in sorted(service.event_types.items())
                    ],
                    handles=[
                        _HandlesDoc(h.topic, h.group, h.type) for _, h in sorted(service.handles.items())
                    ],
                )
            )
        self.dirty = False
        return msgspec.json.format(msgspec.json.encode(_TopologyDoc(FORMAT_VERSION, docs)), indent=1)

    def load(self, data: bytes, *, source: str = "<bytes>") -> None:
        """Merge a persisted form into this (empty) registry; a damaged one is logged and skipped."""
        try:
            document = msgspec.json.decode(data, type=_TopologyDoc)
        except msgspec.DecodeError as exc:
            log.warning("topology file %s is damaged (%s): starting with an empty flow map", source, exc)
            return
        if document.version != FORMAT_VERSION:
            log.warning("topology file %s has version %d: ignored", source, document.version)
            return
        for doc in document.services:
            service = Service(doc.name, doc.first_seen, doc.last_seen)
            service.publishes = {p.topic: Edge(p.first_seen, p.last_seen) for p in doc.publishes}
            service.subscribes = {(s.topic, s.group): Edge(s.first_seen, s.last_seen) for s in doc.subscribes}
            service.event_types = {
                (e.topic, e.type): EventType(e.topic, e.type, e.version, e.schema_json)
                for e in doc.event_types
            }
            service.handles = {
                (h.topic, h.group, h.type): Handles(h.topic, h.group, h.type) for h in doc.handles
            }
            self.services[doc.name] = service


class TopologyStore:
    """``<data>/topology.json``: read at open, replaced atomically at each save (from a thread)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"TopologyStore({self.path!r})"

    def load_into(self, registry: TopologyRegistry) -> None:
        try:
            data = read_optional(self.path)
        except OSError as exc:
            log.warning("cannot read topology file %s: %s", self.path, exc)
            return
        if data is not None:
            registry.load(data, source=self.path)

    def save(self, data: bytes) -> None:
        write_atomic(self.path, data)
