"""Request/reply: the requester's side and the responder's side."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.client.helpers import close, open_client, stored
from tests.client.test_subscribe import deliver
from tidings.errors import NoResponders, RequestTimeout, TidingsError
from tidings.protocol import Error, Reply, Request, Subscribe, Subscribed
from tidings.protocol import NoResponders as NoRespondersFrame
from tidings.records import BatchBuilder, iter_records


def one_record(value: bytes, headers=None) -> bytes:
    builder = BatchBuilder()
    builder.add(value, headers=headers)
    return builder.build()


async def test_request_returns_the_reply(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(
        client.request("payments.charge", {"amount": 5}, timeout=2.0, headers={"h": "1"})
    )
    request = await broker.receive(Request)
    assert (request.topic, request.timeout_ms) == ("payments.charge", 2000)
    (record,) = iter_records(request.batch)
    assert (record.value, record.headers) == (b'{"amount":5}', (("h", b"1"),))
    broker.send(Reply(request_id=request.request_id, batch=one_record(b'{"ok":true}')))
    reply = await pending
    assert reply.json() == {"ok": True}
    assert reply.is_request is False
    await close(client, broker)


async def test_no_responders_fails_at_once(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.request("payments.charge", b"x", timeout=30))
    request = await broker.receive(Request)
    started = time.monotonic()
    broker.send(NoRespondersFrame(request_id=request.request_id))
    with pytest.raises(NoResponders, match=r"payments\.charge"):
        await pending
    assert time.monotonic() - started < 1
    await close(client, broker)


async def test_a_request_with_no_answer_times_out_and_a_late_reply_is_dropped(listener):
    client, broker = await open_client(listener)
    with pytest.raises(RequestTimeout, match=r"0\.05 s"):
        pending = asyncio.ensure_future(client.request("slow", b"x", timeout=0.05))
        request = await broker.receive(Request)
        await pending
    broker.send(Reply(request_id=request.request_id, batch=one_record(b"too late")))
    await asyncio.sleep(0.01)
    assert client.connected  # a reply nobody waits for is not an error
    await close(client, broker)


async def test_the_brokers_timeout_error_is_a_request_timeout(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.request("slow", b"x", timeout=5))
    request = await broker.receive(Request)
    broker.send(Error(code="request_timeout", message="no reply in 5000 ms", request_id=request.request_id))
    with pytest.raises(RequestTimeout):
        await pending
    await close(client, broker)


async def test_a_responder_gets_requests_through_its_subscription_and_replies(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.subscribe("payments.*", group="payments"))
    subscribe = await broker.receive(Subscribe)
    broker.send(Subscribed(request_id=subscribe.request_id, subscription_id=subscribe.subscription_id))
    sub = await pending
    broker.send(
        Request(request_id=900, topic="payments.charge", timeout_ms=1000, batch=one_record(b"charge 5"))
    )
    message = await anext(sub)
    assert message.is_request and message.data == b"charge 5" and message.topic == "payments.charge"
    assert (message.partition, message.offset) == (-1, -1)
    await message.ack()  # settling a request means nothing: no frame
    await message.reply({"charged": 5}, headers={"status": "ok"})
    reply = await broker.receive(Reply)
    assert reply.request_id == 900
    (record,) = iter_records(reply.batch)
    assert (record.value, record.headers) == (b'{"charged":5}', (("status", b"ok"),))
    await close(client, broker)


async def test_a_request_for_no_subscription_is_answered_with_an_error(listener):
    client, broker = await open_client(listener)
    broker.send(Request(request_id=5, topic="nobody.home", timeout_ms=1000, batch=one_record(b"?")))
    error = await broker.receive(Error)
    assert (error.code, error.request_id) == ("no_responders", 5)
    await close(client, broker)


async def test_reply_to_an_ordinary_message_is_refused(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.subscribe("orders"))
    subscribe = await broker.subscribed()
    sub = await pending
    broker.send(deliver(subscribe.subscription_id, [stored([b"a"], 0)], [(0, 0, 0, 1)]))
    message = await anext(sub)
    with pytest.raises(TidingsError, match="not a request"):
        await message.reply(b"?")
    await close(client, broker)
