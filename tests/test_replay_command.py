"""``tidings replay``: rebuild a service by replaying a topic into a new (or reset) group."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from examples.shop.events import OrderPlaced
from tidings.app import App, Context
from tidings.cli.replay_command import parse_start, replay
from tidings.errors import InvalidArgument
from tidings.testing.servers import start_broker

ROOT = Path(__file__).resolve().parent.parent
TIDINGS = Path(sys.executable).parent / "tidings"


def order(i: int) -> OrderPlaced:
    return OrderPlaced(order_id=f"o{i}", customer=f"c{i % 3}", sku="sku-1", qty=1, total=100)


def counting_app(url: str, seen: list[str]) -> App:
    app = App("counter", broker=url)

    @app.subscribe(OrderPlaced, group="counter", start="latest", concurrency=2)
    async def count(event: OrderPlaced, ctx: Context) -> None:
        seen.append(event.order_id)

    return app


async def test_replay_handles_every_event_in_the_topic_then_stops():
    url = "memory://replay-basic"
    async with App("publisher", broker=url) as publisher:
        for i in range(25):
            await publisher.publish(order(i), key=f"k{i % 4}")
        seen: list[str] = []
        calls: list[tuple[int, int]] = []
        app = counting_app(url, seen)
        done = await asyncio.wait_for(
            replay(
                app, "counter-v2", "orders.placed", "earliest", progress=lambda d, t: calls.append((d, t))
            ),
            20,
        )
        assert done == 25
        assert sorted(seen) == sorted(f"o{i}" for i in range(25))
        assert calls[-1] == (25, 25)
        assert app.specs[0].group == "counter-v2"


async def test_replay_moves_an_existing_group_back_to_the_start():
    url = "memory://replay-reset"
    async with App("publisher", broker=url) as publisher:
        for i in range(10):
            await publisher.publish(order(i))
        first: list[str] = []
        assert (
            await asyncio.wait_for(replay(counting_app(url, first), "g", "orders.placed", "earliest"), 20)
            == 10
        )
        again: list[str] = []
        assert (
            await asyncio.wait_for(replay(counting_app(url, again), "g", "orders.placed", "earliest"), 20)
            == 10
        )
        assert sorted(again) == sorted(first)


async def test_replay_of_an_empty_topic_stops_at_once():
    url = "memory://replay-empty"
    async with App("publisher", broker=url) as publisher:
        await publisher.backend.create_topic("orders.placed")  # type: ignore[attr-defined]
        assert (
            await asyncio.wait_for(replay(counting_app(url, []), "g", "orders.placed", "earliest"), 20) == 0
        )


async def test_replay_refuses_a_topic_the_app_does_not_read():
    with pytest.raises(InvalidArgument, match="subscribes to nothing on 'nope'"):
        await replay(counting_app("memory://replay-refuse", []), "g", "nope", "earliest")


def test_parse_start():
    assert parse_start("earliest") == "earliest"
    assert parse_start("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(InvalidArgument, match="ISO-8601"):
        parse_start("yesterday")


def test_the_command_rebuilds_recommendations_from_a_real_broker(tmp_path):
    server = start_broker(tmp_path / "broker")
    try:

        async def publish() -> None:
            async with App("checkout", broker=server.url) as publisher:
                for i in range(30):
                    await publisher.publish(order(i), key=f"c{i % 3}")

        asyncio.run(publish())
        data = tmp_path / "shop"
        data.mkdir()
        env = {**os.environ, "SHOP_DATA": str(data), "NO_COLOR": "1"}
        command = [str(TIDINGS), "replay", "examples.shop.recommendations:service", "--group", "recs-v2"]
        command += ["--topic", "orders.placed", "--from", "earliest", "--broker", server.url]
        result = subprocess.run(
            command, cwd=ROOT, env=env, check=False, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        assert "replayed 30 event(s) of orders.placed into recs-v2" in result.stderr
        with sqlite3.connect(data / "recommendations.db") as db:
            assert db.execute("select sum(qty), sum(orders) from customer_skus").fetchone() == (30, 30)

        bad = subprocess.run(
            [*command[:6], "nope", *command[7:]],
            cwd=ROOT,
            env=env,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode == 1
        assert bad.stderr.strip().splitlines() == [
            "error: app recommendations subscribes to nothing on 'nope' (its topics: ['orders.placed'])"
        ]
    finally:
        server.stop()


async def test_replay_from_a_time_handles_only_what_came_after_it():
    url = "memory://replay-time"
    async with App("publisher", broker=url) as publisher:
        for i in range(5):
            await publisher.publish(order(i))
        await asyncio.sleep(0.05)
        since = datetime.now(UTC)
        await asyncio.sleep(0.05)
        for i in range(5, 12):
            await publisher.publish(order(i))
        seen: list[str] = []
        calls: list[tuple[int, int]] = []
        done = await asyncio.wait_for(
            replay(
                counting_app(url, seen),
                "g",
                "orders.placed",
                since,
                progress=lambda d, t: calls.append((d, t)),
            ),
            20,
        )
        assert done == 7 and sorted(seen) == sorted(f"o{i}" for i in range(5, 12))
        assert calls[-1] == (7, 7)


async def test_live_replay_keeps_handling_new_events_until_stopped():
    url = "memory://replay-live"
    async with App("publisher", broker=url) as publisher:
        for i in range(4):
            await publisher.publish(order(i))
        seen: list[str] = []
        stop = asyncio.Event()
        running = asyncio.create_task(
            replay(counting_app(url, seen), "g", "orders.placed", "earliest", until_head=False, stop=stop)
        )
        for _ in range(200):
            if len(seen) == 4:
                break
            await asyncio.sleep(0.02)
        for i in range(4, 7):
            await publisher.publish(order(i))
        for _ in range(200):
            if len(seen) == 7:
                break
            await asyncio.sleep(0.02)
        assert not running.done()
        stop.set()
        assert await asyncio.wait_for(running, 20) == 7
