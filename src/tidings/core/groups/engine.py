"""``GroupEngine``: the consumer groups of one broker, driven by the server one event at a time.

Every method runs to completion without blocking. Reads and dead letters go
through the ``PartitionSource``; time comes from the injected clock. The
server feeds it events (subscribe, credit, ack, records_available, tick,
...), then drains ``take_deliveries`` (frames to send) and
``take_progress_changes`` (progress to save). The theory of operation is
in the package docstring (``tidings.core.groups``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence

from tidings.core.groups import views
from tidings.core.groups.claims import claim
from tidings.core.groups.delivery import BatchReader
from tidings.core.groups.membership import Group, Subscription, SubscriptionEvent
from tidings.core.groups.partition import PartitionState, Pending
from tidings.core.groups.policy import TERM_REASON, DeadLetter, next_redelivery, resolve_start
from tidings.core.groups.pump import Holds, Pump
from tidings.core.groups.roster import Roster
from tidings.core.groups.timers import TimerQueue
from tidings.core.groups.values import Delivery, GroupStats, MemberInfo
from tidings.core.ports import PartitionProgress, PartitionSource, ProgressKey
from tidings.core.windows import LatencyWindow, Quantiles
from tidings.errors import (
    GroupModeConflict,
    SubscriptionExists,
    TidingsError,
    UnknownSubscription,
    UnknownTopic,
)
from tidings.protocol.admin import GroupDescription, GroupList, GroupReset, PartitionOffset
from tidings.protocol.names import is_wildcard
from tidings.protocol.ranges import PartitionRanges
from tidings.protocol.values import Earliest, GroupMode, Start
from tidings.storage.log import monotonic_ms, wall_clock_ms

log = logging.getLogger(__name__)


class GroupEngine:
    """Every consumer group of the broker: membership, assignment, delivery, acks and progress."""

    def __init__(
        self,
        source: PartitionSource,
        progress: Mapping[ProgressKey, PartitionProgress],
        *,
        clock: Callable[[], int],
        max_delivery_bytes: int = 1 << 20,
        burst_bytes: int | None = None,
        timer_clock: Callable[[], int] | None = None,
    ) -> None:
        """``burst_bytes``: what one session gets per ``take_deliveries`` before it is held (``hold``)."""
        if max_delivery_bytes < 1:
            raise ValueError(f"max_delivery_bytes must be positive, not {max_delivery_bytes}")
        self._source = source
        self._clock = clock
        # Ack deadlines and redelivery delays run on a clock that never jumps: on the wall clock, an
        # NTP step forward would expire every lease at once (a mass redelivery) and one backward would
        # hold them all. ``clock`` (wall time) is kept for what is compared with event times. A test's
        # injected clock drives both, unless it injects a timer clock of its own.
        self._timer_clock = timer_clock or (monotonic_ms if clock is wall_clock_ms else clock)
        self._max_bytes = max_delivery_bytes
        self._roster = Roster()
        self._holds = Holds(burst_bytes)
        self._pump = Pump(self._roster, source, max_delivery_bytes, self._holds)
        self._by_partition: dict[tuple[str, int], list[PartitionState]] = {}
        self._widths: dict[str, int] = {}  # topic -> partitions some group has a state for
        self._timers: TimerQueue[PartitionState] = TimerQueue()
        self._wakeful: dict[PartitionState, None] = {}  # states that may have something to deliver
        self._changed: dict[PartitionState, None] = {}  # states whose progress is not saved yet
        self._deleted: list[ProgressKey] = []
        self._delays: dict[str, LatencyWindow] = {}  # group -> event time to ack
        for (group, topic, partition), value in sorted(progress.items()):
            self._add_state(self._roster.group(group), topic, partition, value)
        self._changed.clear()  # what was loaded is saved already

    def __repr__(self) -> str:
        return (
            f"GroupEngine(groups={len(self._roster.groups)}, subscriptions={len(self._roster.subs)}, "
            f"timers={len(self._timers)}, wakeful={len(self._wakeful)})"
        )

    # -- membership ------------------------------------------------------------------

    def subscribe(
        self,
        member: MemberInfo,
        subscription_id: int,
        topic: str,
        group: str,
        *,
        mode: GroupMode,
        start: Start,
        credits: int,
        ack_deadline_ms: int,
        max_deliveries: int | None,
        requests: bool = True,
    ) -> None:
        """Join ``group`` on ``topic`` (a name or a pattern); deliveries follow from ``take_deliveries``.

        ``requests``: whether requests to the topic may be routed to this subscription (``responders``).
        """
        if credits < 0 or ack_deadline_ms < 1 or (max_deliveries is not None and max_deliveries < 1):
            raise ValueError(
                f"bad subscription settings: credits={credits}, ack_deadline_ms={ack_deadline_ms}, "
                f"max_deliveries={max_deliveries}"
            )
        key = (member.session_id, subscription_id)
        existing = self._roster.get(key)
        if existing is not None and existing.active:
            raise SubscriptionExists(f"subscription {subscription_id} of session {key[0]} already exists")
        current = self._roster.groups.get(group)
        if current is not None and current.mode is not None and current.mode != mode:
            raise GroupModeConflict(
                f"group {group!r} is {current.mode.name.lower()}; "
                f"a {mode.name.lower()} subscription cannot join it"
            )
        if existing is not None:  # a leaving one with the same id: its messages go back
            self._release_all(existing, SubscriptionEvent.DISCONNECT)
        sub = Subscription(
            key, member, group, topic, mode, start, credits, ack_deadline_ms, max_deliveries, requests
        )
        self._roster.add(sub)
        target = self._roster.groups[group]
        for name in self._source.topics_matching(topic):
            if sub.covers(name):
                self._join_topic(target, sub, name, start)
        self._rebalance(target)

    def unsubscribe(self, session_id: str, subscription_id: int) -> None:
        """Stop deliveries; messages in flight stay leased until acked or past their deadline."""
        sub = self._roster.get((session_id, subscription_id))
        if sub is None or not sub.active:
            raise UnknownSubscription(f"session {session_id} has no subscription {subscription_id}")
        self._roster.move(sub, SubscriptionEvent.UNSUBSCRIBE)
        sub.credits = 0
        group = self._roster.groups[sub.group]
        self._roster.forget_if_drained(sub)
        self._rebalance(group)

    def disconnect(self, session_id: str) -> None:
        """The session is gone: its messages in flight go back to the group at once."""
        self._holds.held.discard(session_id)
        groups: dict[str, Group] = {}
        for sub in self._roster.of_session(session_id):
            groups[sub.group] = self._roster.groups[sub.group]
            self._release_all(sub, SubscriptionEvent.DISCONNECT)
        for group in groups.values():
            self._rebalance(group)

    def hold(self, session_id: str) -> None:
        """Deliver nothing to the session until ``release``: its socket is not draining (see ``pump``)."""
        self._holds.held.add(session_id)

    def release(self, session_id: str) -> None:
        """Deliver to the session again (its socket drained, or the loop turned after a burst)."""
        if session_id not in self._holds.held:
            return
        self._holds.held.discard(session_id)
        for sub in self._roster.of_session(session_id):
            self._wake(self._roster.groups[sub.group].serving(sub))

    def take_burst_held(self) -> list[str]:
        """Sessions the burst bound held since the last call: the server releases them on a later turn."""
        held, self._holds.by_burst = self._holds.by_burst, []
        return held

    def credit(self, session_id: str, subscription_id: int, credits: int) -> None:
        """Allow ``credits`` more messages in flight to this subscription (ignored once it ended)."""
        sub = self._roster.get((session_id, subscription_id))
        if sub is None or not sub.active or credits <= 0:
            return  # the subscription ended on our side while the Credit was on its way
        sub.credits += credits
        self._wake(self._roster.groups[sub.group].serving(sub))

    # -- settlement ------------------------------------------------------------------

    def ack(self, session_id: str, subscription_id: int, offsets: Sequence[PartitionRanges]) -> None:
        """Settle each message (``claims`` says which count; the rest are stale)."""
        sub = self._roster.get((session_id, subscription_id))
        if sub is None:
            return  # a subscription gone: whatever it held went back already
        claimed = self._claim(sub, offsets, lenient=True)
        by_state: dict[PartitionState, list[Pending]] = {}
        for state, entry in claimed:
            by_state.setdefault(state, []).append(entry)
        for state, entries in by_state.items():
            state.settle_many(entries)
        self._roster.groups[sub.group].counters.acked += len(claimed)
        if claimed:
            self._note_delays(sub.group, claimed)
        self._after_settlement(sub, claimed)

    def nack(
        self,
        session_id: str,
        subscription_id: int,
        offsets: Sequence[PartitionRanges],
        *,
        delay_ms: int,
        reason: str | None,
    ) -> None:
        """Redeliver each message after ``delay_ms``, or dead-letter it once past ``max_deliveries``."""
        sub = self._roster.get((session_id, subscription_id))
        if sub is None:
            return
        now = self._timer_clock()
        claimed = self._claim(sub, offsets, lenient=False)
        for state, entry in claimed:
            self._return(state, entry, sub, now=now, delay_ms=delay_ms, reason=reason)
        self._roster.groups[sub.group].counters.nacked += len(claimed)
        self._after_settlement(sub, claimed)

    def term(
        self, session_id: str, subscription_id: int, offsets: Sequence[PartitionRanges], *, reason: str | None
    ) -> None:
        """Dead-letter each message now, with ``reason``."""
        sub = self._roster.get((session_id, subscription_id))
        if sub is None:
            return
        claimed = self._claim(sub, offsets, lenient=True)
        for state, entry in claimed:
            self._dead_letter(state, entry, reason or TERM_REASON, now=self._timer_clock())
        self._after_settlement(sub, claimed)

    # -- topics and records ------------------------------------------------------------

    def topic_created(self, topic: str) -> None:
        """Pattern subscriptions (and names subscribed before the topic existed) pick it up from its start."""
        touched: dict[str, Group] = {}
        for sub in self._roster.active():
            if topic not in sub.topics and sub.covers(topic):
                group = self._roster.groups[sub.group]
                self._join_topic(group, sub, topic, Earliest())
                touched[group.name] = group
        for group in touched.values():
            self._rebalance(group)

    def topic_deleted(self, topic: str) -> list[tuple[str, int]]:
        """Forget the topic; returns the subscriptions that ended because it was their only topic."""
        ended: list[tuple[str, int]] = []
        self._by_partition = {k: v for k, v in self._by_partition.items() if k[0] != topic}
        self._widths.pop(topic, None)
        for group in list(self._roster.groups.values()):
            for state in group.partitions_of(topic):
                state.drop()
                del group.states[(topic, state.partition)]
                self._wakeful.pop(state, None)
                self._changed.pop(state, None)
                self._deleted.append(state.key)
            for sub in sorted(group.members.values(), key=lambda s: s.key):
                sub.topics.discard(topic)
                if sub.active and not is_wildcard(sub.pattern) and sub.pattern == topic:
                    ended.append(sub.key)
                    self._roster.forget(sub, SubscriptionEvent.ENDED)
                else:
                    self._roster.forget_if_drained(sub)
            self._rebalance(group)
            self._roster.prune(group)
        return ended

    def records_available(self, topic: str, partition: int) -> None:
        """The partition's high watermark moved: groups behind it may deliver."""
        states = self._by_partition.get((topic, partition))
        if states is None:
            if partition < self._widths.get(topic, partition + 1):
                return  # no group has this topic: the common case for a topic nobody consumes
            self._grow(topic)
            states = self._by_partition.get((topic, partition), [])
        self._wake(states)

    # -- time ------------------------------------------------------------------------

    def tick(self) -> None:
        """Expire ack deadlines and release delayed redeliveries due now, on the timer clock."""
        now = self._timer_clock()
        for timer, state in self._timers.pop_due(now):
            for entry in state.fire(timer):
                holder = self._roster.get(entry.holder)
                self._roster.groups[state.group].counters.expired += 1
                self._return(state, entry, holder, now=now)
                if holder is not None:
                    self._roster.forget_if_drained(holder)
            self._wakeful[state] = None

    def next_wakeup(self) -> int | None:
        """When ``tick`` next has something to do (ms, on ``clock``), or None.

        Timers are due on the timer clock; the answer is translated to ``clock``
        time (due in so many ms from now) for the server's scheduling.
        """
        due = self._timers.next_due()
        if due is None or self._timer_clock is self._clock:
            return due
        return due - self._timer_clock() + self._clock()

    # -- output ----------------------------------------------------------------------

    def take_deliveries(self) -> list[Delivery]:
        """Everything that can be delivered now, within each member's credits.

        Partitions take turns, one Deliver frame per member per turn, so one
        busy partition does not starve the others of a shared member's credits.
        """
        if not self._wakeful:  # the usual answer between deliveries (a request, a reply, a ping)
            return []
        out: list[Delivery] = []
        readers: dict[PartitionState, BatchReader] = {}
        self._holds.burst.clear()
        while self._wakeful:
            for state in list(self._wakeful):
                reader = readers.get(state)
                if reader is None:
                    reader = readers[state] = BatchReader(self._source, state.topic, state.partition)
                if not self._pump.turn(state, reader, self._timer_clock(), out):
                    del self._wakeful[state]
                    del readers[state]
        return out

    def take_progress_changes(self) -> dict[ProgressKey, PartitionProgress]:
        """Progress changed since the last call, for the server to save (``GroupStore.save``)."""
        changes = {state.key: state.progress() for state in self._changed}
        self._changed.clear()
        return changes

    def take_progress_deletions(self) -> list[ProgressKey]:
        """Progress of deleted topics, for the server to remove from its store (``FileGroupStore.delete``)."""
        deleted, self._deleted = self._deleted, []
        return deleted

    # -- queries ---------------------------------------------------------------------

    def subscribers(self, topic: str) -> list[tuple[str, int]]:
        """Active subscriptions whose topic or pattern covers ``topic``, sorted."""
        return sorted(key for key, sub in self._roster.subs.items() if sub.active and sub.covers(topic))

    def responders(self, topic: str) -> list[str]:
        """Sessions subscribed to ``topic`` that take requests (``requests=True``): distinct, sorted."""
        return self._roster.responder_sessions(topic)

    def list_groups(self, topic: str | None = None) -> GroupList:
        """Every group (with members or saved progress), or those on ``topic``."""
        groups = [
            group
            for _, group in sorted(self._roster.groups.items())
            if (group.members or group.states) and (topic is None or any(t == topic for t, _ in group.states))
        ]
        return GroupList(groups=tuple(views.summarize(group, self._source) for group in groups))

    def describe_group(self, group: str) -> GroupDescription:
        """Members with their partitions, and per partition: committed, end, lag, in flight."""
        return views.describe(self._roster.known(group), self._source)

    def processing_delay(self, group: str) -> Quantiles | None:
        """From event time to ack, over the last minute: p50, p99, max (None without acks meanwhile)."""
        window = self._delays.get(group)
        return None if window is None else window.quantiles(self._clock())

    def oldest_pending(self, group: str) -> dict[tuple[str, int], int]:
        """Per partition, the event time of the oldest message delivered and not yet settled.

        Only delivered messages are tracked (unread ones cost nothing); the HTTP
        API reads the batch header at the floor for a partition that lags with
        nothing in flight.
        """
        out: dict[tuple[str, int], int] = {}
        for key, state in self._roster.known(group).states.items():
            times = [e.time for e in state.entries.values() if e.time]
            if times:
                out[key] = min(times)
        return out

    def group_mode(self, group: str) -> GroupMode | None:
        """The group's mode while it has members (None once all left: the next one decides)."""
        return self._roster.known(group).mode

    def group_names(self) -> list[str]:
        """Every group with members or progress, sorted."""
        return sorted(name for name, g in self._roster.groups.items() if g.members or g.states)

    def group_stats(self, group: str) -> GroupStats:
        """Counters since start: deliveries, redeliveries, expiries, dead letters, stale acks, ..."""
        return copy.copy(self._roster.known(group).counters)

    # -- administration --------------------------------------------------------------

    def reset_group(self, group: str, topic: str, to: Start) -> GroupReset:
        """Move ``group`` on every partition of ``topic`` to ``to``; what it had in flight is forgotten."""
        target = self._roster.known(group)
        if topic not in self._source.topics_matching(topic):
            raise UnknownTopic(f"no topic {topic!r}")
        offsets: list[PartitionOffset] = []
        for partition in range(self._source.partition_count(topic)):
            offset = self._start_offset(topic, partition, to)
            state = target.states.get((topic, partition))
            if state is None:
                state = self._add_state(target, topic, partition, PartitionProgress(offset))
            state.reset(offset)
            offsets.append(PartitionOffset(partition=partition, offset=offset))
        for sub in list(target.members.values()):
            self._roster.forget_if_drained(sub)
        self._wake(target.states.values())
        return GroupReset(group=group, topic=topic, offsets=tuple(offsets))

    # -- internals: states -----------------------------------------------------------

    def _add_state(
        self, group: Group, topic: str, partition: int, progress: PartitionProgress
    ) -> PartitionState:
        state = PartitionState(
            group.name, topic, partition, progress=progress, queue=self._timers, changed=self._changed
        )
        group.states[(topic, partition)] = state
        self._by_partition.setdefault((topic, partition), []).append(state)
        self._widths[topic] = max(self._widths.get(topic, 0), partition + 1)
        self._changed[state] = None
        if state.key in self._deleted:  # deleted and created again: the new progress replaces the old
            self._deleted.remove(state.key)
        return state

    def _start_offset(self, topic: str, partition: int, start: Start) -> int:
        first, end = self._source.log_range(topic, partition)
        return resolve_start(start, first, end, lambda ms: self._source.offset_for_time(topic, partition, ms))

    def _join_topic(self, group: Group, sub: Subscription, topic: str, start: Start) -> None:
        """``sub`` covers ``topic``: make sure the group has a state on each of its partitions."""
        sub.topics.add(topic)
        for partition in range(self._source.partition_count(topic)):
            if (topic, partition) not in group.states:  # existing progress wins over ``start``
                self._add_state(
                    group, topic, partition, PartitionProgress(self._start_offset(topic, partition, start))
                )

    def _grow(self, topic: str) -> None:
        """A partition we have no state for had records: the topic grew, so join its new partitions."""
        for sub in self._roster.active():
            if topic in sub.topics:
                group = self._roster.groups[sub.group]
                before = len(group.states)
                self._join_topic(group, sub, topic, Earliest())
                if len(group.states) != before:
                    self._rebalance(group)

    def _rebalance(self, group: Group) -> None:
        group.rebalance()
        self._wake(group.states.values())

    def _wake(self, states: Iterable[PartitionState]) -> None:
        for state in states:
            self._wakeful[state] = None

    # -- internals: messages ---------------------------------------------------------

    def _release_all(self, sub: Subscription, event: SubscriptionEvent) -> None:
        """Give back every message ``sub`` holds (its session is gone), then forget it."""
        now = self._timer_clock()
        for state in list(self._roster.groups[sub.group].states.values()):
            for entry in state.held_by(sub.key):
                self._return(state, entry, sub, now=now)
        self._roster.forget(sub, event)

    def _claim(
        self, sub: Subscription, offsets: Sequence[PartitionRanges], *, lenient: bool
    ) -> list[tuple[PartitionState, Pending]]:
        group = self._roster.groups[sub.group]
        claimed, stale = claim(group, sub.key, offsets, lenient=lenient)
        group.counters.stale_acks += stale
        return claimed

    def _note_delays(self, group: str, claimed: list[tuple[PartitionState, Pending]]) -> None:
        """The processing delay of acked messages: one window per group, a dict update per message."""
        window = self._delays.get(group)
        if window is None:
            window = self._delays[group] = LatencyWindow()
        now = self._clock()
        window.add_many((now - entry.time for _, entry in claimed if entry.time), now)

    def _after_settlement(self, sub: Subscription, claimed: list[tuple[PartitionState, Pending]]) -> None:
        """Settling may unblock a partition's new owner, or let a leaving member go."""
        self._wake({state: None for state, _ in claimed})
        self._roster.forget_if_drained(sub)

    def _return(
        self,
        state: PartitionState,
        entry: Pending,
        holder: Subscription | None,
        *,
        now: int,
        delay_ms: int = 0,
        reason: str | None = None,
    ) -> None:
        """An IN_FLIGHT message came back: redeliver it (maybe later) or dead-letter it (``policy``)."""
        if reason:
            entry.reason = reason
        decision = next_redelivery(
            deliveries=entry.deliveries,
            max_deliveries=holder.max_deliveries if holder is not None else None,
            now=now,
            delay_ms=delay_ms,
            reason=entry.reason,
        )
        if isinstance(decision, DeadLetter):
            self._dead_letter(state, entry, decision.reason, now=now)
        else:
            state.give_back(entry, at=decision.at, now=now)
        self._wakeful[state] = None

    def _dead_letter(self, state: PartitionState, entry: Pending, reason: str, *, now: int) -> None:
        try:
            self._source.dead_letter(
                group=state.group,
                topic=state.topic,
                partition=state.partition,
                offset=entry.offset,
                deliveries=entry.deliveries,
                reason=reason,
            )
        except TidingsError as exc:  # keep the message rather than lose it: it will come back
            log.warning("cannot dead-letter %s/%d@%d: %s", state.topic, state.partition, entry.offset, exc)
            if entry.holder is not None:
                state.give_back(entry, at=now, now=now)
            return
        state.settle(entry.offset)
        self._roster.groups[state.group].counters.dead_lettered += 1
