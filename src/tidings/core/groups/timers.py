"""One queue for every timed thing the engine waits for: ack deadlines and delayed redeliveries.

The server runs a single timer per engine, set from ``next_wakeup`` (the
earliest due time here), and calls ``tick`` when it fires. A timer is
cancelled far more often than it fires (most messages are acked well before
their deadline), so cancelling is O(1): the timer leaves the ``live`` table
and its heap entry becomes stale, skipped when it reaches the top. To keep
stale entries from piling up under a fast consumer, the heap is rebuilt from
the live table when it grows past twice the live count. The heap thus stays
O(live timers), and live timers are bounded by messages in flight, which
credits bound.

The queue knows nothing of messages: a timer is an id, a due time and an
owner object the caller gets back when the timer fires.
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

T = TypeVar("T")

_SLACK = 64  # stale entries tolerated before a rebuild is considered, so tiny heaps never rebuild


class TimerQueue(Generic[T]):
    """Timers by due time (ms), each with an owner; cancel is O(1), firing is O(log n)."""

    __slots__ = ("_heap", "_live", "_next_id")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []  # (due, id)
        self._live: dict[int, tuple[int, T]] = {}  # id -> (due, owner)
        self._next_id = 1

    def __len__(self) -> int:
        """Live timers."""
        return len(self._live)

    def __repr__(self) -> str:
        return f"TimerQueue(live={len(self._live)}, heap={len(self._heap)}, next={self.next_due()})"

    def add(self, due: int, owner: T) -> int:
        """Start a timer; returns its id (never 0, so 0 can mean "no timer")."""
        timer = self._next_id
        self._next_id += 1
        self._live[timer] = (due, owner)
        heapq.heappush(self._heap, (due, timer))
        return timer

    def cancel(self, timer: int) -> None:
        """Forget a timer (unknown or fired ids are ignored)."""
        if self._live.pop(timer, None) is not None and len(self._heap) > 2 * len(self._live) + _SLACK:
            self._heap = [(due, key) for key, (due, _) in self._live.items()]
            heapq.heapify(self._heap)

    def next_due(self) -> int | None:
        """The earliest due time of a live timer, or None."""
        heap = self._heap
        while heap and heap[0][1] not in self._live:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: int) -> list[tuple[int, T]]:
        """Remove and return ``(id, owner)`` of every live timer due at or before ``now``, earliest first."""
        fired: list[tuple[int, T]] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, timer = heapq.heappop(heap)
            entry = self._live.pop(timer, None)
            if entry is not None:
                fired.append((timer, entry[1]))
        return fired
