"""The shop on a three-node NATS JetStream cluster that loses a node mid-stream (SIGKILL) and gets it back.

Streams have three replicas (``?replicas=3`` in the URL) and every node syncs each write
(``sync_interval: always``). Checkout keeps taking orders (payment by request/reply over core
NATS, ``OrderPlaced`` through its outbox); while they flow, the node leading ``orders.placed`` is
killed with SIGKILL, and later started again. The test measures what the services saw (the longest
gap between two stored publishes, and between two handled events) and checks the outcome in each
service's own database: every order payment approved is reserved, shipped and counted exactly once
(the inbox skips redeliveries), none is lost. The figures are printed for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from examples.shop import checkout, inventory, payment, recommendations, shipping
from examples.shop.run import make_order
from examples.shop.service import sqlite_url
from tidings.app.runner import Ack, Decision
from tidings.app.store.urls import async_url
from tidings.backends.base import Delivery
from tidings.backends.nats import naming
from tidings.testing.cluster import NatsCluster, start_nats_cluster
from tidings.testing.servers import MissingBinary

ORDERS = 160
KILL_AFTER = 40


class Clock:
    """When the services published and handled: the gaps are the outage they saw."""

    def __init__(self) -> None:
        self.published: list[float] = []
        self.handled: dict[str, set[str]] = {}
        self.handled_at: list[float] = []

    def on_published(self, topic: str, partition: int, offset: int, data: bytes, headers: dict) -> None:
        if topic == "orders.placed":
            self.published.append(time.monotonic())

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None:
        if isinstance(decision, Ack):
            self.handled.setdefault(group, set()).add(f"{delivery.topic}@{delivery.offset}")
            self.handled_at.append(time.monotonic())


def longest_gap(times: list[float], around: float) -> float:
    """The longest pause between two events that spans ``around`` (or starts at it)."""
    ordered = sorted(times)
    before = [t for t in ordered if t <= around]
    after = [t for t in ordered if t > around]
    if not after:
        return float("inf")
    start = before[-1] if before else around
    points = [start, *after]
    return max(b - a for a, b in itertools.pairwise(points))


async def scalar(url: str, query: str) -> int:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(sa.text(query))).scalar() or 0)
    finally:
        await engine.dispose()


@pytest.fixture
async def cluster(tmp_path: Path):
    try:
        started = await asyncio.to_thread(start_nats_cluster, tmp_path / "nats", 3)
    except MissingBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nats-server is required under CI=true: {exc}")
        pytest.skip(f"!!! the shop on a NATS cluster NOT RUN: {exc} !!!")
    try:
        yield started
    finally:
        await asyncio.to_thread(started.close)


@pytest.mark.slow
async def test_the_shop_survives_losing_a_nats_node(cluster: NatsCluster, tmp_path: Path):
    # Three replicas; pull requests renewed every 2 s so a consumer notices a dead node sooner.
    options = "replicas=3&sync_check=off&request_timeout=2&reconnect_timeout=60&pull_expires=2&heartbeat=0.5"
    url = f"{cluster.url}?{options}"
    data = tmp_path / "shop"
    clock = Clock()
    services = [
        payment.make_app(url, data),
        inventory.make_app(url, data),
        shipping.make_app(url, data),
        recommendations.make_app(url, data),
    ]
    shop = checkout.make_app(url, data)
    for app in [*services, shop]:
        app.observer = clock
    approved: list[str] = []
    killed_at = restarted_at = 0.0
    leader = ""
    async with contextlib.AsyncExitStack() as stack:
        for app in [*services, shop]:
            await stack.enter_async_context(app)

        async def place_orders() -> None:
            for number in range(ORDERS):
                order = make_order("ha-", number)
                if await asyncio.wait_for(shop.place(order, timeout=20.0), 60):
                    approved.append(order.order_id)
                await asyncio.sleep(0.05)  # a steady stream, so it spans the outage

        placing = asyncio.create_task(place_orders())
        while len(approved) < KILL_AFTER:
            await asyncio.sleep(0.01)
        info = await shop.backend.nc.jetstream().stream_info(  # type: ignore[attr-defined]
            naming.stream_name("orders.placed")
        )
        leader = info.cluster.leader
        killed_at = time.monotonic()
        await asyncio.to_thread(cluster.kill, leader)
        while not any(t > killed_at + 1.0 for t in clock.published):  # resumed on the survivors
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)
        restarted_at = time.monotonic()
        await asyncio.to_thread(cluster.restart, leader)
        await asyncio.wait_for(placing, 120)
        deadline = time.monotonic() + 90
        groups = ("inventory", "shipping", "recommendations")
        while any(len(clock.handled.get(g, ())) < len(approved) for g in groups):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"not every order handled: { {g: len(clock.handled.get(g, ())) for g in groups} }"
                )
            await asyncio.sleep(0.1)

    published_gap = longest_gap(clock.published, killed_at)
    handled_gap = longest_gap(clock.handled_at, killed_at)
    print(
        f"\nNATS node {leader} (leader of orders.placed) SIGKILLed after {KILL_AFTER} approved orders, "
        f"restarted {restarted_at - killed_at:.1f} s later; {len(approved)} orders approved of {ORDERS}; "
        f"longest pause in stored publishes {published_gap:.2f} s, in handled events {handled_gap:.2f} s"
    )
    assert published_gap < 20.0 and handled_gap < 20.0

    # Exactly once, in each service's own database: one row per approved order, sums that would
    # grow with any event applied twice.
    assert await scalar(sqlite_url(data, "inventory"), "select count(*) from reservations") == len(approved)
    assert await scalar(sqlite_url(data, "shipping"), "select count(*) from shipments") == len(approved)
    counted = await scalar(sqlite_url(data, "recommendations"), "select sum(orders) from customer_skus")
    assert counted == len(approved)
    placed = await scalar(sqlite_url(data, "checkout"), "select count(*) from orders where status='placed'")
    assert placed == len(approved)
