"""kill -9 the broker while services publish and consume through the SDK; restart it on the same port.

Every publish the SDK reported as acknowledged must be consumed by the group
at least once, before or after the crash; the SDK reconnects on its own and
resends what was in flight (idempotently), so the services need no code for it.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

import tidings
from tidings.testing.servers import free_port, start_broker

pytestmark = pytest.mark.slow


async def test_every_acked_publish_is_consumed_after_a_kill_9_and_restart(tmp_path):
    port = free_port()
    broker = start_broker(tmp_path / "run1", port=port, data=tmp_path / "data")
    acked: set[str] = set()
    consumed: set[str] = set()
    stop_publishing = asyncio.Event()
    try:
        async with (
            tidings.connect(url=broker.url, service="checkout") as producer,
            tidings.connect(url=broker.url, service="inventory") as consumer,
        ):
            await producer.admin.create_topic("orders", partitions=2)
            subscription = await consumer.subscribe("orders", group="inventory", start="earliest")

            async def publish() -> None:
                number = 0
                while not stop_publishing.is_set():
                    values = [f"order-{number + i}" for i in range(20)]
                    number += 20
                    await asyncio.gather(*(producer.publish("orders", v, key=v) for v in values))
                    acked.update(values)

            async def consume() -> None:
                async for message in subscription:
                    consumed.add(message.data.decode())
                    await message.ack()

            publishing = asyncio.create_task(publish())
            consuming = asyncio.create_task(consume())
            await asyncio.sleep(1.0)
            before_kill = len(acked)
            broker.kill()
            restart = start_broker  # same port, same data directory
            broker = await asyncio.to_thread(restart, tmp_path / "run2", port=port, data=tmp_path / "data")
            await asyncio.sleep(1.5)  # the SDK reconnects and publishing goes on
            stop_publishing.set()
            await asyncio.wait_for(publishing, 30)
            assert len(acked) > before_kill, "publishing did not resume after the restart"

            async def all_consumed() -> None:
                while not acked <= consumed:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(all_consumed(), 30)
            consuming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consuming
    finally:
        broker.stop()
    assert before_kill > 100, "too little was acknowledged before the kill to prove anything"
    assert acked <= consumed
