"""A publish made while the broker is away fails after ``reconnect_timeout``, and the next one, once the
broker is back, succeeds: queued batches are not held for as long as the broker is gone."""

from __future__ import annotations

import asyncio
import time

import pytest

import tidings
from tidings.errors import ConnectionLost
from tidings.testing.servers import free_port, start_broker


async def test_a_publish_during_an_outage_fails_after_the_reconnect_timeout(tmp_path):
    port = free_port()
    broker = start_broker(tmp_path / "run1", port=port, data=tmp_path / "data")
    try:
        async with tidings.connect(url=broker.url, service="outage", reconnect_timeout=0.5) as client:
            await client.publish("orders", b"before")
            broker.kill()
            await asyncio.sleep(0.1)
            started = time.monotonic()
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(client.publish("orders", b"during"), 10)
            assert time.monotonic() - started < 5
            broker = await asyncio.to_thread(
                start_broker, tmp_path / "run2", port=port, data=tmp_path / "data"
            )
            deadline = time.monotonic() + 15
            while True:  # the client reconnects on its own; a publish within reconnect_timeout of it works
                try:
                    result = await client.publish("orders", b"after")
                    break
                except ConnectionLost:
                    assert time.monotonic() < deadline, "the client never reconnected"
            assert result.offset >= 1
    finally:
        broker.kill()
