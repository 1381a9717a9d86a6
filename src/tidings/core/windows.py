"""Sliding windows of counts and of latencies, pure and bounded in memory.

The dashboard wants "now" figures (messages per second, processing delay
p50/p99) that forget the past, and the broker must not grow with traffic to
give them. Both windows here are a ring of time slots: a slot older than
the window is reset when its turn comes again, so memory is fixed at
construction and no timer is needed. Time is passed in (``now`` in ms), so
tests drive it by hand.

``RateWindow``: one integer per slot; ``rate(now)`` is the events of the
complete window divided by its length.

``LatencyWindow``: one sparse log-linear histogram per slot. Values below
32 ms get a bin each; above, a bin covers 1/16 of its power of two, so a
quantile is within about 3% of the truth (the bin's midpoint is reported),
and a slot holds at most a few hundred bins whatever the traffic. Adding a
sample is a few integer operations and one dict update; quantiles merge the
live slots at read time (the cold path: the HTTP API, a scrape).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

_EXACT: Final = 32
"""Values below this are their own bin."""
_SUB_BITS: Final = 4
_SUB: Final = 1 << _SUB_BITS  # 16 bins per power of two above _EXACT


def bin_of(value: int) -> int:
    """The histogram bin of a non-negative value (negative values count as 0: clocks disagree)."""
    if value < _EXACT:
        return max(value, 0)
    bits = value.bit_length()  # >= 6
    top = value >> (bits - _SUB_BITS - 1)  # 16..31
    return _EXACT + (bits - 6) * _SUB + (top - _SUB)


def bin_bounds(index: int) -> tuple[int, int]:
    """``(lowest, highest)`` value of a bin, both inclusive."""
    if index < _EXACT:
        return index, index
    step, top = divmod(index - _EXACT, _SUB)
    shift = step + 1  # bits - 5
    low = (top + _SUB) << shift
    return low, low + (1 << shift) - 1


class _Ring:
    """The slot bookkeeping both windows share: which slot ``now`` falls in, and which are live."""

    __slots__ = ("epochs", "slot_ms")

    def __init__(self, window_ms: int, slots: int) -> None:
        if window_ms < slots or slots < 1:
            raise ValueError(f"a window of {window_ms} ms cannot have {slots} slots")
        self.slot_ms = window_ms // slots
        self.epochs = [-1] * slots

    def slot(self, now: int) -> tuple[int, bool]:
        """``(index, fresh)``: the slot for ``now``, and whether it must be reset before use."""
        epoch = now // self.slot_ms
        index = epoch % len(self.epochs)
        if self.epochs[index] == epoch:
            return index, False
        self.epochs[index] = epoch
        return index, True

    def live(self, now: int) -> Iterable[int]:
        oldest = now // self.slot_ms - len(self.epochs)
        return (i for i, epoch in enumerate(self.epochs) if epoch > oldest)


class RateWindow:
    """Events per second over the last ``window_ms`` (default 10 s, in 1 s slots)."""

    __slots__ = ("_counts", "_ring", "total")

    def __init__(self, window_ms: int = 10_000, slots: int = 10) -> None:
        self._ring = _Ring(window_ms, slots)
        self._counts = [0] * slots
        self.total = 0
        """Events ever added (since this object was made)."""

    def __repr__(self) -> str:
        return f"RateWindow(total={self.total})"

    def add(self, count: int, now: int) -> None:
        index, fresh = self._ring.slot(now)
        self._counts[index] = count if fresh else self._counts[index] + count
        self.total += count

    def rate(self, now: int) -> float:
        """Events per second in the window that ends now (the current, partial slot included)."""
        counted = sum(self._counts[i] for i in self._ring.live(now))
        return counted * 1000 / (self._ring.slot_ms * len(self._counts))


@dataclass(frozen=True, slots=True)
class Quantiles:
    """Latency figures of one window, in milliseconds."""

    count: int
    p50: float
    p99: float
    max: float


class LatencyWindow:
    """Quantiles of the samples of the last ``window_ms`` (default 60 s, in 6 slots of 10 s)."""

    __slots__ = ("_bins", "_ring")

    def __init__(self, window_ms: int = 60_000, slots: int = 6) -> None:
        self._ring = _Ring(window_ms, slots)
        self._bins: list[dict[int, int]] = [{} for _ in range(slots)]

    def __repr__(self) -> str:
        return f"LatencyWindow(slots={len(self._bins)})"

    def add(self, value: int, now: int, count: int = 1) -> None:
        index, fresh = self._ring.slot(now)
        bins = self._bins[index]
        if fresh:
            bins.clear()
        key = bin_of(value)
        bins[key] = bins.get(key, 0) + count

    def add_many(self, values: Iterable[int], now: int) -> None:
        """``add(value, now)`` for each value: one slot lookup for a whole ack's messages."""
        index, fresh = self._ring.slot(now)
        bins = self._bins[index]
        if fresh:
            bins.clear()
        get = bins.get
        for value in values:
            key = value if 0 <= value < _EXACT else bin_of(value)
            bins[key] = get(key, 0) + 1

    def quantiles(self, now: int) -> Quantiles | None:
        """p50, p99 and max of the live samples, or None when there are none."""
        merged: dict[int, int] = {}
        for index in self._ring.live(now):
            for key, count in self._bins[index].items():
                merged[key] = merged.get(key, 0) + count
        total = sum(merged.values())
        if not total:
            return None
        ordered = sorted(merged.items())
        return Quantiles(
            count=total,
            p50=_quantile(ordered, total, 0.50),
            p99=_quantile(ordered, total, 0.99),
            max=float(bin_bounds(ordered[-1][0])[1]),
        )


def _quantile(ordered: list[tuple[int, int]], total: int, q: float) -> float:
    """The midpoint of the bin holding the sample of rank ``ceil(q * total)``."""
    rank = max(1, -int(-q * total // 1))
    seen = 0
    for key, count in ordered:
        seen += count
        if seen >= rank:
            low, high = bin_bounds(key)
            return (low + high) / 2
    low, high = bin_bounds(ordered[-1][0])  # pragma: no cover - rank <= total always hits above
    return (low + high) / 2
