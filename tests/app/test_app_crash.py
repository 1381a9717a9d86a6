"""Effectively once across a broker crash: outbox on the producing side, inbox on the consuming side.

checkout writes orders into its own database with the event in its outbox (one
transaction); inventory applies each order in its own database through
``ctx.db`` with the inbox mark (one transaction). The broker is killed with
SIGKILL mid-flow, checkout keeps taking orders while it is away, and the
broker comes back on the same port: every order is applied, none twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import tidings
from tidings.app import Event, NoBackoff, encode
from tidings.testing.servers import free_port, start_broker

pytestmark = pytest.mark.slow

ORDERS = 240


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str


async def place(checkout: tidings.App, number: int) -> None:
    """One order: the row and its event commit together (the outbox)."""
    assert checkout.store is not None
    order = OrderPlaced(order_id=f"o-{number}")
    async with checkout.store.transaction() as tx:
        await tx.session.execute(
            sa.text("INSERT INTO orders (order_id) VALUES (:id)"), {"id": order.order_id}
        )
        encoded = encode(order, source=checkout.name)
        await tx.enqueue("orders.placed", encoded.data, key=order.order_id, headers=encoded.headers)


def create_table(path: Path, ddl: str) -> None:
    """The service's own schema, made before the App opens its store (as a migration would)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute(ddl)
        db.commit()


async def test_no_order_lost_or_applied_twice_when_the_broker_is_killed_mid_flow(tmp_path):
    port = free_port()
    broker = start_broker(tmp_path / "run1", port=port, data=tmp_path / "data")
    url = broker.url
    checkout = tidings.App("checkout", broker=url, store=f"sqlite:///{tmp_path / 'checkout.db'}")
    inventory = tidings.App("inventory", broker=url, store=f"sqlite:///{tmp_path / 'inventory.db'}")

    @inventory.subscribe(OrderPlaced, group="inventory", start="earliest", retries=None, backoff=NoBackoff())
    async def apply(event: OrderPlaced, ctx: tidings.Context) -> None:
        # No unique key on purpose: a second application would be a second row.
        await ctx.db.execute(sa.text("INSERT INTO applied (order_id) VALUES (:id)"), {"id": event.order_id})

    create_table(tmp_path / "checkout.db", "CREATE TABLE orders (order_id TEXT)")
    create_table(tmp_path / "inventory.db", "CREATE TABLE applied (order_id TEXT)")
    try:
        await checkout.start()
        await inventory.start()
        for number in range(ORDERS // 3):
            await place(checkout, number)
        await asyncio.sleep(0.3)
        broker.kill()
        # The broker is away: checkout keeps taking orders into its own database and outbox.
        for number in range(ORDERS // 3, 2 * ORDERS // 3):
            await place(checkout, number)
        broker = await asyncio.to_thread(start_broker, tmp_path / "run2", port=port, data=tmp_path / "data")
        for number in range(2 * ORDERS // 3, ORDERS):
            await place(checkout, number)

        assert inventory.store is not None

        async def applied() -> list[tuple[str, int]]:
            async with inventory.store.transaction() as tx:
                result = await tx.session.execute(
                    sa.text("SELECT order_id, count(*) FROM applied GROUP BY order_id")
                )
                return [(row[0], row[1]) for row in result.all()]

        async def all_applied() -> list[tuple[str, int]]:
            while len(rows := await applied()) < ORDERS:
                await asyncio.sleep(0.1)
            return rows

        rows = await asyncio.wait_for(all_applied(), 60)
        await asyncio.sleep(0.5)  # anything applied twice would show up now
        rows = await applied()
    finally:
        await inventory.stop()
        await checkout.stop()
        broker.stop()
    assert {order_id for order_id, _ in rows} == {f"o-{n}" for n in range(ORDERS)}
    twice = [(order_id, count) for order_id, count in rows if count != 1]
    assert not twice, f"applied more than once: {twice[:5]}"
