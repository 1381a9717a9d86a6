"""ctx.now() on replay, and dead letters on a backend without native_dead_letters (settle, with fakes)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import tidings
from tidings.app import DeadLetter, Event
from tidings.app.handlers import settle
from tidings.backends.base import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    Capabilities,
)


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str


async def test_ctx_now_is_the_event_time_on_replay():
    producer = tidings.App("shop", broker="memory://replay-now")
    consumer = tidings.App("inventory", broker="memory://replay-now")
    got: list[tuple[datetime, datetime | None, bool]] = []
    done = asyncio.Event()

    @consumer.subscribe(OrderPlaced, group="rebuild", start="earliest")
    async def rebuild(event: OrderPlaced, ctx: tidings.Context) -> None:
        got.append((ctx.now(), ctx.event_time, ctx.replaying))
        done.set()

    async with producer:
        await producer.publish(OrderPlaced(order_id="o-1"))
        await asyncio.sleep(0.01)  # the clock must move past the append time (millisecond precision)
        async with consumer:
            await asyncio.wait_for(done.wait(), 10)
    [(now, event_time, replaying)] = got
    assert replaying and event_time is not None
    assert now == event_time
    assert now < datetime.now(UTC)


async def test_ctx_now_is_the_wall_clock_live():
    app = tidings.App("inventory", broker="memory://")
    got: list[tuple[datetime, bool]] = []
    done = asyncio.Event()

    @app.subscribe(OrderPlaced)
    async def live(event: OrderPlaced, ctx: tidings.Context) -> None:
        got.append((ctx.now(), ctx.replaying))
        done.set()

    async with app:
        before = datetime.now(UTC)
        await app.publish(OrderPlaced(order_id="o-1"))
        await asyncio.wait_for(done.wait(), 10)
    [(now, replaying)] = got
    assert not replaying and now >= before


@dataclasses.dataclass
class FakeDelivery:
    topic: str = "orders.placed"
    partition: int = 2
    offset: int = 41
    key: bytes | None = b"k"
    headers: dict[str, bytes] = dataclasses.field(default_factory=lambda: {"ce_id": b"e-1"})
    data: bytes = b"{}"
    delivery_count: int = 4
    settled: list[str] = dataclasses.field(default_factory=list)

    async def ack(self) -> None:
        self.settled.append("ack")

    async def term(self, reason: str | None = None) -> None:
        self.settled.append(f"term {reason}")


@dataclasses.dataclass
class FakeBackend:
    capabilities: Capabilities
    published: list[tuple[str, bytes, object, dict]] = dataclasses.field(default_factory=list)

    async def publish(self, topic, data, *, key=None, headers=None, msg_id=None):
        self.published.append((topic, data, key, dict(headers or {})))


async def test_dead_letter_without_native_support_publishes_then_acks():
    backend, delivery = FakeBackend(Capabilities()), FakeDelivery()
    await settle(delivery, DeadLetter("ValueError: no"), group="inventory", backend=backend)  # type: ignore[arg-type]
    [(topic, data, key, headers)] = backend.published
    assert topic == "orders.placed.dlq.inventory" and data == b"{}" and key == b"k"
    assert headers["ce_id"] == b"e-1"
    assert {k: headers[k] for k in (DLQ_TOPIC, DLQ_PARTITION, DLQ_OFFSET, DLQ_GROUP, DLQ_DELIVERIES)} == {
        DLQ_TOPIC: "orders.placed",
        DLQ_PARTITION: "2",
        DLQ_OFFSET: "41",
        DLQ_GROUP: "inventory",
        DLQ_DELIVERIES: "4",
    }
    assert headers[DLQ_REASON] == "ValueError: no"
    assert delivery.settled == ["ack"]


async def test_dead_letter_with_native_support_terms():
    backend, delivery = FakeBackend(Capabilities(native_dead_letters=True)), FakeDelivery()
    await settle(delivery, DeadLetter("ValueError: no"), group="inventory", backend=backend)  # type: ignore[arg-type]
    assert backend.published == [] and delivery.settled == ["term ValueError: no"]
