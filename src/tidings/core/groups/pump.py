"""One turn of a partition in ``take_deliveries``: who may take its messages, and the frame they get.

* Partitioned mode: only the partition's owner, and only while no other
  member holds messages of it (the rebalance handover, see the package
  docstring).
* Shared mode: every active member with credit whose subscription covers
  the topic, one frame each per turn, starting with a different member each
  turn so none is always first.

Before planning, messages that retention deleted from under the group are
settled as lost (``PartitionState.lose``). A source error (a damaged log)
skips the partition until its next ``records_available``. It is logged,
never raised, so one bad partition cannot stop every delivery.
"""

from __future__ import annotations

import logging

from tidings.core.groups.delivery import BatchReader, plan_delivery
from tidings.core.groups.membership import Group, Subscription
from tidings.core.groups.partition import PartitionState
from tidings.core.groups.roster import Roster
from tidings.core.groups.values import Delivery
from tidings.core.ports import PartitionSource
from tidings.errors import TidingsError
from tidings.protocol.values import GroupMode

log = logging.getLogger(__name__)


class Pump:
    """Turns a partition's state into Deliver frames for whoever may take them."""

    __slots__ = ("_max_bytes", "_roster", "_source")

    def __init__(self, roster: Roster, source: PartitionSource, max_bytes: int) -> None:
        self._roster = roster
        self._source = source
        self._max_bytes = max_bytes

    def turn(self, state: PartitionState, reader: BatchReader, now: int, out: list[Delivery]) -> bool:
        """One turn of ``state``; False when it has nothing more to deliver now."""
        group = self._roster.groups[state.group]
        if group.mode is GroupMode.PARTITIONED:
            sub = self._roster.get(group.owner((state.topic, state.partition)))
            if sub is None or sub.credits <= 0 or state.blocked_for(sub.key):
                return False
            return self._deliver(group, state, sub, reader, now=now, out=out)
        takers = [m for m in group.active() if m.credits > 0 and state.topic in m.topics]
        if not takers:
            return False
        first = group.turn % len(takers)
        group.turn += 1
        made = False
        for sub in takers[first:] + takers[:first]:
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
        out.append(draft.delivery(sub.key, state.topic, state.partition, group.name))
        return True
