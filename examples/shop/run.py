"""The shop demo: every service in one process, ``orders`` orders, then a replay that must agree.

    .venv/bin/python -m examples.shop.run --broker tidings://127.0.0.1:7400 --orders 1000
    .venv/bin/python -m examples.shop.run --broker memory://shop        # no broker process needed
    .venv/bin/python -m examples.shop.run --start-broker .tidings       # what `make demo` runs

``run_shop`` starts payment, inventory, shipping and recommendations, then checkout; places the
orders through checkout (a few at once); shows live what each group handled; waits until every
group handled every order of the run; then starts ``recommendations-v2``, a new group reading
from ``earliest`` into a new database, and checks that its table equals ``recommendations``'.
The run's ids start with a fresh prefix, so a broker holding earlier runs still gives a clean check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final

import sqlalchemy as sa
from rich.console import Console
from rich.live import Live
from sqlalchemy.ext.asyncio import create_async_engine

from examples.shop import checkout, inventory, payment, recommendations, shipping
from examples.shop.events import OrderPlaced
from examples.shop.monitor import Monitor
from examples.shop.service import ServiceApp, sqlite_url
from tidings.app.store.urls import async_url
from tidings.errors import TidingsError
from tidings.testing import servers

__all__ = ["main", "make_order", "run_shop"]

PRICES: Final = {"tea": 450, "coffee": 1_200, "mug": 900, "kettle": 4_500, "espresso-machine": 24_000}
"""Cents. Three espresso machines exceed payment's limit: a few orders are rejected, deterministically."""
CONCURRENT_ORDERS: Final = 8
WAIT_SECONDS: Final = 120.0


def make_order(prefix: str, number: int) -> OrderPlaced:
    """Order ``number`` of a run: the same every run but for the prefix of its ids."""
    skus = list(PRICES)
    sku = skus[number * 7 % len(skus)]
    qty = 1 + number % 3
    return OrderPlaced(
        order_id=f"{prefix}o{number}",
        customer=f"{prefix}c{number % 50}",
        sku=sku,
        qty=qty,
        total=PRICES[sku] * qty,
    )


async def _place_all(shop: checkout.Checkout, prefix: str, orders: int) -> int:
    """Place every order, ``CONCURRENT_ORDERS`` at a time; how many payment approved."""
    numbers = iter(range(orders))
    approved = 0

    async def worker() -> None:
        nonlocal approved
        for number in numbers:
            ok = await shop.place(make_order(prefix, number))  # awaited first: `+=` would read a stale total
            approved += ok

    await asyncio.gather(*(worker() for _ in range(CONCURRENT_ORDERS)))
    return approved


async def _wait(monitor: Monitor, expected: dict[str, int], live: Live) -> bool:
    """Refresh the table until every group handled its expected count; False after ``WAIT_SECONDS``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while loop.time() < deadline:
        live.update(monitor.table(expected))
        if all(monitor.handled[group] >= total for group, total in expected.items()):
            return True
        await asyncio.sleep(0.1)
    return False


async def _recommendation_rows(store_url: str, prefix: str) -> list[tuple[object, ...]]:
    """The run's rows of a recommendations database, in key order."""
    table = recommendations.customer_skus
    engine = create_async_engine(async_url(store_url))
    try:
        async with engine.connect() as conn:
            query = (
                sa.select(table)
                .where(table.c.customer.startswith(prefix))
                .order_by(table.c.customer, table.c.sku)
            )
            return [tuple(row) for row in (await conn.execute(query)).all()]
    finally:
        await engine.dispose()


async def run_shop(
    broker_url: str, data_dir: Path, orders: int = 1000, console: Console | None = None
) -> bool:
    """Run the whole shop once on ``broker_url``, databases in ``data_dir``; True if every check holds."""
    out = console or Console()
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"r{uuid.uuid4().hex[:8]}-"
    monitor = Monitor(prefix)
    services: list[ServiceApp] = [
        payment.make_app(broker_url, data_dir),
        inventory.make_app(broker_url, data_dir),
        shipping.make_app(broker_url, data_dir),
        recommendations.make_app(broker_url, data_dir),
    ]
    shop = checkout.make_app(broker_url, data_dir)
    # A group of its own per run: on a broker that kept earlier runs, "earliest" applies to new groups only.
    replay_group = f"recommendations-v2.{prefix.rstrip('-')}"
    replica = recommendations.make_app(
        broker_url, data_dir, name="recommendations-v2", start="earliest", group=replay_group
    )
    for app in [*services, shop, replica]:
        app.observer = monitor
    services[0].middleware(monitor.responder("payment"))
    out.print(f"shop on {broker_url}, databases in {data_dir}/, {orders:,} orders (ids {prefix}*)")
    async with contextlib.AsyncExitStack() as stack:
        for app in [*services, shop]:
            await stack.enter_async_context(app)
        expected = {"payment": orders}
        with Live(monitor.table(expected), console=out, refresh_per_second=8) as live:
            placing = asyncio.ensure_future(_place_all(shop, prefix, orders))
            while not placing.done():
                live.update(monitor.table(expected))
                await asyncio.wait({placing}, timeout=0.1)
            try:
                approved = placing.result()
            except TidingsError as exc:  # payment unreachable, broker gone: say so, fail the check
                out.print(f"[red]check failed[/red]: placing orders failed: {exc}", soft_wrap=True)
                return False
            expected |= {"inventory": approved, "shipping": approved, "recommendations": approved}
            all_handled = await _wait(monitor, expected, live)
            if all_handled:
                # A service that did not exist while the orders were placed: it replays the whole log.
                await stack.enter_async_context(replica)
                expected[replay_group] = approved
                all_handled = await _wait(monitor, expected, live)
    out.line()  # rich leaves the last frame's line open when the output is not a terminal
    assert replica.store_url is not None
    first = await _recommendation_rows(sqlite_url(data_dir, "recommendations"), prefix)
    rebuilt = await _recommendation_rows(replica.store_url, prefix)
    same = bool(first) == (approved > 0) and first == rebuilt
    rejected = orders - approved
    if all_handled and same:
        out.print(
            f"[green]check ok[/green]: {approved:,} orders placed ({rejected} rejected by payment), "
            f"handled by inventory, shipping and recommendations; recommendations-v2 replayed the "
            f"log into the same {len(first)} rows",
            soft_wrap=True,
        )
        return True
    missing = {g: t - monitor.handled[g] for g, t in expected.items() if monitor.handled[g] < t}
    out.print(
        f"[red]check failed[/red]: not handled {missing}; recommendations tables equal: {same}",
        soft_wrap=True,
    )
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m examples.shop.run``: the exit code is 0 when the check holds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--broker", default="memory://shop", help="tidings://HOST:PORT or memory://NAME")
    parser.add_argument(
        "--data", type=Path, default=None, help="databases directory (default: a new temp dir)"
    )
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument(
        "--start-broker",
        metavar="DATA_DIR",
        type=Path,
        default=None,
        help="start a Tidings broker (127.0.0.1:--port, data in DATA_DIR) for the run, and use it",
    )
    parser.add_argument("--port", type=int, default=7400, help="port of the broker --start-broker starts")
    parser.add_argument(
        "--http-port", type=int, default=7401, help="its HTTP port: the dashboard, API and metrics"
    )
    parser.add_argument(
        "--linger",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="keep the started broker (and its dashboard) up this long after the check",
    )
    args = parser.parse_args(argv)
    data = args.data or Path(tempfile.mkdtemp(prefix="tidings-shop-"))
    broker = None
    if args.start_broker is not None:
        directory = args.start_broker.resolve()
        console = Console()
        console.print(f"starting the broker on 127.0.0.1:{args.port}, data in {args.start_broker}/ ...")
        broker = servers.start_broker(directory, port=args.port, data=directory, http_port=args.http_port)
        args.broker = broker.url
        console.print(f"dashboard: {broker.http_url}/ (the flow map, lag, dead letters, live)")
    try:
        ok = asyncio.run(run_shop(args.broker, data, args.orders))
        if broker is not None and args.linger > 0:
            Console().print(f"the broker stays up {args.linger:g} s: {broker.http_url}/ (Ctrl-C ends it)")
            with contextlib.suppress(KeyboardInterrupt):
                time.sleep(args.linger)
        return 0 if ok else 1
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    sys.exit(main())
