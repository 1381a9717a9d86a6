"""``/api/groups``: members, mode, per-partition progress and lag, redeliveries, dead letters, delay.

Built from the engine's admin views (``describe_group``), its counters and
its processing-delay window. The age of the oldest unacked message is the
engine's for delivered messages; for a partition that lags with nothing in
flight it is the event time of the batch at the group's floor, read from
the log's first batch header there (one small read, at most
``MAX_HEADER_READS`` per answer, so a group of thousands of partitions
cannot make one request read thousands of batches).
"""

from __future__ import annotations

from typing import Final, Literal

from tidings.core.broker import BrokerCore
from tidings.core.dead_letters import dead_letter_topic
from tidings.core.windows import Quantiles
from tidings.errors import TidingsError
from tidings.protocol.admin import GroupDescription
from tidings.protocol.values import GroupMode
from tidings.records import read_header
from tidings.server.http.models import (
    Delay,
    GroupCounters,
    GroupPartitionView,
    GroupSummaryView,
    GroupView,
    MemberView,
)

MAX_HEADER_READS: Final = 64


def delay(quantiles: Quantiles | None) -> Delay | None:
    if quantiles is None:
        return None
    return Delay(count=quantiles.count, p50_ms=quantiles.p50, p99_ms=quantiles.p99, max_ms=quantiles.max)


def mode_name(mode: GroupMode | None) -> Literal["partitioned", "shared"] | None:
    if mode is None:
        return None
    return "shared" if mode is GroupMode.SHARED else "partitioned"


def dead_letters(core: BrokerCore, group: str, topics: list[str]) -> int:
    total = 0
    for topic in topics:
        try:
            found = core.topics.find(dead_letter_topic(topic, group))
        except TidingsError:  # a name too long to have a dead-letter topic
            continue
        if found is not None:
            total += sum(max(lg.high_watermark - lg.start_offset, 0) for lg in found.logs)
    return total


def _floor_time(core: BrokerCore, topic: str, partition: int, offset: int) -> int | None:
    try:
        result = core.topics.read(topic, partition, offset, 1)
    except TidingsError:
        return None
    if not result.data:
        return None
    return read_header(result.data).first_timestamp


def summary(core: BrokerCore, name: str, description: GroupDescription | None = None) -> GroupSummaryView:
    engine = core.engine
    description = description or engine.describe_group(name)
    topics = sorted({p.topic for p in description.partitions} | {m.topic for m in description.members})
    stats = engine.group_stats(name)
    return GroupSummaryView(
        group=name,
        mode=mode_name(engine.group_mode(name)),
        topics=topics,
        members=len(description.members),
        lag=sum(p.lag for p in description.partitions),
        redeliveries=stats.redelivered,
        dead_letters=dead_letters(core, name, sorted({p.topic for p in description.partitions})),
        processing_delay=delay(engine.processing_delay(name)),
    )


def group_view(core: BrokerCore, name: str, now: int) -> GroupView:
    engine = core.engine
    description = engine.describe_group(name)
    base = summary(core, name, description)
    oldest = engine.oldest_pending(name)
    reads = 0
    partitions = []
    for p in description.partitions:
        time = oldest.get((p.topic, p.partition))
        if time is None and p.lag and reads < MAX_HEADER_READS:
            reads += 1
            time = _floor_time(core, p.topic, p.partition, p.committed)
        partitions.append(
            GroupPartitionView(
                topic=p.topic,
                partition=p.partition,
                committed=p.committed,
                end_offset=p.end_offset,
                lag=p.lag,
                in_flight=p.in_flight,
                oldest_unacked_age_ms=None if time is None or not p.lag else max(now - time, 0),
            )
        )
    members = [
        MemberView(
            member_id=m.member_id,
            client_id=m.client_id,
            service=m.service,
            topic=m.topic,
            mode=mode_name(m.mode) or "partitioned",
            assigned=[f"{a.topic}/{a.partition}" for a in m.assigned],
        )
        for m in description.members
    ]
    stats = engine.group_stats(name)
    counters = GroupCounters(
        delivered=stats.delivered,
        redelivered=stats.redelivered,
        acked=stats.acked,
        nacked=stats.nacked,
        expired=stats.expired,
        dead_lettered=stats.dead_lettered,
        stale_acks=stats.stale_acks,
        lost=stats.lost,
    )
    fields = {f: getattr(base, f) for f in base.__struct_fields__}
    return GroupView(**fields, member_list=members, partitions=partitions, counters=counters)


def group_summaries(core: BrokerCore) -> list[GroupSummaryView]:
    return [summary(core, name) for name in core.engine.group_names()]
