"""inventory: reserves stock for every placed order, then says so with ``StockReserved``.

Stock starts at ``INITIAL_STOCK`` per sku (a sku seen for the first time is stocked then) and may
go negative: a back order is still reserved, and shipping decides nothing about stock. The
reservation, the stock change and the ``StockReserved`` outbox row commit in one transaction with
the inbox mark, so a redelivered order changes nothing twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import sqlalchemy as sa

from examples.shop.events import OrderPlaced, StockReserved
from examples.shop.service import ServiceApp, from_env
from tidings.app import Context

__all__ = ["INITIAL_STOCK", "make_app", "reservations", "service", "stock", "tables"]

INITIAL_STOCK: Final = 1_000_000

tables = sa.MetaData()
stock = sa.Table(
    "stock",
    tables,
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("on_hand", sa.Integer, nullable=False),
)
reservations = sa.Table(
    "reservations",
    tables,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
)


def make_app(broker: str, data_dir: Path, name: str = "inventory") -> ServiceApp:
    app = ServiceApp(name, broker=broker, data_dir=data_dir, tables=tables, emits=[StockReserved])

    @app.subscribe(OrderPlaced, group=name, concurrency=4)
    async def reserve(event: OrderPlaced, ctx: Context) -> None:
        db = ctx.db
        on_hand = (await db.execute(sa.select(stock.c.on_hand).where(stock.c.sku == event.sku))).scalar()
        if on_hand is None:
            on_hand = INITIAL_STOCK
            await db.execute(sa.insert(stock).values(sku=event.sku, on_hand=on_hand))
        remaining = on_hand - event.qty
        await db.execute(sa.update(stock).where(stock.c.sku == event.sku).values(on_hand=remaining))
        await db.execute(
            sa.insert(reservations).values(order_id=event.order_id, sku=event.sku, qty=event.qty)
        )
        reserved = StockReserved(order_id=event.order_id, sku=event.sku, qty=event.qty, remaining=remaining)
        await ctx.publish(reserved, key=event.order_id)

    return app


def service() -> ServiceApp:
    """For ``tidings run examples.shop.inventory:service``: broker and databases from the env."""
    return make_app(*from_env())
