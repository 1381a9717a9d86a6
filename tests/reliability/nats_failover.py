"""The shop on a three-node NATS JetStream cluster that loses nodes mid-stream (SIGKILL) and gets them back.

Streams have three replicas (``?replicas=3`` in the URL) and every node syncs each write
(``sync_interval: always``). Checkout keeps taking orders at a steady pace (payment by
request/reply over core NATS, ``OrderPlaced`` through its outbox). ``rounds`` times, the node
leading ``orders.placed`` is killed with SIGKILL; once publishing resumed on the survivors (and two
seconds more) it is started again. What the services saw is measured (the longest pause in stored
publishes and in handled events after each kill), and the outcome is checked in each service's own
database: every order payment approved is reserved, shipped and counted exactly once (the inbox
skips redeliveries), none lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from examples.shop import checkout, inventory, payment, recommendations, shipping
from examples.shop.run import make_order
from examples.shop.service import sqlite_url
from tidings.app.runner import Ack, Decision
from tidings.app.store.urls import async_url
from tidings.backends.base import Delivery
from tidings.backends.nats import NatsBackend, naming
from tidings.testing.cluster import start_nats_cluster

ORDERS_PER_ROUND = 120
KILL_AFTER = 30
"""Approved orders of a round placed before its kill."""
# Three replicas; pull requests renewed every 2 s so a consumer notices a dead node sooner.
OPTIONS = "replicas=3&sync_check=off&request_timeout=2&reconnect_timeout=60&pull_expires=2&heartbeat=0.5"


class Clock:
    """When the services published and handled: the gaps are the outage they saw."""

    def __init__(self) -> None:
        self.published: list[float] = []
        self.handled: dict[str, int] = {}
        self.handled_at: list[float] = []

    def on_published(self, topic: str, partition: int, offset: int, data: bytes, headers: dict) -> None:
        if topic == "orders.placed":
            self.published.append(time.monotonic())

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None:
        if isinstance(decision, Ack):
            self.handled[group] = self.handled.get(group, 0) + 1
            self.handled_at.append(time.monotonic())


RESUME_WITHIN = 90.0
"""Seconds after a kill by which checkout must store ``orders.placed`` again on the survivors."""


def _stalled(leader: str, killed_at: float, clock: Clock, placing: asyncio.Task[None]) -> str:
    """Why the run stopped waiting for publishing to resume: the placing task's fate and the last publish."""
    now = time.monotonic()
    last = f"{now - clock.published[-1]:.1f} s ago" if clock.published else "never"
    if not placing.done():
        fate = "still placing orders"
    elif placing.cancelled():
        fate = "placing was cancelled"
    else:
        fate = f"placing ended with {placing.exception()!r}"
    return (
        f"orders.placed not stored again {now - killed_at:.1f} s after killing {leader}: {fate};"
        f" last stored publish {last}; handled {clock.handled}"
    )


def longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest pause between two events in [start, end], counted from ``start``."""
    inside = sorted(t for t in times if start < t <= end)
    if not inside:
        return end - start
    points = [start, *inside]
    return max(b - a for a, b in itertools.pairwise(points))


async def _scalar(url: str, query: str) -> int:
    engine = create_async_engine(async_url(url))
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(sa.text(query))).scalar() or 0)
    finally:
        await engine.dispose()


async def run(rounds: int, workdir: Path) -> dict[str, Any]:
    cluster = await asyncio.to_thread(start_nats_cluster, workdir / "nats", 3)
    try:
        return await _run(cluster, rounds, workdir / "shop")
    finally:
        await asyncio.to_thread(cluster.close)


async def _run(cluster: Any, rounds: int, data: Path) -> dict[str, Any]:
    url = f"{cluster.url}?{OPTIONS}"
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
    kills: list[dict[str, Any]] = []
    async with contextlib.AsyncExitStack() as stack:
        for app in [*services, shop]:
            await stack.enter_async_context(app)
        numbers = itertools.count()

        async def place_orders(count: int) -> None:
            for _ in range(count):
                order = make_order("ha-", next(numbers))
                if await asyncio.wait_for(shop.place(order, timeout=20.0), 60):
                    approved.append(order.order_id)
                await asyncio.sleep(0.05)  # a steady stream, so it spans the outage

        for _ in range(rounds):
            before = len(approved)
            placing = asyncio.create_task(place_orders(ORDERS_PER_ROUND))
            while len(approved) < before + KILL_AFTER and not placing.done():
                await asyncio.sleep(0.01)
            backend = shop.backend
            assert isinstance(backend, NatsBackend)
            info = await backend.nc.jetstream().stream_info(naming.stream_name("orders.placed"))
            leader = info.cluster.leader if info.cluster else None
            assert leader is not None
            killed_at = time.monotonic()
            await asyncio.to_thread(cluster.kill, leader)
            while not any(t > killed_at + 1.0 for t in clock.published):  # resumed on the survivors
                failed = placing.done() and (placing.cancelled() or placing.exception() is not None)
                if failed or time.monotonic() > killed_at + RESUME_WITHIN:
                    raise AssertionError(_stalled(leader, killed_at, clock, placing))
                await asyncio.sleep(0.05)
            await asyncio.sleep(2.0)
            restarted_at = time.monotonic()
            await asyncio.to_thread(cluster.restart, leader)
            await asyncio.wait_for(placing, 180)
            kills.append(
                {"node": leader, "killed_at": killed_at, "restarted_after_s": restarted_at - killed_at}
            )
            await asyncio.to_thread(cluster.ready)
        deadline = time.monotonic() + 120
        groups = ("inventory", "shipping", "recommendations")
        while any(clock.handled.get(g, 0) < len(approved) for g in groups) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    ends = [k["killed_at"] for k in kills[1:]] + [time.monotonic()]
    publish_gaps = [
        longest_gap(clock.published, k["killed_at"], end) for k, end in zip(kills, ends, strict=True)
    ]
    handle_gaps = [
        longest_gap(clock.handled_at, k["killed_at"], end) for k, end in zip(kills, ends, strict=True)
    ]
    reserved = await _scalar(sqlite_url(data, "inventory"), "select count(*) from reservations")
    shipped = await _scalar(sqlite_url(data, "shipping"), "select count(*) from shipments")
    counted = await _scalar(sqlite_url(data, "recommendations"), "select sum(orders) from customer_skus")
    placed = await _scalar(sqlite_url(data, "checkout"), "select count(*) from orders where status='placed'")
    expected = len(approved)
    return {
        "kills": len(kills),
        "nodes_killed": [k["node"] for k in kills],
        "approved_orders": expected,
        "placed_in_checkout": placed,
        "lost": max(0, expected - min(reserved, shipped, counted)),
        "applied_twice": max(0, reserved - expected)
        + max(0, shipped - expected)
        + max(0, counted - expected),
        "max_publish_pause_s": round(max(publish_gaps), 2),
        "max_handle_pause_s": round(max(handle_gaps), 2),
        "publish_pauses_s": [round(g, 2) for g in publish_gaps],
        "handle_pauses_s": [round(g, 2) for g in handle_gaps],
    }
