"""Who is in a consumer group, in which state, and who owns which partition.

A member is one subscription of one session (``MemberKey``). Its life is a
state machine, kept as data in ``TRANSITIONS``::

    ACTIVE ──unsubscribe──► LEAVING ──drained──► GONE
       │                       │
       └──disconnect / ended───┴──disconnect──► GONE

* ``ACTIVE``: takes new deliveries, counts in the assignment.
* ``LEAVING``: unsubscribed, but the Unsubscribe frame promises that its
  messages in flight are still settled by its acks. It takes no new
  deliveries and owns no partition; it leaves for good once its last lease
  is settled or expired (``DRAINED``).
* ``GONE``: forgotten. A disconnect goes straight here, and its leases go
  back to the group at once (nobody can ack them any more). ``ENDED`` is the
  broker's doing: the subscription's only topic was deleted.

A ``Group`` holds its members, its per-partition states and, in partitioned
mode, the assignment computed by ``policy.assign_partitions``. Its mode is
fixed by its first subscription and stays while it has any member; an empty
group takes the mode of whoever subscribes next.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from tidings.core.groups.partition import PartitionState
from tidings.core.groups.policy import TopicPartitionKey, assign_partitions, covers
from tidings.core.groups.values import GroupStats, MemberInfo, MemberKey
from tidings.protocol.values import GroupMode, Start


class SubscriptionState(enum.Enum):
    ACTIVE = "active"
    LEAVING = "leaving"
    GONE = "gone"


class SubscriptionEvent(enum.Enum):
    UNSUBSCRIBE = "unsubscribe"
    DISCONNECT = "disconnect"
    DRAINED = "drained"
    ENDED = "ended"


_S, _E = SubscriptionState, SubscriptionEvent
TRANSITIONS: Final[dict[tuple[SubscriptionState, SubscriptionEvent], SubscriptionState]] = {
    (_S.ACTIVE, _E.UNSUBSCRIBE): _S.LEAVING,
    (_S.ACTIVE, _E.DISCONNECT): _S.GONE,
    (_S.ACTIVE, _E.ENDED): _S.GONE,
    (_S.LEAVING, _E.DRAINED): _S.GONE,
    (_S.LEAVING, _E.DISCONNECT): _S.GONE,
    (_S.LEAVING, _E.ENDED): _S.GONE,
}


@dataclass(eq=False, slots=True)
class Subscription:
    """One member of one group, with its settings from the Subscribe frame."""

    key: MemberKey
    info: MemberInfo
    group: str
    pattern: str
    mode: GroupMode
    start: Start
    credits: int
    ack_deadline_ms: int
    max_deliveries: int | None
    requests: bool = True
    """Requests to its topics may be routed to it (a responder); False: events only."""
    state: SubscriptionState = SubscriptionState.ACTIVE
    topics: set[str] = field(default_factory=set)
    """Existing topics its pattern matches (kept up to date by topic_created / topic_deleted)."""

    def __repr__(self) -> str:
        return (
            f"Subscription({self.key[0]}/{self.key[1]} {self.group}:{self.pattern} {self.mode.name.lower()} "
            f"{self.state.value}, credits={self.credits})"
        )

    @property
    def active(self) -> bool:
        return self.state is SubscriptionState.ACTIVE

    def covers(self, topic: str) -> bool:
        return covers(self.pattern, self.group, topic)

    def move(self, event: SubscriptionEvent) -> SubscriptionState:
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise AssertionError(f"{self!r}: no transition on {event}")
        self.state = target
        return target


class Group:
    """A consumer group: members, per-partition states and the partitioned-mode assignment."""

    __slots__ = ("assignment", "counters", "members", "mode", "name", "states", "turn")

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode: GroupMode | None = None
        self.members: dict[MemberKey, Subscription] = {}  # ACTIVE and LEAVING
        self.states: dict[TopicPartitionKey, PartitionState] = {}
        self.assignment: dict[TopicPartitionKey, MemberKey] = {}
        self.turn = 0  # shared mode: where the next round of deliveries starts
        self.counters = GroupStats()  # bumped in place; readers get copies

    def __repr__(self) -> str:
        mode = self.mode.name.lower() if self.mode is not None else "empty"
        return f"Group({self.name}, {mode}, members={len(self.members)}, partitions={len(self.states)})"

    def active(self) -> list[Subscription]:
        """ACTIVE members, sorted by key: the order assignments and shared rounds follow."""
        return [m for _, m in sorted(self.members.items()) if m.active]

    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self.states})

    def partitions_of(self, topic: str) -> list[PartitionState]:
        return [state for (t, _), state in sorted(self.states.items()) if t == topic]

    def owner(self, key: TopicPartitionKey) -> MemberKey | None:
        return self.assignment.get(key)

    def assigned_to(self, member: MemberKey) -> list[TopicPartitionKey]:
        return sorted(key for key, owner in self.assignment.items() if owner == member)

    def leases_of(self, member: MemberKey) -> int:
        return sum(state.holders.get(member, 0) for state in self.states.values())

    def rebalance(self) -> None:
        """Recompute the owners (partitioned mode); shared groups have none."""
        if self.mode is not GroupMode.PARTITIONED:
            self.assignment = {}
            return
        members = {m.key: m.topics for m in self.active()}
        self.assignment = assign_partitions(members, list(self.states), self.assignment)

    def serving(self, member: Subscription) -> list[PartitionState]:
        """The partition states ``member`` may be delivered from right now, by its mode."""
        if not member.active:
            return []
        if self.mode is GroupMode.PARTITIONED:
            return [self.states[key] for key in self.assigned_to(member.key)]
        return [state for (topic, _), state in sorted(self.states.items()) if topic in member.topics]
