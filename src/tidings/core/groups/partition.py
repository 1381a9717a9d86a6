"""One group's bookkeeping for one partition: the floor, what is settled, what is in flight.

Every offset of the partition is in exactly one of these states, for this group::

    offset:   0 ........ floor ........................ cursor ................ high watermark
              SETTLED    | SETTLED (in ``settled``),       | UNREAD (never delivered;
              (below the | IN_FLIGHT, WAITING or READY     | ``settled`` may still hold
              floor)     | (in ``entries``)                | some, after a restart)

``floor`` is the lowest unsettled offset (the durable ``committed``), and
``cursor`` the next offset never delivered. Only offsets in ``entries``
cost an object each, and those are in flight or coming back, so their number
is bounded by the members' credits. Settled offsets above the floor are
ranges (``RangeSet``), so in-order acks cost nothing beyond moving the floor.

A message's life is a state machine, kept as data in ``TRANSITIONS``::

    UNREAD ──deliver──► IN_FLIGHT ──ack/term/dead-letter──► SETTLED
                 READY ─deliver─┘ │ ▲
    WAITING ◄─nack(delay)─────────┤ │
       │ due                      │ │
       ▼                          │ │
    READY ◄──nack(0)/expire/release
    WAITING, READY ──ack/term (no one holds it)──► SETTLED
    UNREAD, WAITING, READY ──lost (retention deleted it)──► SETTLED

``IN_FLIGHT`` entries hold their member (``holder``) and an ack-deadline
timer; ``WAITING`` ones a redelivery timer. One timer serves all the
messages leased by one delivery (or released by one nack), so a timer costs
one heap entry per Deliver frame, not per message. A timer counts its live
messages and is cancelled when the last one leaves it.
"""

from __future__ import annotations

import enum
from bisect import bisect_left, insort
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Final

from tidings.core.groups.rangeset import RangeSet
from tidings.core.groups.timers import TimerQueue
from tidings.core.groups.values import MemberKey
from tidings.core.ports import PartitionProgress
from tidings.protocol.ranges import OffsetRange


class MessageState(enum.IntEnum):  # IntEnum: hashed in C, and this table is looked up per message
    UNREAD = 0
    IN_FLIGHT = 1
    WAITING = 2
    READY = 3
    SETTLED = 4


class MessageEvent(enum.IntEnum):
    DELIVER = 0
    SETTLE = 1  # ack, term or dead-letter
    NACK_LATER = 2
    RETURN = 3  # nack(0), deadline passed, member gone
    DUE = 4
    LOST = 5


_S, _E = MessageState, MessageEvent
TRANSITIONS: Final[dict[tuple[MessageState, MessageEvent], MessageState]] = {
    (_S.UNREAD, _E.DELIVER): _S.IN_FLIGHT,
    (_S.READY, _E.DELIVER): _S.IN_FLIGHT,
    (_S.IN_FLIGHT, _E.SETTLE): _S.SETTLED,
    (_S.WAITING, _E.SETTLE): _S.SETTLED,
    (_S.READY, _E.SETTLE): _S.SETTLED,
    (_S.IN_FLIGHT, _E.NACK_LATER): _S.WAITING,
    (_S.IN_FLIGHT, _E.RETURN): _S.READY,
    (_S.WAITING, _E.DUE): _S.READY,
    (_S.UNREAD, _E.LOST): _S.SETTLED,
    (_S.WAITING, _E.LOST): _S.SETTLED,
    (_S.READY, _E.LOST): _S.SETTLED,
}
"""Every legal move of a message; anything else is a bug in the engine (``IllegalTransition``)."""


class IllegalTransition(AssertionError):
    """The engine tried a move ``TRANSITIONS`` does not have: a bug, never a peer's fault."""


def _move(entry: Pending, event: MessageEvent) -> None:
    target = TRANSITIONS.get((entry.state, event))
    if target is None:
        raise IllegalTransition(
            f"message {entry.offset}: no transition from {entry.state.name} on {event.name}"
        )
    entry.state = target


class Pending:
    """A delivered, unsettled message: in flight to ``holder``, or waiting to be redelivered."""

    __slots__ = ("deliveries", "holder", "offset", "reason", "state", "time", "timer")

    def __init__(self, offset: int, time: int = 0) -> None:
        self.offset = offset
        self.time = time  # the event's time (producer's clock, ms): the processing delay starts there
        self.state = MessageState.UNREAD
        self.deliveries = 0
        self.holder: MemberKey | None = None
        self.timer = 0
        self.reason: str | None = None  # the last error a Nack gave: the dead-letter reason

    def __repr__(self) -> str:
        state = self.state.name.lower()
        return f"Pending({self.offset}, {state}, deliveries={self.deliveries}, holder={self.holder})"


class _Timer:
    __slots__ = ("live", "offsets")

    def __init__(self, offsets: list[int]) -> None:
        self.offsets = offsets
        self.live = len(offsets)


class PartitionState:
    """What group ``group`` knows of ``topic``/``partition``: see the module docstring."""

    __slots__ = (
        "_changed",
        "_queue",
        "_timers",
        "cursor",
        "entries",
        "floor",
        "group",
        "holders",
        "partition",
        "ready",
        "settled",
        "topic",
    )

    def __init__(
        self,
        group: str,
        topic: str,
        partition: int,
        *,
        progress: PartitionProgress,
        queue: TimerQueue[PartitionState],
        changed: MutableMapping[PartitionState, None],
    ) -> None:
        self.group = group
        self.topic = topic
        self.partition = partition
        self.floor = progress.committed
        self.settled = RangeSet((r.first, r.last) for r in progress.settled_above if r.last >= self.floor)
        self.settled.discard_below(self.floor)
        self.floor = self.settled.take_from(self.floor)
        self.cursor = self.floor
        self.entries: dict[int, Pending] = {}
        self.ready: list[int] = []  # offsets of READY entries, sorted
        self.holders: dict[MemberKey, int] = {}  # member -> its IN_FLIGHT entries here
        self._timers: dict[int, _Timer] = {}
        self._queue = queue
        self._changed = changed

    def __repr__(self) -> str:
        return (
            f"PartitionState({self.group}:{self.topic}/{self.partition}, floor={self.floor}, "
            f"cursor={self.cursor}, settled={self.settled!r}, in_flight={self.in_flight}, "
            f"ready={len(self.ready)}, waiting={len(self.entries) - self.in_flight - len(self.ready)})"
        )

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.group, self.topic, self.partition)

    @property
    def in_flight(self) -> int:
        return sum(self.holders.values())

    def progress(self) -> PartitionProgress:
        ranges = tuple(OffsetRange(first=lo, last=hi) for lo, hi in self.settled)
        return PartitionProgress(committed=self.floor, settled_above=ranges)

    def blocked_for(self, member: MemberKey) -> bool:
        """True while another member holds messages here: a new owner waits for the old one's."""
        holders = self.holders
        return bool(holders) and (len(holders) > 1 or member not in holders)

    def is_settled(self, offset: int) -> bool:
        return offset < self.floor or offset in self.settled

    # -- moves -----------------------------------------------------------------------

    def deliver(
        self,
        member: MemberKey,
        redelivered: Iterable[int],
        fresh: Iterable[int],
        new_cursor: int,
        deadline: int,
        *,
        times: Sequence[int] = (),
    ) -> None:
        """Lease ``redelivered`` (READY entries) and ``fresh`` (UNREAD offsets) to ``member``.

        One timer, due at ``deadline``, serves them all. ``times``, when given,
        is each fresh offset's event time, kept for the processing delay.
        """
        leased: list[int] = []
        entries = self.entries
        for offset in redelivered:
            entry = entries[offset]
            index = bisect_left(self.ready, offset)
            del self.ready[index]
            leased.append(offset)
            self._lease(entry, member)
        before = len(leased)
        in_flight = MessageState.IN_FLIGHT
        for index, offset in enumerate(fresh):
            entry = entries[offset] = Pending(offset, times[index] if times else 0)
            # _lease inlined: UNREAD --DELIVER--> IN_FLIGHT is the one move a new entry has
            entry.state, entry.deliveries, entry.holder = in_flight, 1, member
            leased.append(offset)
        if len(leased) > before:
            self.holders[member] = self.holders.get(member, 0) + len(leased) - before
        self.cursor = max(self.cursor, new_cursor)
        if leased:
            timer = self._queue.add(deadline, self)
            self._timers[timer] = _Timer(leased)
            for offset in leased:
                entries[offset].timer = timer

    def _lease(self, entry: Pending, member: MemberKey) -> None:
        _move(entry, MessageEvent.DELIVER)
        entry.deliveries += 1
        entry.holder = member
        self.holders[member] = self.holders.get(member, 0) + 1

    def settle(self, offset: int) -> Pending | None:
        """Settle a delivered message (ack, term, dead-letter); returns its entry, or None if it had none."""
        entry = self.entries.pop(offset, None)
        if entry is None:
            return None
        self._detach(entry)
        _move(entry, MessageEvent.SETTLE)
        self._mark_settled(offset, offset)
        return entry

    def settle_many(self, entries: Iterable[Pending]) -> None:
        """``settle`` for each entry (an ack's messages): settled offsets marked a run at a time.

        The same moves as ``settle``, without a call per message for the
        bookkeeping: an ack of a thousand in-order messages moves the floor once.
        """
        pop = self.entries.pop
        offsets: list[int] = []
        for entry in entries:
            if pop(entry.offset, None) is None:
                continue
            self._detach(entry)
            _move(entry, MessageEvent.SETTLE)
            offsets.append(entry.offset)
        if not offsets:
            return
        offsets.sort()
        first = last = offsets[0]
        for offset in offsets[1:]:
            if offset != last + 1:
                self._mark_settled(first, last)
                first = offset
            last = offset
        self._mark_settled(first, last)

    def lose(self, first: int, last: int) -> int:
        """Settle ``first..last`` because retention deleted them; returns how many were unsettled."""
        lost = 0
        for offset in [o for o in self.entries if first <= o <= last]:
            entry = self.entries[offset]
            if entry.state is MessageState.IN_FLIGHT:
                continue  # its holder may still ack it; its deadline will bring it back here
            del self.entries[offset]
            self._detach(entry)
            _move(entry, MessageEvent.LOST)
            self._mark_settled(offset, offset)
            lost += 1
        if last >= self.cursor:
            start = max(first, self.cursor)
            lost += sum(b - a + 1 for a, b in self.settled.gaps(start, last, last - start + 1))
            self._mark_settled(start, last)
            self.cursor = last + 1
        return lost

    def give_back(self, entry: Pending, *, at: int, now: int) -> None:
        """Return an IN_FLIGHT message to be redelivered at ``at`` (now, if ``at <= now``)."""
        self._detach(entry)
        if at <= now:
            _move(entry, MessageEvent.RETURN)
            insort(self.ready, entry.offset)
        else:
            _move(entry, MessageEvent.NACK_LATER)
            timer = self._queue.add(at, self)
            self._timers[timer] = _Timer([entry.offset])
            entry.timer = timer

    def fire(self, timer: int) -> list[Pending]:
        """A timer is due: WAITING messages become READY; returns the IN_FLIGHT ones, now past their deadline.

        The caller decides (``policy.next_redelivery``) whether each of those
        is given back or dead-lettered.
        """
        group = self._timers.pop(timer, None)
        expired: list[Pending] = []
        if group is None:
            return expired
        for offset in group.offsets:
            entry = self.entries.get(offset)
            if entry is None or entry.timer != timer:
                continue
            entry.timer = 0
            if entry.state is MessageState.WAITING:
                _move(entry, MessageEvent.DUE)
                insort(self.ready, offset)
            else:
                expired.append(entry)
        return expired

    def held_by(self, member: MemberKey) -> list[Pending]:
        """The IN_FLIGHT entries of ``member``, by offset."""
        if member not in self.holders:
            return []
        return sorted((e for e in self.entries.values() if e.holder == member), key=lambda e: e.offset)

    def reset(self, offset: int) -> None:
        """Forget every delivery and all progress: the group starts over at ``offset``."""
        for timer in self._timers:
            self._queue.cancel(timer)
        self._timers.clear()
        self.entries.clear()
        self.ready.clear()
        self.holders.clear()
        self.settled.clear()
        self.floor = self.cursor = offset
        self._changed[self] = None

    def drop(self) -> None:
        """The topic is gone: cancel this state's timers so nothing fires for it."""
        for timer in self._timers:
            self._queue.cancel(timer)
        self._timers.clear()
        self.entries.clear()
        self.ready.clear()
        self.holders.clear()

    # -- internals -------------------------------------------------------------------

    def _detach(self, entry: Pending) -> None:
        """Undo what ties an entry to a member, a timer or the ready list."""
        if entry.holder is not None:
            count = self.holders[entry.holder] - 1
            if count:
                self.holders[entry.holder] = count
            else:
                del self.holders[entry.holder]
            entry.holder = None
        if entry.timer:
            group = self._timers.get(entry.timer)
            if group is not None:
                group.live -= 1
                if group.live == 0:
                    del self._timers[entry.timer]
                    self._queue.cancel(entry.timer)
            entry.timer = 0
        if entry.state is MessageState.READY:
            index = bisect_left(self.ready, entry.offset)
            if index < len(self.ready) and self.ready[index] == entry.offset:
                del self.ready[index]

    def _mark_settled(self, first: int, last: int) -> None:
        if first <= self.floor <= last:
            self.settled.discard_below(last + 1)
            self.floor = self.settled.take_from(last + 1)
        elif last >= self.floor:
            self.settled.add(first, last)
        else:
            return
        self.cursor = max(self.cursor, self.floor)
        self._changed[self] = None
