"""checkout: places an order. Payment first (request/reply), then ``OrderPlaced`` through the outbox.

Why the two halves differ: confirming payment needs an answer now, so it is a request; announcing
the order must happen exactly when the order row commits, so the event goes into checkout's outbox
in the same transaction as the row and the relay publishes it after the commit. A rejected order
is kept (status "rejected") and announced to nobody.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from examples.shop.events import ConfirmPayment, OrderPlaced, PaymentResult
from examples.shop.service import ServiceApp

__all__ = ["Checkout", "make_app", "orders", "tables"]

tables = sa.MetaData()
orders = sa.Table(
    "orders",
    tables,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("customer", sa.String(64), nullable=False),
    sa.Column("sku", sa.String(64), nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
)


class Checkout(ServiceApp):
    """The checkout service: an App with no subscriptions and one operation, ``place``."""

    async def place(self, order: OrderPlaced, *, timeout: float = 10.0) -> bool:
        """Confirm payment, then record the order and its ``OrderPlaced``; whether payment approved it."""
        result = await self.request(
            ConfirmPayment(order_id=order.order_id, amount=order.total), PaymentResult, timeout=timeout
        )
        assert self.store is not None
        async with self.store.transaction() as tx:
            status = "placed" if result.approved else "rejected"
            await tx.session.execute(sa.insert(orders).values(**_columns(order), status=status))
            if result.approved:
                await self.outbox(tx.session).publish(order, key=order.customer)
        return result.approved


def _columns(order: OrderPlaced) -> dict[str, object]:
    return {
        "order_id": order.order_id,
        "customer": order.customer,
        "sku": order.sku,
        "qty": order.qty,
        "total": order.total,
    }


def make_app(broker: str, data_dir: Path, name: str = "checkout") -> Checkout:
    return Checkout(name, broker=broker, data_dir=data_dir, tables=tables, emits=[OrderPlaced])
