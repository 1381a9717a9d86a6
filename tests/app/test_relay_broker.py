"""The outbox relay against a real Tidings broker that is killed (SIGKILL) and restarted mid-flow.

The service keeps committing transactions that enqueue events while the broker is gone; the relay
backs off and resends. What is guaranteed, and asserted: every outbox row ends up in the topic
(nothing lost), and per key the first copy of each event is in the order the service wrote them.
What is not guaranteed: a single copy. A publish that failed with ConnectionLost may still have
been stored (its ack was lost with the connection), and the relay's resend is a new publish, which
the broker's idempotent producer cannot recognise; so the topic may hold a few copies, all with the
same ce_id, and consumers dedupe them in their inbox. The test counts them and dedupes by ce_id.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

import pytest

import tidings
from tidings.app import Event, Exponential, encode
from tidings.app.store import OutboxRelay, RelayConfig
from tidings.testing.servers import free_port, start_broker

pytestmark = pytest.mark.slow


class StockReserved(Event, topic="stock.reserved"):
    order_id: str
    sku: str


async def test_no_event_lost_when_the_broker_is_killed_and_restarted(store, tmp_path):
    port = free_port()
    broker = start_broker(tmp_path / "run1", port=port, data=tmp_path / "data")
    written: list[tuple[bytes, str]] = []  # (key, ce_id) in commit order
    stop_writing = asyncio.Event()
    try:
        async with tidings.connect(url=broker.url, service="inventory", reconnect_timeout=0.5) as client:
            await client.admin.create_topic("stock.reserved", partitions=2)

            async def publish(topic: str, data: bytes, key: bytes | None, headers: dict[str, bytes]) -> None:
                await client.publish(topic, data, key=key, headers=headers)

            async def service() -> None:
                """The producing service: one transaction per event, whether the broker is there or not."""
                n = 0
                while not stop_writing.is_set():
                    sku = f"sku-{n % 7}"
                    encoded = encode(StockReserved(order_id=f"o-{n}", sku=sku), source="inventory")
                    async with store.transaction() as tx:
                        await tx.enqueue(encoded.topic or "", encoded.data, key=sku, headers=encoded.headers)
                    written.append((sku.encode(), encoded.id))
                    n += 1
                    await asyncio.sleep(0.005)

            config = RelayConfig(poll_interval=0.2, retry=Exponential(0.05, 0.5))
            async with OutboxRelay(store, publish, config) as relay:
                writing = asyncio.create_task(service())
                await asyncio.sleep(0.8)
                before_kill = len(written)
                broker.kill()
                await asyncio.sleep(0.8)  # the broker is gone; the service goes on committing
                broker = await asyncio.to_thread(
                    start_broker, tmp_path / "run2", port=port, data=tmp_path / "data"
                )
                await asyncio.sleep(0.8)
                stop_writing.set()
                await writing
                await relay.drain(30)
                failed_rounds = relay.failed_rounds

        published = await read_topic(
            broker.url, "stock.reserved", expect={event_id for _, event_id in written}
        )
    finally:
        broker.stop()

    assert before_kill > 20 and len(written) > before_kill + 20, "too little written around the kill"
    assert failed_rounds >= 1, "the relay never saw the broker down: the test proved nothing"
    ids = [event_id for _, event_id in published]
    assert set(ids) == {event_id for _, event_id in written}, "an outbox row never reached the topic"
    duplicates = len(ids) - len(set(ids))
    assert duplicates <= failed_rounds * 7, f"{duplicates} copies: more than one per key per failed round"
    first_seen: dict[bytes, list[str]] = collections.defaultdict(list)
    for key, event_id in published:
        if event_id not in first_seen[key]:
            first_seen[key].append(event_id)
    expected: dict[bytes, list[str]] = collections.defaultdict(list)
    for key, event_id in written:
        expected[key].append(event_id)
    assert first_seen == expected, "events of one key were reordered"


async def read_topic(url: str, topic: str, expect: set[str]) -> list[tuple[bytes, str]]:
    """Every record of ``topic`` in partition order as (key, ce_id), read until ``expect`` is all seen."""
    by_partition: dict[int, list[tuple[int, bytes, str]]] = collections.defaultdict(list)
    seen: set[str] = set()
    async with tidings.connect(url=url, service="checker") as client:
        subscription = await client.subscribe(topic, group="checker", start="earliest")

        async def consume() -> None:
            async for message in subscription:
                event_id = message.headers["ce_id"].decode()
                by_partition[message.partition].append((message.offset, message.key or b"", event_id))
                seen.add(event_id)
                await message.ack()

        task = asyncio.create_task(consume())
        try:
            async with asyncio.timeout(30):
                while not expect <= seen:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)  # and any copies behind them
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    records: list[tuple[bytes, str]] = []
    for partition in sorted(by_partition):
        records += [(key, event_id) for _, key, event_id in sorted(by_partition[partition])]
    return records
