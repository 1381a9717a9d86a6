"""Connecting: the Hello the client sends, the Welcome it accepts, refusals, URLs and backoff."""

from __future__ import annotations

import asyncio
import random
import socket

import pytest

import tidings
from tests.client.helpers import ScriptedBroker, close, open_client
from tidings.client import ClientState, ReconnectPolicy, backoff_delay, connect, parse_url
from tidings.errors import ConnectFailed, HandshakeRejected, InvalidName, NotConnected
from tidings.protocol import PROTOCOL_VERSION, Error, Ping, Pong, ProducerClaim


async def test_hello_names_the_service_and_asks_for_a_producer_id(listener):
    task = asyncio.create_task(
        connect(transport=listener.connect, service="checkout", client_id="checkout-1", token="s3cret").open()
    )
    broker = ScriptedBroker(await listener.accept())
    hello = await broker.handshake(producer_id=41, producer_epoch=2)
    client = await task
    assert hello.protocol_version == PROTOCOL_VERSION
    assert (hello.service, hello.client_id, hello.auth_token) == ("checkout", "checkout-1", "s3cret")
    assert hello.producer == ProducerClaim()
    assert client.state is ClientState.CONNECTED and client.connected
    assert client.producer_id == 41
    text = repr(client)
    assert "'checkout'" in text and "CONNECTED" in text and "session=session-1" in text
    await close(client, broker)
    assert client.closed and "CLOSED" in repr(client)


async def test_client_is_awaitable_and_a_context_manager(listener):
    async def broker_side():
        broker = ScriptedBroker(await listener.accept())
        await broker.handshake()
        return broker

    side = asyncio.create_task(broker_side())
    async with connect(transport=listener.connect, service="svc", close_timeout=0.2) as client:
        assert client.connected
    await side
    assert client.closed
    with pytest.raises(NotConnected):
        await client.publish("orders", b"x")


async def test_a_refused_handshake_raises_with_the_brokers_code(listener):
    task = asyncio.create_task(connect(transport=listener.connect, service="svc").open())
    broker = ScriptedBroker(await listener.accept())
    await broker.receive()
    broker.send(Error(code="not_authorized", message="bad token"))
    with pytest.raises(HandshakeRejected) as caught:
        await task
    assert caught.value.reason == "not_authorized"


async def test_connect_to_a_closed_port_fails_at_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectFailed, match=f"tidings://127.0.0.1:{port}"):
        await tidings.connect(f"tidings://127.0.0.1:{port}", service="svc")


async def test_silence_during_the_handshake_times_out(listener):
    task = asyncio.create_task(connect(transport=listener.connect, service="svc", connect_timeout=0.1).open())
    await listener.accept()
    with pytest.raises(ConnectFailed, match="did not answer Hello"):
        await task


async def test_ping_is_answered_with_pong(listener):
    client, broker = await open_client(listener)
    broker.send(Ping(nonce=99))
    assert await broker.receive(Pong) == Pong(nonce=99)
    await close(client, broker)


async def test_a_silent_broker_is_pinged_then_given_up(listener):
    client, broker = await open_client(listener, ping_interval=0.05, reconnect_timeout=5)
    assert isinstance(await broker.receive(Ping), Ping)
    second = await listener.accept(timeout=2)  # the client gave up on the silent connection and redialled
    assert client.state in (ClientState.RECONNECTING, ClientState.CONNECTED)
    await ScriptedBroker(second).handshake()
    await client.close()


def test_urls():
    assert parse_url("tidings://broker.local:7500").url == "tidings://broker.local:7500"
    assert parse_url("tidings://10.0.0.1").port == 7400
    assert parse_url("tidings+tls://h:1").tls
    assert parse_url("h:9").url == "tidings://h:9"
    with pytest.raises(ValueError, match="not a Tidings URL"):
        parse_url("http://x")


def test_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("TIDINGS_URL", "tidings://envhost:7777")
    client = tidings.connect(service="svc")
    assert client.address.url == "tidings://envhost:7777"


def test_names_are_checked_before_anything_is_sent():
    with pytest.raises(InvalidName):
        tidings.connect(service="bad name!")


def test_backoff_is_full_jitter_under_an_exponential_ceiling():
    policy = ReconnectPolicy(initial=0.1, maximum=2.0, multiplier=2.0)
    rng = random.Random(1)
    for attempt, ceiling in [(0, 0.1), (1, 0.2), (3, 0.8), (5, 2.0), (50, 2.0), (10_000, 2.0)]:
        delays = [backoff_delay(policy, attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range, not stuck at the bottom
