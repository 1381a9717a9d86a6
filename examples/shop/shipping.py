"""shipping: one shipment per order whose stock is reserved, announced with ``ShipmentCreated``.

Shipping follows ``StockReserved`` rather than ``OrderPlaced``: nothing ships before inventory set
it aside, and shipping needs to know nothing of inventory but its event. The shipment id is derived
from the order id, so the row and the event are the same whenever the order is handled.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from examples.shop.events import ShipmentCreated, StockReserved
from examples.shop.service import ServiceApp, from_env
from tidings.app import Context
from tidings.app.store.schema import UTCDateTime

__all__ = ["make_app", "service", "shipments", "tables"]

tables = sa.MetaData()
shipments = sa.Table(
    "shipments",
    tables,
    sa.Column("shipment_id", sa.String(80), primary_key=True),
    sa.Column("order_id", sa.String(64), nullable=False, unique=True),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


def make_app(broker: str, data_dir: Path, name: str = "shipping") -> ServiceApp:
    app = ServiceApp(name, broker=broker, data_dir=data_dir, tables=tables, emits=[ShipmentCreated])

    @app.subscribe(StockReserved, group=name, concurrency=4)
    async def ship(event: StockReserved, ctx: Context) -> None:
        shipment_id = f"ship-{event.order_id}"
        await ctx.db.execute(
            sa.insert(shipments).values(
                shipment_id=shipment_id,
                order_id=event.order_id,
                sku=event.sku,
                qty=event.qty,
                created_at=ctx.now(),  # the event's time on replay: a rebuilt table is the same table
            )
        )
        await ctx.publish(
            ShipmentCreated(order_id=event.order_id, shipment_id=shipment_id), key=event.order_id
        )

    return app


def service() -> ServiceApp:
    """For ``tidings run examples.shop.shipping:service``: broker and databases from the env."""
    return make_app(*from_env())
