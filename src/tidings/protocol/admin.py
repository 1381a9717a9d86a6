"""The typed bodies of AdminRequest and AdminResponse frames.

Administration goes through two frames with one request id scheme,
``AdminRequest(request_id, body)`` and ``AdminResponse(request_id, body)``.
Adding an operation means adding a body type. It does not need a frame kind,
a state-table row or a codec change. Each body is a tagged union member, so
its first array element on the wire is the tag below.

=====================  ===  ==============================================
request body           tag  answered by (AdminResponse body)
=====================  ===  ==============================================
CreateTopic             0   TopicDescription
DeleteTopic             1   TopicDeleted
DescribeTopic           2   TopicDescription
ListTopics              3   TopicList
ListGroups              4   GroupList
DescribeGroup           5   GroupDescription
ResetGroup              6   GroupReset
Announce                7   Announced
=====================  ===  ==============================================

``Announce`` is not administration but a service describing itself: the
typed events it publishes (with their JSON Schema and version) and those it
handles, for the broker's flow map. It rides on AdminRequest because that
is exactly a typed request with an answer, and needs no new frame kind. It
replaces what the service announced before, so a reconnecting client may
send it again.

A failed operation is answered by a request-scoped ``Error`` frame, not by an
AdminResponse. Examples are ``unknown_topic``, ``topic_exists`` and
``not_authorized``.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tidings.protocol.values import (
    Count,
    GroupMode,
    Name,
    Offset,
    Partition,
    Start,
    TopicName,
    TopicPattern,
    Value,
)

PartitionCount = Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)]

# -- requests -------------------------------------------------------------------------


class CreateTopic(Value, frozen=True, kw_only=True, tag=0):
    """Create a topic. ``config`` holds per-topic settings (``retention.ms``, ``fsync``, ...) as strings."""

    name: TopicName
    partitions: PartitionCount = 1
    config: dict[str, str] = msgspec.field(default_factory=dict)


class DeleteTopic(Value, frozen=True, kw_only=True, tag=1):
    name: TopicName


class DescribeTopic(Value, frozen=True, kw_only=True, tag=2):
    name: TopicName


class ListTopics(Value, frozen=True, kw_only=True, tag=3):
    pass


class ListGroups(Value, frozen=True, kw_only=True, tag=4):
    """Every consumer group, or only the groups subscribed to ``topic``."""

    topic: TopicName | None = None


class DescribeGroup(Value, frozen=True, kw_only=True, tag=5):
    group: Name


class ResetGroup(Value, frozen=True, kw_only=True, tag=6):
    """Move a group's committed position on every partition of ``topic``.

    The group's delivery state on those partitions is forgotten: acks for
    messages it had in flight are ignored (stale), and replayed messages start
    again at delivery count 1.
    """

    group: Name
    topic: TopicName
    to: Start


class PublishedType(Value, frozen=True, kw_only=True):
    """A typed event a service publishes to ``topic``: its name, version and JSON Schema (as text)."""

    topic: TopicName
    type: str
    version: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] = 1
    schema_json: str = ""


class HandledType(Value, frozen=True, kw_only=True):
    """A typed event a service consumes from ``topic`` (a name or a pattern) in ``group``."""

    topic: TopicPattern
    group: Name
    type: str


class Announce(Value, frozen=True, kw_only=True, tag=7):
    """What ``service`` publishes and handles, by event type; replaces its previous announcement."""

    service: Name
    publishes: tuple[PublishedType, ...] = ()
    subscribes: tuple[HandledType, ...] = ()


AdminRequestBody = (
    CreateTopic
    | DeleteTopic
    | DescribeTopic
    | ListTopics
    | ListGroups
    | DescribeGroup
    | ResetGroup
    | Announce
)

# -- responses ------------------------------------------------------------------------


class PartitionInfo(Value, frozen=True, kw_only=True):
    """One partition's retained range: offsets ``start_offset`` (first kept) to ``end_offset`` (next)."""

    partition: Partition
    start_offset: Offset
    end_offset: Offset


class TopicDescription(Value, frozen=True, kw_only=True, tag=0):
    name: TopicName
    partitions: tuple[PartitionInfo, ...]
    config: dict[str, str] = msgspec.field(default_factory=dict)


class TopicDeleted(Value, frozen=True, kw_only=True, tag=1):
    name: TopicName


class TopicList(Value, frozen=True, kw_only=True, tag=2):
    topics: tuple[TopicName, ...]


class GroupSummary(Value, frozen=True, kw_only=True):
    group: Name
    topics: tuple[TopicPattern, ...]
    members: Count
    lag: Count
    """Messages appended but not yet acked, summed over the group's partitions."""


class GroupList(Value, frozen=True, kw_only=True, tag=3):
    groups: tuple[GroupSummary, ...]


class TopicPartition(Value, frozen=True, kw_only=True):
    topic: TopicName
    partition: Partition


class GroupMember(Value, frozen=True, kw_only=True):
    """One connected subscription taking part in the group."""

    member_id: str
    client_id: str
    service: Name
    topic: TopicPattern
    mode: GroupMode
    assigned: tuple[TopicPartition, ...] = ()
    """Partitions assigned to this member (partitioned mode); empty in shared mode."""


class GroupPartition(Value, frozen=True, kw_only=True):
    """A group's progress on one partition.

    ``committed`` is the group's low-water mark: every offset below it is
    settled (acked, terminated or dead-lettered). Acks are per message, so
    offsets above it may be settled too. ``lag`` is ``end_offset - committed``.
    """

    topic: TopicName
    partition: Partition
    committed: Offset
    end_offset: Offset
    lag: Count
    in_flight: Count = 0
    """Messages delivered and not yet settled."""


class GroupDescription(Value, frozen=True, kw_only=True, tag=4):
    group: Name
    members: tuple[GroupMember, ...]
    partitions: tuple[GroupPartition, ...]


class PartitionOffset(Value, frozen=True, kw_only=True):
    partition: Partition
    offset: Offset


class GroupReset(Value, frozen=True, kw_only=True, tag=5):
    """Where a ResetGroup left the group: its new committed offset per partition."""

    group: Name
    topic: TopicName
    offsets: tuple[PartitionOffset, ...]


class Announced(Value, frozen=True, kw_only=True, tag=6):
    """The broker recorded an Announce: how many types it now knows for the service."""

    service: Name
    publishes: Count
    subscribes: Count


AdminResponseBody = (
    TopicDescription | TopicDeleted | TopicList | GroupList | GroupDescription | GroupReset | Announced
)
