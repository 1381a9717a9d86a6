"""The broker's limits, each over a real socket: connections, slow handshakes, topics, partitions, headers.

Limits that already had tests elsewhere: the frame size (test_bad_frames),
a silent handshake (test_liveness), produce bytes in flight and the stuck
consumer timeout (test_flow_control), topic name rules (tests/protocol).
The send buffer's hard bound, with the broker's memory measured, is in
test_limits_memory.
"""

from __future__ import annotations

import asyncio

import pytest

from tidings.errors import BrokerConfigError, HandshakeRejected
from tidings.protocol import (
    PROTOCOL_VERSION,
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    Error,
    Hello,
    Produce,
    ProduceResult,
    Rejected,
    Subscribe,
)
from tidings.protocol.codec import encode_bytes
from tidings.server import BrokerConfig
from tidings.testing.raw import RawClient

from .helpers import batch


async def refusal(client: RawClient) -> HandshakeRejected:
    with pytest.raises(HandshakeRejected) as refused:
        await client.expect(Error, timeout=3)
    await client.wait_closed()
    return refused.value


async def test_max_connections_in_total(start_broker, connect):
    server = await start_broker(max_connections=2)
    first = await connect(server)
    await connect(server)
    third = await RawClient.open(*server.address)
    try:
        refused = await refusal(third)
        assert refused.reason == "limit_exceeded"
        assert "max_connections (2)" in str(refused)
    finally:
        await third.close()
    await first.close()  # its slot is released: a new connection gets in
    await wait_for(lambda: server.connections.total == 1)
    await connect(server)


async def test_max_connections_per_ip(start_broker, connect):
    server = await start_broker(max_connections_per_ip=1)
    await connect(server)
    second = await RawClient.open(*server.address)
    try:
        refused = await refusal(second)
        assert refused.reason == "limit_exceeded"
        assert "127.0.0.1 has reached max_connections_per_ip (1)" in str(refused)
    finally:
        await second.close()


async def test_a_handshake_dribbled_byte_by_byte_is_cut_off(start_broker):
    """Slowloris: bytes keep coming, but the Hello is never complete in time."""
    server = await start_broker(handshake_timeout_ms=300)
    client = await RawClient.open(*server.address)
    hello = Hello(protocol_version=PROTOCOL_VERSION, service="slow", client_id="s", max_frame_size=1 << 20)
    data = encode_bytes(hello)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        for byte in data[:-1]:
            if client.closed.is_set():
                break
            await client.write_raw(bytes([byte]))
            await asyncio.sleep(0.05)
        refused = await refusal(client)
        assert "no Hello within 0.3 s" in str(refused)
        assert loop.time() - started < 3
    finally:
        await client.close()


async def admin(client: RawClient, request_id: int, body: object) -> AdminResponse | Error:
    await client.send(AdminRequest(request_id=request_id, body=body))
    return await client.expect(AdminResponse | Error, request_id=request_id)  # type: ignore[arg-type]


async def test_max_topics_covers_create_and_auto_create(start_broker, connect):
    server = await start_broker(max_topics=2)
    client = await connect(server)
    assert isinstance(await admin(client, 1, CreateTopic(name="one")), AdminResponse)
    await client.send(Produce(request_id=2, topic="two", batches=(batch(b"x"),)))
    assert isinstance((await client.expect(ProduceResult, request_id=2)).results[0], Appended)

    refused = await admin(client, 3, CreateTopic(name="three"))
    assert isinstance(refused, Error) and refused.code == "limit_exceeded"
    assert refused.message == "cannot create topic 'three': the broker has max_topics (2) topics"
    await client.send(Produce(request_id=4, topic="three", batches=(batch(b"x"),)))
    result = (await client.expect(ProduceResult, request_id=4)).results[0]
    assert isinstance(result, Rejected) and result.code == "limit_exceeded"
    await client.send(Subscribe(request_id=5, subscription_id=5, topic="three", group="g"))
    assert (await client.expect(Error, request_id=5)).code == "limit_exceeded"
    await client.send(
        Produce(request_id=6, topic="one", batches=(batch(b"x"),))
    )  # existing topics still work
    assert isinstance((await client.expect(ProduceResult, request_id=6)).results[0], Appended)
    assert server.core.topics.names() == ["one", "two"]


async def test_max_partitions(start_broker, connect):
    server = await start_broker(max_partitions=8)
    client = await connect(server)
    refused = await admin(client, 1, CreateTopic(name="wide", partitions=9))
    assert isinstance(refused, Error) and refused.code == "limit_exceeded"
    assert "9 partitions asked; max_partitions is 8" in refused.message
    assert isinstance(await admin(client, 2, CreateTopic(name="wide", partitions=8)), AdminResponse)


async def test_max_headers_bytes(start_broker, connect):
    server = await start_broker(max_headers_bytes=1024)
    client = await connect(server)
    big = batch(b"ok", b"too big", headers=[("trace", b"x" * 2000)])
    await client.send(Produce(request_id=1, topic="t", batches=(big,)))
    result = (await client.expect(ProduceResult, request_id=1)).results[0]
    assert isinstance(result, Rejected) and result.code == "limit_exceeded"
    assert "bytes of headers; max_headers_bytes is 1024" in result.message
    many = batch(*[b"v"] * 50, headers=[("trace", b"x" * 900)])  # 45 KB of headers, each record's small
    await client.send(Produce(request_id=2, topic="t", batches=(many,)))
    assert isinstance((await client.expect(ProduceResult, request_id=2)).results[0], Appended)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_connections", 0, "max_connections: must be a positive integer"),
        ("max_partitions", 5000, "max_partitions: must be 1..4096"),
        ("max_send_buffer", 1024, "max_send_buffer: must be >= write_buffer_high"),
        ("tls_require_client_cert", True, "needs tls_cert"),
    ],
)
def test_limits_are_validated(key, value, message):
    with pytest.raises(BrokerConfigError, match=message):
        BrokerConfig(**{key: value}).validate()


async def wait_for(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)
