"""recommendations: how many of each sku every customer bought, the table "customers also bought" reads.

A pure function of the ``orders.placed`` history (no clock, no other service), which is the point:
a new version (``recommendations-v2``, a new group starting at ``earliest`` with a new database)
rebuilds the very same table by replaying the log, and ``run_shop`` checks that it does.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from examples.shop.events import OrderPlaced
from examples.shop.service import ServiceApp, from_env
from tidings.app import Context
from tidings.backends.base import StartPosition

__all__ = ["customer_skus", "make_app", "service", "tables"]

tables = sa.MetaData()
customer_skus = sa.Table(
    "customer_skus",
    tables,
    sa.Column("customer", sa.String(64), primary_key=True),
    sa.Column("sku", sa.String(64), primary_key=True),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("orders", sa.Integer, nullable=False),
)


def make_app(
    broker: str,
    data_dir: Path,
    name: str = "recommendations",
    start: StartPosition = "latest",
    group: str | None = None,
) -> ServiceApp:
    """``name`` names the database and (unless ``group`` is given) the group: a new group rereads the log."""
    app = ServiceApp(name, broker=broker, data_dir=data_dir, tables=tables)

    @app.subscribe(OrderPlaced, group=group or name, start=start, concurrency=4)
    async def count(event: OrderPlaced, ctx: Context) -> None:
        row = (customer_skus.c.customer == event.customer) & (customer_skus.c.sku == event.sku)
        found = (await ctx.db.execute(sa.select(customer_skus.c.qty).where(row))).first()
        if found is None:
            values = {"customer": event.customer, "sku": event.sku, "qty": event.qty, "orders": 1}
            await ctx.db.execute(sa.insert(customer_skus).values(**values))
        else:
            await ctx.db.execute(
                sa.update(customer_skus)
                .where(row)
                .values(qty=customer_skus.c.qty + event.qty, orders=customer_skus.c.orders + 1)
            )

    return app


def service() -> ServiceApp:
    """For ``tidings run examples.shop.recommendations:service``: broker and databases from the env."""
    return make_app(*from_env())
