"""checkout: places an order. Payment first (request/reply), then ``OrderPlaced`` through the outbox.

Why the two halves differ: confirming payment needs an answer now, so it is a request; announcing
the order must happen exactly when the order row commits, so the event goes into checkout's outbox
in the same transaction as the row and the relay publishes it after the commit. A rejected order
is kept (status "rejected") and announced to nobody.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import sqlalchemy as sa

from examples.shop.events import ConfirmPayment, OrderPlaced, PaymentResult
from examples.shop.service import ServiceApp
from tidings.errors import ConnectionLost, NoResponders, ResponderGone

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
        result = await self._confirm(order, timeout)
        assert self.store is not None
        async with self.store.transaction() as tx:
            status = "placed" if result.approved else "rejected"
            await tx.session.execute(sa.insert(orders).values(**_columns(order), status=status))
            if result.approved:
                await self.outbox(tx.session).publish(order, key=order.customer)
        return result.approved

    async def _confirm(self, order: OrderPlaced, timeout: float) -> PaymentResult:
        """Ask payment, asking again while the broker or payment is away, until ``timeout`` is spent.

        A request is not stored: one lost with a broker restart (``ConnectionLost``), one whose
        responder went (``ResponderGone``) or that met no responder yet is simply asked again.
        Payment decides once per order (its table is keyed by order id), so asking twice is safe.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.05
        while True:
            left = deadline - loop.time()
            try:
                return await self.request(
                    ConfirmPayment(order_id=order.order_id, amount=order.total),
                    PaymentResult,
                    timeout=max(left, 0.1),
                )
            except RETRYABLE:
                if loop.time() + pause >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)


RETRYABLE = (ConnectionLost, ResponderGone, NoResponders)
"""Failures of a request that say nothing about the order: ask again. A timeout is not among them:
the whole budget is spent then."""


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
