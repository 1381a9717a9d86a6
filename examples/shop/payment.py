"""payment: answers ``ConfirmPayment`` by request/reply; approves any amount within ``LIMIT``.

Deterministic on purpose (no randomness, no clock): a test and a demo can say in advance which
orders are rejected. Each decision is also written to payment's own database (``ctx.db``: the
responder runs in a store transaction and the reply leaves after its commit), keyed by order, so
asking twice about one order records one decision (requests carry new ids each time, so the
inbox has nothing to deduplicate: the business key does it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import sqlalchemy as sa

from examples.shop.events import ConfirmPayment, PaymentResult
from examples.shop.service import ServiceApp, from_env
from tidings.app import Context

__all__ = ["LIMIT", "decisions", "make_app", "service", "tables"]

LIMIT: Final = 50_000
"""Cents: an order above 500.00 is rejected."""

tables = sa.MetaData()
decisions = sa.Table(
    "payment_decisions",
    tables,
    sa.Column("order_id", sa.String(64), primary_key=True),
    sa.Column("amount", sa.Integer, nullable=False),
    sa.Column("approved", sa.Boolean, nullable=False),
)


def approve(amount: int) -> bool:
    """The whole policy: positive and within the limit."""
    return 0 < amount <= LIMIT


def make_app(broker: str, data_dir: Path, name: str = "payment") -> ServiceApp:
    app = ServiceApp(name, broker=broker, data_dir=data_dir, tables=tables)

    @app.respond(ConfirmPayment, concurrency=8)
    async def confirm(request: ConfirmPayment, ctx: Context) -> PaymentResult:
        approved = approve(request.amount)
        where = decisions.c.order_id == request.order_id
        if (await ctx.db.execute(sa.select(decisions.c.order_id).where(where))).first() is None:
            await ctx.db.execute(
                sa.insert(decisions).values(
                    order_id=request.order_id, amount=request.amount, approved=approved
                )
            )
        return PaymentResult(order_id=request.order_id, approved=approved)

    return app


def service() -> ServiceApp:
    """For ``tidings run examples.shop.payment:service``: broker and databases from the env."""
    return make_app(*from_env())
