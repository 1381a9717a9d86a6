"""Liveness: a silent handshake is refused, a quiet client is pinged, a vanished one is dropped."""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import HandshakeRejected
from tidings.protocol import Error, Ping, Pong
from tidings.testing.raw import RawClient

QUICK = {"handshake_timeout_ms": 200, "heartbeat_interval_ms": 100, "idle_timeout_ms": 400}


async def test_no_hello_in_time(start_broker):
    server = await start_broker(**QUICK)
    client = await RawClient.open(*server.address)
    try:
        with pytest.raises(HandshakeRejected) as refused:
            await client.expect(Error, timeout=3)
        assert "no Hello" in str(refused.value)
        await client.wait_closed()
    finally:
        await client.close()


async def test_a_client_that_answers_pings_stays(start_broker, connect):
    server = await start_broker(**QUICK)
    client = await connect(server)
    for _ in range(4):
        ping = await client.expect(Ping, timeout=2)
        await client.send(Pong(nonce=ping.nonce))
    assert client.welcome.session_id in server.sessions


async def test_a_client_that_stops_answering_is_dropped(start_broker, connect):
    server = await start_broker(**QUICK)
    client = await connect(server)
    await client.expect(Ping, timeout=2)
    await client.wait_closed(timeout=3)
    await asyncio.sleep(0.05)
    assert client.welcome.session_id not in server.sessions
