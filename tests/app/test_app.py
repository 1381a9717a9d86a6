"""The App on memory://: ack, retries and dead letters, validation, middleware, concurrency, request/reply."""

from __future__ import annotations

import asyncio

import pytest

import tidings
from tidings.app import Event, Fixed, NoBackoff, encode
from tidings.app.application import App
from tidings.backends import memory
from tidings.backends.base import DLQ_DELIVERIES, DLQ_REASON, dead_letter_topic
from tidings.errors import HandlerFailed
from tidings.testing.app import TestApp


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str
    qty: int = 1


class StockReserved(Event, topic="stock.reserved"):
    order_id: str


class ConfirmPayment(Event, topic="payments.confirm"):
    order_id: str
    amount: int


class PaymentResult(Event, topic="payments.result"):
    order_id: str
    approved: bool


def make_app() -> App:
    return tidings.App("inventory", broker="memory://")


def test_exports():
    assert tidings.App is App
    assert tidings.Context.__name__ == "Context"


async def test_ack_on_success_and_ctx_publish():
    app = make_app()
    seen: list[tuple[str, int, str]] = []

    @app.subscribe(OrderPlaced, group="inventory")
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        seen.append((event.order_id, ctx.delivery_count, ctx.topic))
        assert ctx.event_id and ctx.offset >= 0 and ctx.append_time is not None
        await ctx.publish(StockReserved(order_id=event.order_id), key=event.order_id)

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.publish(OrderPlaced(order_id="o-2"))
        await t.drain()
        assert seen == [("o-1", 1, "orders.placed"), ("o-2", 1, "orders.placed")]
        assert t.published(StockReserved) == [StockReserved(order_id="o-1"), StockReserved(order_id="o-2")]


async def test_retries_then_dead_letter():
    app = make_app()
    counts: list[int] = []

    @app.subscribe(OrderPlaced, group="inventory", retries=2, backoff=Fixed(0.01))
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        counts.append(ctx.delivery_count)
        raise ValueError("out of tea")

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.drain()
        assert counts == [1, 2, 3]
        [dead] = await t.read(dead_letter_topic("orders.placed", "inventory"), 1)
        assert b"out of tea" in dead.headers[DLQ_REASON]
        assert b"2 retries exhausted" in dead.headers[DLQ_REASON]
        assert dead.headers[DLQ_DELIVERIES] == b"3"
        assert dead.data == encode(OrderPlaced(order_id="o-1"), source="x").data


async def test_invalid_event_is_dead_lettered_without_calling_the_handler():
    app = make_app()
    called: list[object] = []

    @app.subscribe(OrderPlaced, group="inventory", retries=5)
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        called.append(event)

    async with TestApp(app) as t:
        bad = encode({"order_id": 7}, source="shop", topic="orders.placed")  # order_id must be a str
        receipt = await app.backend.publish("orders.placed", bad.data, headers=bad.headers)
        app.observer.on_published(receipt.topic, receipt.partition, receipt.offset, bad.data, bad.headers)
        await t.drain()
        [dead] = await t.read(dead_letter_topic("orders.placed", "inventory"), 1)
        assert b"EventValidationError" in dead.headers[DLQ_REASON]
        assert dead.headers[DLQ_DELIVERIES] == b"1"
    assert called == []


async def test_middleware_first_registered_is_outermost():
    app = make_app()
    trace: list[str] = []

    def named(name: str):
        def middleware(handler):
            async def wrapped(event, ctx):
                trace.append(f"{name} in")
                try:
                    return await handler(event, ctx)
                finally:
                    trace.append(f"{name} out")

            return wrapped

        return middleware

    app.middleware(named("outer"))
    app.middleware(named("inner"))

    @app.subscribe(OrderPlaced)
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        trace.append("handler")

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.drain()
    assert trace == ["outer in", "inner in", "handler", "inner out", "outer out"]


@pytest.mark.parametrize(("concurrency", "expected"), [(1, 1), (3, 3)])
async def test_concurrency_limit(concurrency, expected):
    app = make_app()
    running = 0
    peak = 0
    reached = asyncio.Event()

    @app.subscribe(OrderPlaced, concurrency=concurrency, mode="shared")
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if peak >= expected:
            reached.set()
        await asyncio.wait_for(reached.wait(), 5)
        await asyncio.sleep(0)
        running -= 1

    async with TestApp(app) as t:
        for n in range(6):
            await t.publish(OrderPlaced(order_id=f"o-{n}"))
        await t.drain()
    assert peak == expected


async def test_partitioned_mode_keeps_per_partition_order_under_concurrency():
    app = make_app()
    order: list[int] = []

    @app.subscribe(OrderPlaced, concurrency=4)
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        await asyncio.sleep(0.001 * (5 - event.qty % 5))  # later events finish sooner if run at once
        order.append(event.qty)

    async with TestApp(app) as t:
        for n in range(10):
            await t.publish(OrderPlaced(order_id="o", qty=n), key="one-key")
        await t.drain()
    assert order == list(range(10))


async def test_request_reply_typed_round_trip_and_failure():
    app = make_app()

    @app.respond(ConfirmPayment)
    async def confirm(req: ConfirmPayment, ctx: tidings.Context) -> PaymentResult:
        if req.amount < 0:
            raise ValueError("negative amount")
        return PaymentResult(order_id=req.order_id, approved=req.amount < 100)

    async with TestApp(app):
        reply = await app.request(ConfirmPayment(order_id="o-1", amount=20), PaymentResult, timeout=5)
        assert reply == PaymentResult(order_id="o-1", approved=True)
        with pytest.raises(HandlerFailed, match="negative amount"):
            await app.request(ConfirmPayment(order_id="o-2", amount=-1), PaymentResult, timeout=5)


async def test_graceful_stop_waits_for_the_handler_in_flight():
    app = make_app()
    started = asyncio.Event()
    release = asyncio.Event()
    finished: list[str] = []

    @app.subscribe(OrderPlaced, retries=0, backoff=NoBackoff())
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        started.set()
        await release.wait()
        finished.append(event.order_id)

    t = TestApp(app)
    await t.__aenter__()
    await t.publish(OrderPlaced(order_id="o-1"))
    await asyncio.wait_for(started.wait(), 5)
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0.05)  # give stop() the chance to (wrongly) finish without the handler
    assert not stopping.done()
    release.set()
    await asyncio.wait_for(stopping, 10)
    assert finished == ["o-1"]
    assert t._outstanding == set()  # it was acked before the backend closed


async def test_app_needs_a_broker_url(monkeypatch):
    monkeypatch.delenv("TIDINGS_URL", raising=False)
    with pytest.raises(tidings.errors.InvalidArgument):
        tidings.App("x")
    monkeypatch.setenv("TIDINGS_URL", "memory://")
    assert tidings.App("x").broker_url == "memory://"


async def test_run_until_cancelled_then_stops():
    app = tidings.App("inventory", broker="memory://run-test")
    handled = asyncio.Event()

    @app.subscribe(OrderPlaced)
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        handled.set()

    running = asyncio.create_task(app.run())
    async with tidings.App("shop", broker="memory://run-test") as shop:
        while not app.specs or not app._runners:  # wait for run() to have subscribed
            await asyncio.sleep(0.001)
        await shop.publish(OrderPlaced(order_id="o-1"))
        await asyncio.wait_for(handled.wait(), 10)
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    assert app.state.value == "stopped"


class Unplanned(Event, topic="audit.unplanned"):
    note: str


async def test_the_app_announces_its_typed_events_to_the_flow_map():
    async with memory.shared("announce-test") as broker:
        app = tidings.App("inventory", broker="memory://announce-test", emits=[StockReserved])

        @app.subscribe(OrderPlaced, group="inventory")
        async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None: ...

        async with app:
            assert broker.server is not None
            topology = broker.server.core.topology
            service = topology.services["inventory"]
            assert set(service.event_types) == {("stock.reserved", "stock.reserved.v1")}
            schema = service.event_types["stock.reserved", "stock.reserved.v1"].schema_json
            assert '"order_id"' in schema
            assert [(h.topic, h.group, h.type) for h in service.handles.values()] == [
                ("orders.placed", "inventory", "orders.placed.v1")
            ]
            await app.publish(Unplanned(note="first of its type"))  # announced on its first publish
            for _ in range(200):
                if ("audit.unplanned", "audit.unplanned.v1") in service.event_types:
                    break
                await asyncio.sleep(0.01)
            assert ("audit.unplanned", "audit.unplanned.v1") in service.event_types
