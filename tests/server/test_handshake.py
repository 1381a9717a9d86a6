"""Handshake, ping, close and auth over a real socket."""

from __future__ import annotations

import pytest

from tidings.errors import HandshakeRejected
from tidings.protocol import (
    PROTOCOL_VERSION,
    Close,
    Ping,
    Pong,
    ProducerClaim,
    State,
)
from tidings.testing.raw import RawClient


async def test_welcome_states_the_terms(broker, connect):
    client = await connect()
    welcome = client.welcome
    assert welcome.protocol_version == PROTOCOL_VERSION
    assert welcome.broker_id == broker.core.broker_id
    assert welcome.max_frame_size == broker.config.max_frame_size
    assert welcome.session_id in broker.sessions
    assert welcome.producer_id is None and welcome.producer_epoch is None


async def test_producer_ids_are_assigned_and_distinct(connect):
    first = await connect(producer=ProducerClaim())
    second = await connect(producer=ProducerClaim())
    assert first.welcome.producer_id is not None
    assert first.welcome.producer_epoch == 0
    assert first.welcome.producer_id != second.welcome.producer_id


async def test_producer_ids_never_repeat_across_restarts(start_broker):
    server = await start_broker()
    client = await RawClient.connect(*server.address, producer=ProducerClaim())
    before = client.welcome.producer_id
    await client.close()
    await server.stop()
    server = await start_broker()
    client = await RawClient.connect(*server.address, producer=ProducerClaim())
    assert client.welcome.producer_id > before
    await client.close()


async def test_ping_pong(connect):
    client = await connect()
    await client.send(Ping(nonce=42))
    assert (await client.expect(Pong)).nonce == 42


async def test_close_is_answered_with_close(connect):
    client = await connect()
    await client.send(Close(reason="bye"))
    await client.expect(Close)
    await client.wait_closed()
    assert client.conn.state is State.CLOSED


async def test_auth_token(start_broker):
    server = await start_broker(auth_token="s3cret")
    with pytest.raises(HandshakeRejected) as refused:
        await RawClient.connect(*server.address, auth_token="wrong")
    assert refused.value.reason == "not_authorized"
    with pytest.raises(HandshakeRejected):
        await RawClient.connect(*server.address)
    client = await RawClient.connect(*server.address, auth_token="s3cret")
    assert client.welcome is not None
    await client.close()
