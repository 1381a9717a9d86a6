"""Every body the HTTP API sends or accepts, as ``msgspec.Struct``\\ s.

These classes are the API's contract: handlers encode them, and
``openapi.py`` generates the document's components from them
(``msgspec.json.schema_components``), so the published schema cannot drift
from what is served. Times are milliseconds since the Unix epoch, rates are
per second over the last 10 s, delays are milliseconds.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Model(msgspec.Struct, kw_only=True, omit_defaults=False):
    """Base of every API body."""


class ErrorBody(Model):
    """Every error answer: a short machine-readable ``error`` and a sentence for people."""

    error: str
    detail: str = ""


# -- health ---------------------------------------------------------------------------------


class Health(Model):
    broker_id: str
    version: str
    uptime_ms: int
    status: Literal["ok"] = "ok"


class Readiness(Model):
    ready: bool
    detail: str = ""


# -- topics ---------------------------------------------------------------------------------


class PartitionView(Model):
    partition: int
    start_offset: int
    """First offset still retained."""
    end_offset: int
    """Next offset to be written (the high watermark: what consumers may see)."""
    messages: int
    size_bytes: int


class Retention(Model):
    retention_ms: int | None
    retention_bytes: int | None
    fsync: str


class TopicView(Model):
    name: str
    partitions: int
    messages: int
    """Retained messages, summed over partitions."""
    size_bytes: int
    publish_rate: float
    """Messages per second published, over the last 10 s."""
    byte_rate: float
    published_total: int
    """Messages published since the broker started."""
    retention: Retention
    config: dict[str, str]
    partition_list: list[PartitionView]
    dead_letter_topic: bool = False


class TopicList(Model):
    topics: list[TopicView]


# -- groups ---------------------------------------------------------------------------------


class Delay(Model):
    """Processing delay: from the event's time (the producer's clock) to its ack, over the last minute."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float


class GroupPartitionView(Model):
    topic: str
    partition: int
    committed: int
    """Every offset below it is settled."""
    end_offset: int
    lag: int
    in_flight: int
    oldest_unacked_age_ms: int | None
    """Age (now minus event time) of the oldest unsettled message, None when nothing is unsettled."""


class MemberView(Model):
    member_id: str
    client_id: str
    service: str
    topic: str
    mode: Literal["partitioned", "shared"]
    assigned: list[str]
    """``topic/partition`` of each partition assigned to it (partitioned mode)."""


class GroupCounters(Model):
    """Since the broker started."""

    delivered: int
    redelivered: int
    acked: int
    nacked: int
    expired: int
    dead_lettered: int
    stale_acks: int
    lost: int


class GroupSummaryView(Model):
    group: str
    mode: Literal["partitioned", "shared"] | None
    topics: list[str]
    members: int
    lag: int
    redeliveries: int
    dead_letters: int
    """Messages in the group's dead-letter topics (retained)."""
    processing_delay: Delay | None


class GroupView(GroupSummaryView):
    member_list: list[MemberView]
    partitions: list[GroupPartitionView]
    counters: GroupCounters


class GroupList(Model):
    groups: list[GroupSummaryView]


# -- the flow map ---------------------------------------------------------------------------


class InstanceView(Model):
    client_id: str
    connected_at: int


class EventTypeView(Model):
    topic: str
    type: str
    version: int
    schema: Any | None
    """The JSON Schema the service announced (None if it sent none, or not valid JSON)."""


class HandlesView(Model):
    topic: str
    group: str
    type: str


class ServiceView(Model):
    name: str
    first_seen: int
    last_seen: int
    instances: list[InstanceView]
    publishes: list[str]
    subscribes: list[str]
    """``topic:group`` pairs."""
    publish_rate: float
    deliver_rate: float
    event_types: list[EventTypeView]
    handles: list[HandlesView]


class FlowTopic(Model):
    name: str
    exists: bool
    partitions: int
    messages: int
    publish_rate: float


class FlowEdge(Model):
    """``publish``: a service writes to a topic. ``consume``: a topic's messages go to a service's group."""

    kind: Literal["publish", "consume"]
    source: str
    """``service:NAME`` or ``topic:NAME``."""
    target: str
    service: str
    topic: str
    group: str | None
    rate: float
    """Messages per second over the last 10 s (published, or delivered)."""
    byte_rate: float
    lag: int | None
    """For ``consume``: the group's lag on the topic."""
    processing_delay: Delay | None
    first_seen: int
    last_seen: int


class FlowMap(Model):
    time: int
    services: list[ServiceView]
    topics: list[FlowTopic]
    edges: list[FlowEdge]


# -- events ---------------------------------------------------------------------------------


class EventView(Model):
    topic: str
    partition: int
    offset: int
    timestamp: int
    """The producer's time."""
    append_time: int
    """The broker's time of the append."""
    key: str | None
    """UTF-8 text, or base64 if ``key_encoding`` says so."""
    key_encoding: Literal["text", "base64"] | None
    headers: dict[str, str]
    """Values as UTF-8 text (invalid bytes replaced)."""
    data: Any
    """The event's data: decoded JSON, text, or base64, as ``encoding`` says."""
    encoding: Literal["json", "text", "base64"]
    size: int


class EventPage(Model):
    topic: str
    events: list[EventView]
    next_offsets: dict[str, int]
    """Per partition read, where the next page starts (pass it back as ``offset``)."""
    truncated: bool
    """True when the scan stopped at its byte budget before ``limit`` events matched."""


class PublishEvent(Model):
    """One event to publish. ``data`` is stored as its JSON encoding, so consumers ``.json()`` it back."""

    data: Any
    key: str | None = None
    headers: dict[str, str] = {}


class Published(Model):
    partition: int
    offset: int


class PublishResult(Model):
    topic: str
    results: list[Published]


# -- dead letters ---------------------------------------------------------------------------


class DeadLetterTopicView(Model):
    topic: str
    source_topic: str
    group: str
    messages: int
    end_offset: int


class DeadLetterTopics(Model):
    dead_letter_topics: list[DeadLetterTopicView]


class DeadLetterView(Model):
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    group: str | None
    deliveries: int | None
    reason: str | None
    event: EventView


class DeadLetterPage(Model):
    topic: str
    letters: list[DeadLetterView]
    next_offset: int


class RedriveRequest(Model):
    """Which dead letters to republish: ``offsets``, or every one from ``from_offset`` when omitted."""

    offsets: list[int] | None = None
    from_offset: int | None = None


class RedriveResult(Model):
    topic: str
    redriven: int
    results: list[Published]
    next_offset: int
    """Pass it as ``from_offset`` next time to redrive only letters that arrived since."""


# -- live updates ---------------------------------------------------------------------------


class Snapshot(Model):
    """One ``/api/stream`` event: what the dashboard redraws every second."""

    time: int
    flow: FlowMap
    topics: list[TopicView]
    groups: list[GroupSummaryView]
