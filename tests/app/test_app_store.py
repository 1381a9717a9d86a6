"""The App with a SQLite store: ctx.publish through the outbox, rollback on failure, the inbox."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

import tidings
from tests.app.test_app import ConfirmPayment, PaymentResult
from tidings.app import Event, NoBackoff, encode
from tidings.app.store.schema import inbox, outbox
from tidings.testing.app import TestApp


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str


class StockReserved(Event, topic="stock.reserved"):
    order_id: str


def make_app(tmp_path) -> tidings.App:
    return tidings.App("inventory", broker="memory://", store=f"sqlite:///{tmp_path / 'inventory.db'}")


async def rows(app: tidings.App, table: sa.Table) -> list[sa.Row]:
    assert app.store is not None
    async with app.store.transaction() as tx:
        return list((await tx.session.execute(sa.select(table))).all())


async def test_ctx_publish_goes_through_the_outbox_and_the_relay(tmp_path):
    app = make_app(tmp_path)

    @app.subscribe(OrderPlaced, group="inventory")
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        assert isinstance(ctx.db, AsyncSession)
        await ctx.publish(StockReserved(order_id=event.order_id), key=event.order_id)

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.drain()
        assert t.published(StockReserved) == [StockReserved(order_id="o-1")]
        [row] = await rows(app, outbox)
        assert row.topic == "stock.reserved" and row.published_at is not None and row.key == b"o-1"
        assert [(r.group, r.event_id) for r in await rows(app, inbox)] == [
            ("inventory", t.records[0].headers["ce_id"].decode())
        ]


async def test_a_failed_handler_rolls_back_its_outbox_row_and_inbox_mark(tmp_path):
    app = make_app(tmp_path)
    calls: list[int] = []

    @app.subscribe(OrderPlaced, group="inventory", retries=1, backoff=NoBackoff())
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        calls.append(ctx.delivery_count)
        await ctx.publish(StockReserved(order_id=f"{event.order_id}-try{ctx.delivery_count}"))
        if ctx.delivery_count == 1:
            raise RuntimeError("database hiccup")

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.drain()
        assert calls == [1, 2]  # the inbox mark of the failed try was rolled back: try 2 ran the handler
        assert t.published(StockReserved) == [StockReserved(order_id="o-1-try2")]
        assert len(await rows(app, outbox)) == 1
        assert len(await rows(app, inbox)) == 1


async def test_the_inbox_skips_a_redelivered_event(tmp_path):
    app = make_app(tmp_path)
    handled: list[str] = []

    @app.subscribe(OrderPlaced, group="inventory")
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        handled.append(ctx.event_id)

    async with TestApp(app) as t:
        once = encode(OrderPlaced(order_id="o-1"), source="shop")
        for _ in range(2):  # the same event (same ce_id) stored twice, as an outbox resend would
            await app._relay_publish("orders.placed", once.data, None, once.headers)
        await t.drain()
    assert handled == [once.id]


async def test_app_outbox_publishes_a_typed_event_when_the_callers_transaction_commits(tmp_path):
    app = make_app(tmp_path)
    async with TestApp(app) as t:
        assert app.store is not None
        async with app.store.transaction() as tx:
            row_id = await app.outbox(tx.session).publish(OrderPlaced(order_id="o-9"), key="o-9")
            assert row_id >= 1
        await t.drain()
        assert t.published(OrderPlaced) == [OrderPlaced(order_id="o-9")]
        # and a rolled-back transaction publishes nothing
        with contextlib.suppress(RuntimeError):
            async with app.store.transaction() as tx:
                await app.outbox(tx.session).publish(OrderPlaced(order_id="o-lost"))
                raise RuntimeError("rolled back")
        await t.drain()
        assert t.published(OrderPlaced) == [OrderPlaced(order_id="o-9")]


async def test_app_start_is_where_its_new_groups_begin(tmp_path):
    seen: list[str] = []
    app = tidings.App("late", broker="memory://start-test", start="earliest")

    @app.subscribe(OrderPlaced, group="late")
    async def note(event: OrderPlaced, ctx: tidings.Context) -> None:
        seen.append(event.order_id)

    assert app.specs[0].start == "earliest"
    async with tidings.App("early", broker="memory://start-test") as producer:
        await producer.publish(OrderPlaced(order_id="before"))
        async with app:

            async def got_it() -> None:
                while seen != ["before"]:
                    await asyncio.sleep(0.02)

            await asyncio.wait_for(got_it(), 10)


async def test_a_responder_runs_in_a_transaction_and_replies_after_the_commit(tmp_path):
    decisions = sa.Table(
        "decisions",
        sa.MetaData(),
        sa.Column("order_id", sa.String, primary_key=True),
        sa.Column("ok", sa.Boolean),
    )
    app = tidings.App("payment", broker="memory://", store=f"sqlite:///{tmp_path / 'payment.db'}")

    @app.respond(ConfirmPayment)
    async def confirm(request: ConfirmPayment, ctx: tidings.Context) -> PaymentResult:
        await ctx.db.run_sync(lambda session: decisions.create(session.connection(), checkfirst=True))
        await ctx.db.execute(sa.insert(decisions).values(order_id=request.order_id, ok=request.amount < 100))
        await ctx.publish(StockReserved(order_id=request.order_id))  # into the same transaction's outbox
        if request.amount < 0:
            raise ValueError("negative amount")
        return PaymentResult(order_id=request.order_id, approved=request.amount < 100)

    async with TestApp(app) as t:
        reply = await app.request(ConfirmPayment(order_id="o-1", amount=20), PaymentResult, timeout=5)
        assert reply == PaymentResult(order_id="o-1", approved=True)
        # the reply came after the commit: the row and the outbox row are there already
        assert [(r.order_id, r.ok) for r in await rows(app, decisions)] == [("o-1", True)]
        assert len(await rows(app, outbox)) == 1
        with pytest.raises(tidings.errors.HandlerFailed, match="negative amount"):
            await app.request(ConfirmPayment(order_id="o-2", amount=-1), PaymentResult, timeout=5)
        # the failed responder's writes and its outbox row rolled back
        assert [r.order_id for r in await rows(app, decisions)] == ["o-1"]
        await t.drain()
        assert t.published(StockReserved) == [StockReserved(order_id="o-1")]
