"""Request/reply through the broker: routing to one responder, NoResponders, timeouts, lost responders."""

from __future__ import annotations

import asyncio

from tests.server.helpers import batch
from tidings.protocol import Error, NoResponders, Reply, Request, Subscribe, Subscribed
from tidings.records import iter_records


async def responder(connect, topic="payments.authorize", group="payments", subscription_id=1):
    client = await connect(service="payments")
    await client.send(Subscribe(request_id=1, subscription_id=subscription_id, topic=topic, group=group))
    await client.expect(Subscribed)
    return client


def value(frame) -> bytes:
    return next(iter_records(bytes(frame.batch))).value


async def test_request_is_routed_and_reply_relayed(connect):
    server = await responder(connect)
    requester = await connect(service="checkout")
    await requester.send(
        Request(request_id=77, topic="payments.authorize", timeout_ms=2000, batch=batch(b"pay 10"))
    )
    forwarded = await server.expect(Request)
    assert value(forwarded) == b"pay 10" and forwarded.topic == "payments.authorize"
    await server.send(Reply(request_id=forwarded.request_id, batch=batch(b"approved")))
    reply = await requester.expect(Reply)
    assert reply.request_id == 77 and value(reply) == b"approved"


async def test_no_responders(connect):
    requester = await connect()
    await requester.send(Request(request_id=5, topic="nobody.home", timeout_ms=1000, batch=batch(b"?")))
    assert (await requester.expect(NoResponders)).request_id == 5


async def test_requests_round_robin_over_responders(connect):
    servers = [await responder(connect), await responder(connect)]
    requester = await connect()
    for n in range(4):
        await requester.send(
            Request(request_id=n, topic="payments.authorize", timeout_ms=2000, batch=batch(b"r"))
        )
    await asyncio.sleep(0.2)
    counts = [sum(isinstance(f, Request) for f in s.frames) for s in servers]
    assert counts == [2, 2]


async def test_wildcard_subscribers_respond(connect):
    server = await responder(connect, topic="payments.>")
    requester = await connect()
    await requester.send(Request(request_id=1, topic="payments.refund", timeout_ms=2000, batch=batch(b"r")))
    assert (await server.expect(Request)).topic == "payments.refund"


async def test_timeout_drops_the_route_and_tells_the_requester(broker, connect):
    server = await responder(connect)
    requester = await connect()
    await requester.send(Request(request_id=9, topic="payments.authorize", timeout_ms=100, batch=batch(b"r")))
    forwarded = await server.expect(Request)
    error = await requester.expect(Error, request_id=9)
    assert error.code == "request_timeout"
    assert len(broker.core.router) == 0
    await server.send(Reply(request_id=forwarded.request_id, batch=batch(b"late")))
    await requester.none_of(Reply, within=0.1)  # a late reply goes nowhere


async def test_responder_disconnect_fails_the_request_at_once(connect):
    server = await responder(connect)
    requester = await connect()
    await requester.send(
        Request(request_id=3, topic="payments.authorize", timeout_ms=30_000, batch=batch(b"r"))
    )
    await server.expect(Request)
    await server.close()
    assert (await requester.expect(Error, request_id=3, timeout=2)).code == "responder_gone"


async def test_responder_error_is_relayed(connect):
    server = await responder(connect)
    requester = await connect()
    await requester.send(
        Request(request_id=4, topic="payments.authorize", timeout_ms=2000, batch=batch(b"r"))
    )
    forwarded = await server.expect(Request)
    await server.send(Error(code="card_declined", message="no funds", request_id=forwarded.request_id))
    error = await requester.expect(Error, request_id=4)
    assert (error.code, error.message) == ("card_declined", "no funds")
