"""``tidings demo``: start a broker, publish a stream of orders, and watch two services consume them.

The first thing ``make demo`` shows on a fresh machine: a durable broker on
127.0.0.1:7400 with its data in ./.tidings, a producer that knows nobody,
and two consumer groups (``inventory`` and ``shipping``) that each receive
every order, plus a late third group (``audit``) that joins after the
stream ended and still reads it all from the log. It exits 0 with a final
check line when every group has every order, and non-zero otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

import tidings
from tidings.testing import servers

out = Console()


async def _consume(
    client: tidings.Client, topic: str, group: str, expected: set[str], seen: Counter[str]
) -> None:
    sub = await client.subscribe(topic, group=group, start="earliest")
    got: set[str] = set()
    async for message in sub:
        got.add(message.json()["order_id"])
        seen[group] += 1
        await message.ack()
        if expected <= got:
            break
    await sub.close()


def _summary(seen: Counter[str], total: int, published: int, started: float) -> Table:
    table = Table("group", "received", "of", title=f"orders.placed: {published:,} published")
    for group in ("inventory", "shipping", "audit"):
        table.add_row(group, f"{seen[group]:,}", f"{total:,}")
    elapsed = time.perf_counter() - started
    table.caption = f"{elapsed:.2f} s since the first order"
    return table


async def _run(url: str, orders: int) -> bool:
    topic = f"orders.placed.demo{int(time.time())}"
    ids = {f"order-{number}" for number in range(orders)}
    seen: Counter[str] = Counter()
    published = 0
    started = time.perf_counter()
    async with tidings.connect(url=url, service="demo") as client:
        consumers = [
            asyncio.ensure_future(_consume(client, topic, group, ids, seen))
            for group in ("inventory", "shipping")
        ]
        with Live(_summary(seen, orders, published, started), console=out, refresh_per_second=8) as live:
            for start in range(0, orders, 100):
                chunk = range(start, min(orders, start + 100))
                await asyncio.gather(
                    *(
                        client.publish(
                            topic,
                            {"order_id": f"order-{n}", "sku": f"sku-{n % 7}", "qty": 1 + n % 3},
                            key=f"customer-{n % 50}".encode(),
                        )
                        for n in chunk
                    )
                )
                published += len(chunk)
                live.update(_summary(seen, orders, published, started))
            await asyncio.wait_for(asyncio.gather(*consumers), 60)
            live.update(_summary(seen, orders, published, started))
            # A service that did not exist while the orders were placed still gets all of them.
            await asyncio.wait_for(_consume(client, topic, "audit", ids, seen), 60)
            live.update(_summary(seen, orders, published, started))
    return all(seen[group] >= orders for group in ("inventory", "shipping", "audit"))


def demo(
    orders: Annotated[int, typer.Option(help="How many orders to place.")] = 1000,
    broker: Annotated[
        str | None, typer.Option(help="Use this broker instead of starting one (tidings://HOST:PORT).")
    ] = None,
    data: Annotated[Path, typer.Option(help="Data directory of the broker the demo starts.")] = Path(
        ".tidings"
    ),
    port: Annotated[int, typer.Option(help="Port of the broker the demo starts.")] = 7400,
) -> None:
    """Start a broker, place orders, and show two services (and a late third) receiving every one."""
    server = None
    if broker is None:
        out.print(f"starting the broker on 127.0.0.1:{port}, data in {data}/ ...")
        server = servers.start_broker(data.resolve(), port=port, data=data.resolve())
        broker = server.url
    try:
        ok = asyncio.run(_run(broker, orders))
    finally:
        if server is not None:
            with contextlib.suppress(Exception):
                server.stop()
    if not ok:
        out.print("[red]check failed[/red]: a group did not receive every order")
        raise typer.Exit(1)
    groups = "inventory, shipping and the late audit group"
    out.print(f"[green]check ok[/green]: {groups} each received all {orders:,} orders", soft_wrap=True)
