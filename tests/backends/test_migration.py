"""``tidings migrate``: history copied from one backend to another, per partition in order, with its
keys, headers, ids and times, resumable; on real NATS and Redis servers."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.binaries import started
from tidings.backends import memory, open_backend
from tidings.backends.base import Backend, OutgoingMessage
from tidings.backends.migration import copy_topic, plan
from tidings.cli.main import app as cli
from tidings.testing.servers import start_broker, start_nats, start_redis

runner = CliRunner()


@pytest.fixture(params=["nats", "redis"])
def destination(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "nats":
        server = started(lambda: start_nats(tmp_path / "nats", sync_always=True), "migration to nats")
    else:
        server = started(lambda: start_redis(tmp_path / "redis", appendfsync="always"), "migration to redis")
    try:
        yield server.url
    finally:
        server.kill()


async def _history(source: Backend) -> None:
    """Two topics (one with three partitions) of keyed events with headers and old times."""
    await source.create_topic("orders.placed", partitions=3)
    await source.create_topic("orders.placed.dlq.billing", partitions=1)
    then = datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
    orders = [
        OutgoingMessage(
            f'{{"n": {i}}}'.encode(),
            key=f"customer-{i % 5}",
            headers={"ce_id": f"id-{i}", "trace": b"\x00\x01"},
            timestamp=then + timedelta(seconds=i),
        )
        for i in range(40)
    ]
    await source.publish_batch("orders.placed", orders)
    await source.publish("orders.placed.dlq.billing", b"poison", key="customer-1", msg_id="dead-1")


async def _read_all(backend: Backend, topic: str, count: int) -> dict[int, list[tuple]]:
    """``count`` events of ``topic`` by partition: (data, key, headers, msg_id, timestamp)."""
    by_partition: dict[int, list[tuple]] = defaultdict(list)
    subscription = await backend.subscribe(topic, group=f"check-{uuid.uuid4().hex[:6]}", start="earliest")
    try:
        for _ in range(count):
            d = await asyncio.wait_for(anext(subscription), 10)
            stamp = d.timestamp.replace(microsecond=d.timestamp.microsecond // 1000 * 1000)
            by_partition[d.partition].append((d.data, d.key, dict(d.headers), d.msg_id, stamp))
            await d.ack()
    finally:
        await subscription.close()
    return dict(by_partition)


async def test_migrate_copies_every_topic_in_order_with_keys_headers_and_times(destination: str):
    name = f"migrate-{uuid.uuid4().hex[:6]}"
    async with memory.shared(name):
        source = open_backend(f"memory://{name}", service="test")
        target = open_backend(destination, service="test")
        async with source, target:
            await _history(source)
            copies = [c for c in await plan(source) if c.topic.startswith("orders.")]
            assert {c.topic: c.partitions for c in copies} == {
                "orders.placed": 3,
                "orders.placed.dlq.billing": 1,
            }
            for copy in copies:
                await copy_topic(source, target, copy, batch_size=7)
            assert (await target.list_topics())["orders.placed"] == 3
            before = await _read_all(source, "orders.placed", 40)
            after = await _read_all(target, "orders.placed", 40)
            # the copy gives each event without an id a deterministic one (so a rerun stores it once)
            strip = {p: [(*e[:3], e[4]) for e in events] for p, events in after.items()}
            assert strip == {p: [(*e[:3], e[4]) for e in events] for p, events in before.items()}
            assert all(e[3].startswith("migrate:orders.placed:") for events in after.values() for e in events)
            [dead] = (await _read_all(target, "orders.placed.dlq.billing", 1))[0]
            assert dead[0] == b"poison" and dead[1] == b"customer-1" and dead[3] == "dead-1"

            # A second run finds the group's committed position at the head: nothing is copied twice.
            again = [c for c in await plan(source) if c.topic == "orders.placed"]
            await source.publish("orders.placed", b'{"n": 40}', key="customer-0")
            again[0].head = await source.topic_end_offsets("orders.placed")  # plan after the new event
            copied = await copy_topic(source, target, again[0])
            assert copied.copied == 1
            assert sum(len(v) for v in (await _read_all(target, "orders.placed", 41)).values()) == 41


def test_the_command_migrates_and_reports(destination: str, tmp_path: Path):
    """The CLI end to end, from a Tidings broker process: a one-line summary after the progress bar."""

    async def fill(url: str) -> None:
        backend = open_backend(url, service="test")
        async with backend:
            await backend.create_topic("shop.events", partitions=2)
            messages = [OutgoingMessage(b"e%d" % i, key=str(i)) for i in range(25)]
            await backend.publish_batch("shop.events", messages)

    broker = start_broker(tmp_path / "broker")
    try:
        asyncio.run(fill(broker.url))
        args = ["migrate", "--from", broker.url, "--to", destination, "--topic", "shop.events"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, (result.output, result.exception)
        assert "migrated 25 events in 1 topics" in result.output
        again = runner.invoke(cli, args)  # resumable: the second run finds nothing left to copy
        assert again.exit_code == 0 and "migrated 0 events in 1 topics" in again.output
    finally:
        broker.kill()
