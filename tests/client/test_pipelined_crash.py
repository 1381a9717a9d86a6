"""kill -9 the broker with several Produces in flight per partition: each record stored once, in order.

The SDK keeps up to five Produces in flight per partition and, after a
reconnect, sends them again in order under the same producer id and
sequences. Against a real broker restarted on the same data directory, every
published record must then be in the log exactly once, in publish order.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

import tidings
from tidings.client import ReconnectPolicy
from tidings.testing.servers import free_port, start_broker

pytestmark = pytest.mark.slow

CHUNK = 60
RECORD = 1000  # with 8 KiB batches: eight batches per chunk, five of them in flight


async def read_all(url: str, topic: str, count: int) -> list[bytes]:
    async with tidings.connect(url=url, service="reader") as reader:
        subscription = await reader.subscribe(topic, group="check", start="earliest", prefetch=1000)
        seen: list[bytes] = []
        async with asyncio.timeout(30):
            async for message in subscription:
                seen.append(message.data)
                await message.ack()
                if len(seen) >= count:
                    break
        await subscription.close()
        return seen


async def test_a_kill_9_with_a_full_window_in_flight_stores_every_record_once_in_order(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tidings.client")
    port = free_port()
    data = tmp_path / "data"
    broker = start_broker(tmp_path / "run1", port=port, data=data)
    published: list[bytes] = []
    try:
        async with tidings.connect(
            url=broker.url,
            service="pipelined",
            max_batch_bytes=8192,
            reconnect=ReconnectPolicy(initial=0.01, maximum=0.1),
        ) as client:
            await client.admin.create_topic("orders", partitions=1)
            number = 0

            async def publish_chunk() -> None:
                nonlocal number
                chunk = [f"{number + i:08d}".encode().ljust(RECORD, b".") for i in range(CHUNK)]
                number += CHUNK
                await client.publish_many("orders", chunk, key="k")
                published.extend(chunk)

            for _ in range(5):
                await publish_chunk()
            in_flight = asyncio.ensure_future(publish_chunk())
            await asyncio.sleep(0)  # its first Produces are on the wire
            broker.kill()
            broker = await asyncio.to_thread(start_broker, tmp_path / "run2", port=port, data=data)
            await asyncio.wait_for(in_flight, 30)  # resent after the reconnect, then acknowledged
            for _ in range(3):
                await publish_chunk()
            assert client.reconnects >= 1
        resent = [r.message for r in caplog.records if "Produce(s) in flight" in r.message]
        assert resent, "the kill did not catch a Produce in flight: nothing was resent"
        stored = await read_all(broker.url, "orders", len(published))
    finally:
        broker.stop()
    assert len(stored) == len(published) == 9 * CHUNK
    assert stored == published  # nothing twice, nothing lost, nothing out of order
