"""``Monitor``: what the demo shows live, learnt from the Apps themselves rather than from the broker.

Every App reports each publish and each settlement to its ``observer``; the monitor is that
observer for all the shop's Apps. It counts, per consumer group, the events of *this run* it has
acked (an event belongs to the run when its ``order_id`` starts with the run's prefix, so a broker
that kept older runs' events does not confuse the counts) and the latency from the event's record
timestamp to its settlement, for the p99. Responders are not settled like subscribers (a request is
answered, not acked), so ``responder(name)`` is a middleware that counts the answers instead.
Lag is shown as "to handle" (expected minus handled): it needs no admin API, so it reads the same
on every backend.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from rich.table import Table

from tidings.app import Ack, Context, Decision
from tidings.app.handlers import Handler
from tidings.backends.base import Delivery

__all__ = ["Monitor", "p99"]


class _Ref(msgspec.Struct):
    """The one field the monitor reads from any shop event (the others are ignored when decoding)."""

    order_id: str = ""


def p99(samples: list[float]) -> float | None:
    """The 99th percentile (nearest rank) of ``samples``; None without any."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, -(-99 * len(ordered) // 100) - 1))]


class Monitor:
    """The observer of every shop App (``app.observer = monitor``); see the module docstring."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.handled: Counter[str] = Counter()
        self.published: Counter[str] = Counter()
        self.latencies: defaultdict[str, list[float]] = defaultdict(list)
        self.started = time.perf_counter()

    def _ours(self, data: bytes) -> bool:
        try:
            return msgspec.json.decode(data, type=_Ref).order_id.startswith(self.prefix)
        except msgspec.DecodeError:
            return False

    def on_published(
        self, topic: str, partition: int, offset: int, data: bytes, headers: dict[str, bytes]
    ) -> None:
        if self._ours(data):
            self.published[topic] += 1

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None:
        if isinstance(decision, Ack) and self._ours(delivery.data):
            self._count(group, delivery.timestamp)

    def _count(self, group: str, timestamp: datetime) -> None:
        self.handled[group] += 1
        self.latencies[group].append(max((datetime.now(UTC) - timestamp).total_seconds(), 0.0))

    def responder(self, group: str) -> Callable[[Handler], Handler]:
        """A middleware counting each request of the run that ``group`` answered (``app.middleware(...)``)."""

        def wrap(handler: Handler) -> Handler:
            async def counted(event: Any, ctx: Context) -> Any:
                reply = await handler(event, ctx)
                if str(getattr(event, "order_id", "")).startswith(self.prefix):
                    self._count(group, ctx.timestamp)
                return reply

            return counted

        return wrap

    def table(self, expected: dict[str, int]) -> Table:
        """One row per group: handled of expected, the rest still to handle, p99 latency."""
        table = Table(
            "group", "handled", "of", "to handle", "p99 ms", title="shop: events handled per service"
        )
        for group, total in expected.items():
            latency = p99(self.latencies[group])
            shown = "-" if latency is None else f"{latency * 1000:.1f}"
            handled = self.handled[group]
            table.add_row(group, f"{handled:,}", f"{total:,}", f"{max(total - handled, 0):,}", shown)
        published = ", ".join(f"{topic} {count:,}" for topic, count in sorted(self.published.items()))
        table.caption = f"published: {published or 'nothing yet'}; {time.perf_counter() - self.started:.1f} s"
        return table
