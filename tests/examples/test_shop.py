"""The shop example: the whole demo on memory://, and each service alone under TestApp."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys

import pytest
import sqlalchemy as sa
from rich.console import Console

from examples.shop import checkout, inventory, payment, recommendations, shipping
from examples.shop.events import ConfirmPayment, OrderPlaced, PaymentResult, ShipmentCreated, StockReserved
from examples.shop.monitor import p99
from examples.shop.run import make_order, run_shop
from examples.shop.service import ServiceApp
from tidings.errors import NoResponders
from tidings.testing.app import TestApp
from tidings.testing.servers import free_port


async def rows(app: ServiceApp, table: sa.Table) -> list[tuple]:
    assert app.store is not None
    async with app.store.transaction() as tx:
        return [tuple(row) for row in (await tx.session.execute(sa.select(table))).all()]


def order(
    number: int, *, sku: str = "tea", qty: int = 2, customer: str = "c1", total: int = 900
) -> OrderPlaced:
    return OrderPlaced(order_id=f"o{number}", customer=customer, sku=sku, qty=qty, total=total)


async def test_run_shop_end_to_end(tmp_path):
    out = io.StringIO()
    ok = await run_shop("memory://shop-test", tmp_path, orders=100, console=Console(file=out, width=200))
    assert ok, out.getvalue()
    assert "check ok" in out.getvalue()
    for service in ("checkout", "payment", "inventory", "shipping", "recommendations", "recommendations-v2"):
        assert (tmp_path / f"{service}.db").exists()


async def test_payment_approves_within_the_limit_and_rejects_over_it(tmp_path):
    app = payment.make_app("memory://", tmp_path)
    async with TestApp(app):
        ok = await app.request(ConfirmPayment(order_id="o1", amount=payment.LIMIT), PaymentResult)
        over = await app.request(ConfirmPayment(order_id="o2", amount=payment.LIMIT + 1), PaymentResult)
        again = await app.request(ConfirmPayment(order_id="o1", amount=payment.LIMIT), PaymentResult)
        assert (ok, over, again) == (
            PaymentResult(order_id="o1", approved=True),
            PaymentResult(order_id="o2", approved=False),
            PaymentResult(order_id="o1", approved=True),
        )
        assert sorted(await rows(app, payment.decisions)) == [
            ("o1", payment.LIMIT, True),
            ("o2", payment.LIMIT + 1, False),
        ]


async def test_inventory_reserves_and_publishes_stock_reserved(tmp_path):
    app = inventory.make_app("memory://", tmp_path)
    async with TestApp(app) as t:
        await t.publish(order(1, qty=2))
        await t.publish(order(2, qty=3))
        await t.drain()
        assert sorted(t.published(StockReserved), key=lambda e: e.order_id) == [
            StockReserved(order_id="o1", sku="tea", qty=2, remaining=inventory.INITIAL_STOCK - 2),
            StockReserved(order_id="o2", sku="tea", qty=3, remaining=inventory.INITIAL_STOCK - 5),
        ]
        assert await rows(app, inventory.stock) == [("tea", inventory.INITIAL_STOCK - 5)]
        assert sorted(await rows(app, inventory.reservations)) == [("o1", "tea", 2), ("o2", "tea", 3)]


async def test_shipping_creates_one_shipment_per_reserved_order(tmp_path):
    app = shipping.make_app("memory://", tmp_path)
    async with TestApp(app) as t:
        await t.publish(StockReserved(order_id="o1", sku="tea", qty=2, remaining=8))
        await t.drain()
        assert t.published(ShipmentCreated) == [ShipmentCreated(order_id="o1", shipment_id="ship-o1")]
        [row] = await rows(app, shipping.shipments)
        assert row[:4] == ("ship-o1", "o1", "tea", 2)


async def test_recommendations_counts_per_customer_and_sku(tmp_path):
    app = recommendations.make_app("memory://", tmp_path)
    async with TestApp(app) as t:
        await t.publish(order(1, qty=2))
        await t.publish(order(2, qty=1))
        await t.publish(order(3, sku="mug", qty=1, customer="c2"))
        await t.drain()
        assert sorted(await rows(app, recommendations.customer_skus)) == [
            ("c1", "tea", 3, 2),
            ("c2", "mug", 1, 1),
        ]


async def test_checkout_publishes_approved_orders_only(tmp_path):
    shop = checkout.make_app("memory://", tmp_path)
    cashier = payment.make_app("memory://", tmp_path)
    async with (
        TestApp(shop, broker="memory://checkout-test") as t,
        TestApp(cashier, broker="memory://checkout-test"),
    ):
        assert await shop.place(order(1)) is True
        assert await shop.place(order(2, total=payment.LIMIT + 1)) is False
        await t.drain()
        assert t.published(OrderPlaced) == [order(1)]
        statuses = {row[0]: row[-1] for row in await rows(shop, checkout.orders)}
        assert statuses == {"o1": "placed", "o2": "rejected"}


async def test_checkout_asks_payment_again_until_it_answers(tmp_path):
    """A request meets no responder (payment not started yet, or gone with a broker restart): checkout
    asks again within its timeout instead of failing the order."""
    shop = checkout.make_app("memory://", tmp_path)
    cashier = payment.make_app("memory://", tmp_path)
    async with TestApp(shop, broker="memory://checkout-retry"):
        placing = asyncio.create_task(shop.place(order(3), timeout=10.0))
        await asyncio.sleep(0.3)
        assert not placing.done()  # still asking
        async with TestApp(cashier, broker="memory://checkout-retry"):
            assert await asyncio.wait_for(placing, 10) is True
        with pytest.raises(NoResponders):  # and gives up once its time is spent
            await shop.place(order(4), timeout=0.3)


def test_orders_are_deterministic_and_some_exceed_the_limit():
    assert make_order("r-", 7) == make_order("r-", 7)
    totals = [make_order("r-", n).total for n in range(100)]
    assert any(total > payment.LIMIT for total in totals) and any(total <= payment.LIMIT for total in totals)


def test_p99():
    assert p99([]) is None
    assert p99([float(n) for n in range(1, 101)]) == 99.0
    assert p99([5.0]) == 5.0


def test_the_make_demo_command_runs_the_shop_on_a_real_broker(tmp_path):
    """What `make demo` runs, smaller: a broker process it starts, the shop on it, the replay check."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "examples.shop.run",
            "--start-broker",
            str(tmp_path / "broker"),
            "--port",
            str(free_port()),
            "--http-port",
            str(http_port := free_port()),
            "--data",
            str(tmp_path / "shop"),
            "--orders",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "check ok" in result.stdout
    assert f"dashboard: http://127.0.0.1:{http_port}/" in result.stdout
    assert (tmp_path / "broker" / "topics").is_dir()
