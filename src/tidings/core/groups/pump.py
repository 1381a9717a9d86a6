"""One turn of a partition in ``take_deliveries``: who may take its messages, and the frame they get.

* Partitioned mode: only the partition's owner, and only while no other
  member holds messages of it (the rebalance handover, see the package
  docstring).
* Shared mode: every active member with credit whose subscription covers
  the topic, one frame each per turn, starting with a different member each
  turn so none is always first.

Held sessions (``Holds``) get nothing, as if they had no credit: the server
holds a session whose socket is not draining (its transport paused
writing), and a session that got ``burst_bytes`` of deliveries in one
``take_deliveries`` is held too, until the server releases it on a later
turn of the event loop. So the broker never builds frames for a consumer
that does not read (they would only pile up in its send buffer, in the
broker's memory), and one consumer's backlog is read and sent a
``burst_bytes`` slice per loop turn, between other connections' work,
rather than in one long stall of the loop.

Before planning, messages that retention deleted from under the group are
settled as lost (``PartitionState.lose``). A source error (a damaged log)
skips the partition until its next ``records_available``. It is logged,
never raised, so one bad partition cannot stop every delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from tidings.core.groups.delivery import BatchReader, plan_delivery
from tidings.core.groups.membership import Group, Subscription
from tidings.core.groups.partition import PartitionState
from tidings.core.groups.roster import Roster
from tidings.core.groups.values import Delivery
from tidings.core.ports import PartitionSource
from tidings.errors import TidingsError
from tidings.protocol.values import GroupMode
from tidings.records import Buffer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Holds:
    """Sessions that get no deliveries now, and the burst bound that holds one (see the module)."""

    burst_bytes: int | None = None
    """Bytes of deliveries one session gets per ``take_deliveries`` before it is held; None: no bound."""
    held: set[str] = field(default_factory=set)
    burst: dict[str, int] = field(default_factory=dict)
    """Bytes delivered to each session in the current ``take_deliveries``."""
    by_burst: list[str] = field(default_factory=list)
    """Sessions the burst bound held, for the server to release on a later loop turn."""

    def count(self, session_id: str, batches: Sequence[Buffer]) -> None:
        """Count a delivery's batches against the session's burst (nothing to count without a bound)."""
        if self.burst_bytes is None:
            return
        total = self.burst[session_id] = self.burst.get(session_id, 0) + sum(map(len, batches))
        if total >= self.burst_bytes and session_id not in self.held:
            self.held.add(session_id)
            self.by_burst.append(session_id)


class Pump:
    """Turns a partition's state into Deliver frames for whoever may take them."""

    __slots__ = ("_holds", "_max_bytes", "_roster", "_source")

    def __init__(self, roster: Roster, source: PartitionSource, max_bytes: int, holds: Holds) -> None:
        self._roster = roster
        self._source = source
        self._max_bytes = max_bytes
        self._holds = holds

    def turn(self, state: PartitionState, reader: BatchReader, now: int, out: list[Delivery]) -> bool:
        """One turn of ``state``; False when it has nothing more to deliver now."""
        group = self._roster.groups[state.group]
        held = self._holds.held
        if group.mode is GroupMode.PARTITIONED:
            sub = self._roster.get(group.owner((state.topic, state.partition)))
            if sub is None or sub.credits <= 0 or sub.key[0] in held or state.blocked_for(sub.key):
                return False
            return self._deliver(group, state, sub, reader, now=now, out=out)
        takers = [
            m for m in group.active() if m.credits > 0 and m.key[0] not in held and state.topic in m.topics
        ]
        if not takers:
            return False
        first = group.turn % len(takers)
        group.turn += 1
        made = False
        for sub in takers[first:] + takers[:first]:
            if sub.key[0] in held:
                continue  # the burst bound held it during this turn (a second subscription of a session)
            if not self._deliver(group, state, sub, reader, now=now, out=out):
                break  # nothing left to deliver here
            made = True
        return made

    def _deliver(
        self,
        group: Group,
        state: PartitionState,
        sub: Subscription,
        reader: BatchReader,
        *,
        now: int,
        out: list[Delivery],
    ) -> bool:
        try:
            first, end = self._source.log_range(state.topic, state.partition)
            if first > state.floor:
                group.counters.lost += state.lose(state.floor, first - 1)
            if not state.ready and state.cursor >= end:
                return False  # nothing to redeliver, nothing new: the turn after every ack and credit
            plan = plan_delivery(
                state, reader, credits=sub.credits, max_bytes=self._max_bytes, high_watermark=end
            )
        except TidingsError as exc:
            log.warning("cannot deliver %s/%d to group %s: %s", state.topic, state.partition, group.name, exc)
            return False
        state.deliver(
            sub.key,
            plan.redelivered,
            plan.fresh,
            plan.cursor,
            now + sub.ack_deadline_ms,
            times=plan.fresh_times,
        )
        draft = plan.draft
        if not draft.count:
            return False
        sub.credits -= draft.count
        group.counters.delivered += draft.count
        group.counters.redelivered += len(plan.redelivered)
        delivery = draft.delivery(sub.key, state.topic, state.partition, group.name)
        out.append(delivery)
        self._holds.count(sub.key[0], delivery.batches)
        return True
