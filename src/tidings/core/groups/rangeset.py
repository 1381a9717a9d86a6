"""A sorted set of integer ranges: how a group remembers which offsets it has settled.

Acks are per message and may arrive in any order, so a group's progress is
"everything below the floor, plus these ranges above it". Storing ranges, not
offsets, keeps that small in the cases that matter: in-order acks leave no
range at all (the floor just moves), a stuck message followed by a million
acks is one range, and a shared group's random-order acks leave about as many
ranges as it has messages in flight.

The ranges are closed (``first..last``), sorted, disjoint and never adjacent,
the same canonical form as ``tidings.protocol.ranges``. Two parallel lists
(firsts, lasts) let ``bisect`` find a range in O(log n); an insert or merge
is O(n) list surgery, cheap for the few dozen ranges a group really has.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator


class RangeSet:
    """Disjoint, non-adjacent, sorted closed ranges of non-negative integers."""

    __slots__ = ("_firsts", "_lasts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._firsts: list[int] = []
        self._lasts: list[int] = []
        for first, last in ranges:
            self.add(first, last)

    def __repr__(self) -> str:
        inner = ", ".join(f"{lo}..{hi}" for lo, hi in self)
        return f"RangeSet({inner})"

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return zip(self._firsts, self._lasts, strict=True)

    def __len__(self) -> int:
        """The number of ranges (not of offsets: see ``count``)."""
        return len(self._firsts)

    def __bool__(self) -> bool:
        return bool(self._firsts)

    def __contains__(self, value: int) -> bool:
        index = bisect_right(self._firsts, value) - 1
        return index >= 0 and value <= self._lasts[index]

    @property
    def count(self) -> int:
        """How many integers the set holds."""
        return sum(last - first + 1 for first, last in self)

    @property
    def first(self) -> int | None:
        """The smallest integer held, or None when empty."""
        return self._firsts[0] if self._firsts else None

    def add(self, first: int, last: int) -> None:
        """Add ``first..last`` (both included), merging with any range it overlaps or touches."""
        if last < first:
            raise ValueError(f"range last {last} < first {first}")
        firsts, lasts = self._firsts, self._lasts
        # The ranges that overlap or touch first..last are those with first' <= last+1 and last' >= first-1.
        high = bisect_right(firsts, last + 1)
        low = high
        while low > 0 and lasts[low - 1] >= first - 1:
            low -= 1
        if low < high:
            first = min(first, firsts[low])
            last = max(last, lasts[high - 1])
        firsts[low:high] = [first]
        lasts[low:high] = [last]

    def take_from(self, floor: int) -> int:
        """Remove the lowest range if it starts at ``floor``, and return where the run of integers ends.

        That is how a floor advances: when the message at the floor is
        settled, everything settled just above it joins the floor.
        """
        if self._firsts and self._firsts[0] == floor:
            end = self._lasts[0] + 1
            del self._firsts[0]
            del self._lasts[0]
            return end
        return floor

    def discard_below(self, floor: int) -> None:
        """Forget every integer below ``floor`` (they are covered by the floor itself)."""
        while self._firsts and self._lasts[0] < floor:
            del self._firsts[0]
            del self._lasts[0]
        if self._firsts and self._firsts[0] < floor:
            self._firsts[0] = floor

    def gaps(self, first: int, last: int, limit: int) -> list[tuple[int, int]]:
        """The sub-ranges of ``first..last`` *not* in the set, holding at most ``limit`` integers in all.

        Used to pick a batch's deliverable offsets while skipping those
        settled before a restart.
        """
        out: list[tuple[int, int]] = []
        if limit <= 0 or last < first:
            return out
        firsts, lasts = self._firsts, self._lasts
        index = max(bisect_right(firsts, first) - 1, 0)
        cursor = first
        while cursor <= last and limit > 0:
            if index < len(firsts) and firsts[index] <= cursor:
                cursor = max(cursor, lasts[index] + 1)
                index += 1
                continue
            end = last if index >= len(firsts) else min(last, firsts[index] - 1)
            end = min(end, cursor + limit - 1)
            out.append((cursor, end))
            limit -= end - cursor + 1
            cursor = end + 1
        return out

    def clear(self) -> None:
        self._firsts.clear()
        self._lasts.clear()
