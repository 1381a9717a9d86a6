"""The shop example, unchanged, on NATS JetStream and on Redis Streams: only the URL differs.

What ``make demo BROKER=nats://...`` (or ``redis://...``) runs, smaller: every service of the shop
against a private server started for the test, the orders placed through request/reply and the
outbox, every group handling every order, and ``recommendations-v2`` replaying the history from
the server into the same table.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console

from examples.shop.run import run_shop
from tests.binaries import started
from tidings.testing.servers import start_nats, start_redis


@pytest.mark.parametrize("engine", ["nats", "redis"])
async def test_the_shop_runs_unchanged_on(engine: str, tmp_path: Path):
    directory = tmp_path / engine
    if engine == "nats":
        server = started(lambda: start_nats(directory, sync_always=True), f"the shop on {engine}")
    else:
        server = started(lambda: start_redis(directory, appendfsync="always"), f"the shop on {engine}")
    url = server.url
    out = io.StringIO()
    try:
        ok = await asyncio.wait_for(
            run_shop(url, tmp_path / "shop", orders=40, console=Console(file=out)), 150
        )
    finally:
        await asyncio.to_thread(server.stop)
    assert ok, out.getvalue()[-3000:]
    assert "check ok" in out.getvalue()
