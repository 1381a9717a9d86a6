"""What administrators see of a group: ``describe_group`` and ``list_groups`` answers.

Read-only views built from a ``Group`` and the source's log ranges, in the
protocol's admin value types, so the server can put them in an
AdminResponse as they are.
"""

from __future__ import annotations

from tidings.core.groups.membership import Group
from tidings.core.groups.partition import PartitionState
from tidings.core.groups.policy import lag
from tidings.core.groups.values import member_id
from tidings.core.ports import PartitionSource
from tidings.protocol.admin import (
    GroupDescription,
    GroupMember,
    GroupPartition,
    GroupSummary,
    TopicPartition,
)

_MAX_COUNT = 2**32 - 1  # the wire's Count


def end_offset(source: PartitionSource, state: PartitionState) -> int:
    """The partition's high watermark, or the group's floor when the topic no longer exists."""
    if state.topic not in source.topics_matching(state.topic):
        return state.floor
    return source.log_range(state.topic, state.partition)[1]


def partition_view(source: PartitionSource, state: PartitionState) -> GroupPartition:
    end = end_offset(source, state)
    return GroupPartition(
        topic=state.topic,
        partition=state.partition,
        committed=state.floor,
        end_offset=max(end, state.floor),
        lag=min(lag(end, state.floor), _MAX_COUNT),
        in_flight=min(state.in_flight, _MAX_COUNT),
    )


def describe(group: Group, source: PartitionSource) -> GroupDescription:
    members = tuple(
        GroupMember(
            member_id=member_id(m.key),
            client_id=m.info.client_id,
            service=m.info.service,
            topic=m.pattern,
            mode=m.mode,
            assigned=tuple(TopicPartition(topic=t, partition=p) for t, p in group.assigned_to(m.key)),
        )
        for m in group.active()
    )
    partitions = tuple(partition_view(source, state) for _, state in sorted(group.states.items()))
    return GroupDescription(group=group.name, members=members, partitions=partitions)


def summarize(group: Group, source: PartitionSource) -> GroupSummary:
    active = group.active()
    patterns = sorted({m.pattern for m in active}) if active else group.topics()
    total = sum(lag(end_offset(source, state), state.floor) for state in group.states.values())
    return GroupSummary(
        group=group.name, topics=tuple(patterns), members=len(active), lag=min(total, _MAX_COUNT)
    )
