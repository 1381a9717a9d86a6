"""A malformed or oversized frame gets the fatal Error, and only that connection closes."""

from __future__ import annotations

import struct

import pytest

from tests.server.helpers import batch
from tidings.errors import HandshakeRejected
from tidings.protocol import Error, Ping, Pong, Produce, ProduceResult
from tidings.testing.raw import RawClient


async def assert_still_serving(client):
    await client.send(Ping(nonce=7))
    assert (await client.expect(Pong)).nonce == 7
    await client.send(Produce(request_id=99, topic="alive", batches=(batch(b"v"),)))
    assert (await client.expect(ProduceResult, request_id=99)).results[0].partition == 0


async def test_malformed_frame(connect):
    bystander = await connect()
    culprit = await connect()
    await culprit.write_raw(struct.pack("<IBI", 6, 5, 1) + b"\xc1")  # Ping kind, header = invalid msgpack
    error = await culprit.expect(Error)
    assert error.code == "malformed_frame" and error.fatal
    await culprit.wait_closed()
    await assert_still_serving(bystander)


async def test_unknown_frame_kind(connect):
    bystander = await connect()
    culprit = await connect()
    await culprit.write_raw(struct.pack("<IBI", 6, 99, 1) + b"\x90")
    assert (await culprit.expect(Error)).code == "malformed_frame"
    await culprit.wait_closed()
    await assert_still_serving(bystander)


async def test_oversized_frame_is_refused_from_its_prefix(start_broker, connect):
    server = await start_broker(max_frame_size=64 * 1024)
    bystander = await connect(server)
    culprit = await connect(server)
    await culprit.write_raw(struct.pack("<I", 10 * 1024 * 1024))  # the prefix alone is enough
    error = await culprit.expect(Error)
    assert error.code == "frame_too_large" and error.fatal
    await culprit.wait_closed()
    await assert_still_serving(bystander)


async def test_frames_before_the_handshake_are_unexpected(broker):
    client = await RawClient.open(*broker.address)
    try:
        await client.write_raw(b"\x07\x00\x00\x00\x05\x02\x00\x00\x00\x91\x2a")  # Ping(42) before Hello
        with pytest.raises(HandshakeRejected) as refused:  # an Error before Welcome refuses the handshake
            await client.expect(Error)
        assert refused.value.reason == "unexpected_frame"
        await client.wait_closed()
    finally:
        await client.close()


async def test_garbage_instead_of_a_hello(broker, connect):
    client = await RawClient.open(*broker.address)
    try:
        await client.write_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(HandshakeRejected) as refused:
            await client.expect(Error)
        assert refused.value.reason in ("frame_too_large", "malformed_frame")
        await client.wait_closed()
    finally:
        await client.close()
    await assert_still_serving(await connect())
