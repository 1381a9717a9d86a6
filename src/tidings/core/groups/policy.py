"""The group engine's decisions, as pure functions: state in, decision out, no I/O.

* ``assign_partitions``: which member of a partitioned group owns which partition.
* ``covers``: which topics a subscription takes.
* ``resolve_start``: where a new group begins on a partition.
* ``next_redelivery``: what happens to a message that came back (nacked,
  past its deadline, or held by a member that vanished): redeliver when, or
  dead-letter why.
* ``lag``: what the dashboard and ``describe_group`` call lag.

The engine calls them and carries out the answer. Each can be tested with
plain values, and read on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from tidings.core.groups.values import MemberKey
from tidings.protocol.names import is_wildcard, topic_matches
from tidings.protocol.values import AtOffset, AtTime, Earliest, Latest, Start

TopicPartitionKey = tuple[str, int]
"""``(topic, partition)``."""

MAX_DELIVERIES_REASON = "max deliveries exceeded"
TERM_REASON = "terminated by the consumer"


def assign_partitions(
    members: Mapping[MemberKey, Collection[str]],
    partitions: Sequence[TopicPartitionKey],
    previous: Mapping[TopicPartitionKey, MemberKey] | None = None,
) -> dict[TopicPartitionKey, MemberKey]:
    """Give each partition one owner among the members that subscribe to its topic.

    ``members`` maps each live member to the topics it may take (its pattern
    can differ from other members'). The result is:

    * deterministic: it depends on the arguments only, never on dict order;
    * balanced: when every member takes every topic, each member owns
      ``n // m`` or ``n // m + 1`` partitions (otherwise, least-loaded first);
    * sticky: a partition stays with its ``previous`` owner when that keeps
      the balance, because moving one makes the new owner wait until the old
      owner's messages in flight are settled (see the package docstring).

    Partitions of a topic no member takes are left out.
    """
    previous = previous or {}
    order = sorted(members)
    rank = {member: index for index, member in enumerate(order)}
    wanted = sorted({p for p in partitions if any(p[0] in members[m] for m in order)})
    if not order or not wanted:
        return {}
    quota, extra = divmod(len(wanted), len(order))
    load = dict.fromkeys(order, 0)
    result: dict[TopicPartitionKey, MemberKey] = {}
    above_quota = 0
    for key in wanted:  # sticky pass: keep owners while they stay within the balanced share
        owner = previous.get(key)
        if owner is None or owner not in members or key[0] not in members[owner]:
            continue
        if load[owner] < quota:
            load[owner] += 1
            result[key] = owner
        elif load[owner] == quota and above_quota < extra:
            above_quota += 1
            load[owner] += 1
            result[key] = owner
    for key in wanted:  # the rest to the least loaded eligible member, ties to the first in order
        if key in result:
            continue
        owner = min((m for m in order if key[0] in members[m]), key=lambda m: (load[m], rank[m]))
        load[owner] += 1
        result[key] = owner
    return result


def covers(pattern: str, group: str, topic: str) -> bool:
    """Whether a subscription of ``group`` to ``pattern`` takes ``topic``.

    As ``names.topic_matches``, except that a *wildcard* never takes the
    group's own dead-letter topics (``<topic>.dlq.<group>``). Otherwise a
    group on ``orders.>`` would consume its own dead letters, and a poison
    message would go on to ``orders.dlq.g.dlq.g`` and so on, one new topic
    per round. The group can still read them by subscribing to the name.
    """
    if not topic_matches(pattern, topic):
        return False
    return not (is_wildcard(pattern) and topic.endswith(f".dlq.{group}"))


def resolve_start(start: Start, log_start: int, high_watermark: int, find_time: Callable[[int], int]) -> int:
    """The first offset a group with no progress on a partition will be delivered.

    An offset is clamped to what is retained (``log_start..high_watermark``),
    so a group asking for offset 0 of a log whose head was deleted starts at
    its first retained record, and one asking past the end waits for new
    records. ``find_time`` is the source's ``offset_for_time``, only called
    for an ``AtTime`` start.
    """
    if isinstance(start, Earliest):
        offset = log_start
    elif isinstance(start, Latest):
        offset = high_watermark
    elif isinstance(start, AtOffset):
        offset = start.offset
    elif isinstance(start, AtTime):
        offset = find_time(start.time)
    else:  # pragma: no cover - Start is a closed union
        raise TypeError(f"unknown start position {start!r}")
    return min(max(offset, log_start), high_watermark)


@dataclass(frozen=True, slots=True)
class Redeliver:
    """Make the message deliverable again at ``at`` (ms); its next delivery count is one more."""

    at: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Send the message to the dead-letter topic with ``reason``; it counts as settled."""

    reason: str


def next_redelivery(
    *,
    deliveries: int,
    max_deliveries: int | None,
    now: int,
    delay_ms: int = 0,
    reason: str | None = None,
) -> Redeliver | DeadLetter:
    """Decide the fate of a message that came back after ``deliveries`` deliveries.

    It came back because it was nacked (``delay_ms`` and ``reason`` from the
    Nack), its ack deadline passed, or its member disconnected. If another
    delivery would be number ``max_deliveries + 1``, it is dead-lettered now,
    with the last error a consumer gave or ``"max deliveries exceeded"``.
    Deciding here, rather than when it would next be delivered, means a
    poison message is dead-lettered even when no member is left to take it.
    """
    if max_deliveries is not None and deliveries >= max_deliveries:
        return DeadLetter(reason or MAX_DELIVERIES_REASON)
    return Redeliver(now + max(delay_ms, 0))


def lag(end_offset: int, committed: int) -> int:
    """Messages appended but not yet settled below the floor: ``end - committed``, never negative."""
    return max(end_offset - committed, 0)
