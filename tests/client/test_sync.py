"""``tidings.connect_sync``: the blocking facade, driven from a worker thread against a scripted broker."""

from __future__ import annotations

import asyncio
import threading

import pytest

import tidings
from tests.client.helpers import TcpListener, appended, play_close, stored
from tests.client.test_request import one_record
from tests.client.test_subscribe import deliver
from tidings.errors import NotConnected
from tidings.protocol import Ack, AdminRequest, AdminResponse, Produce, Reply, Request, TopicList


def thread(fn, *args, **kwargs):
    return asyncio.ensure_future(asyncio.to_thread(fn, *args, **kwargs))


async def test_publish_request_admin_and_subscribe_block_until_answered():
    async with TcpListener() as tcp:
        connecting = thread(tidings.connect_sync, tcp.url, service="script", ack_interval=10.0)
        broker = await tcp.accept()
        client = await connecting
        assert "'script'" in repr(client) and "CONNECTED" in repr(client)

        publishing = thread(client.publish, "orders", {"id": 1}, key="k")
        await broker.describe("orders")
        produce = await broker.receive(Produce)
        broker.send(appended(produce, 3))
        result = await publishing
        assert (result.topic, result.offset) == ("orders", 3)

        many = thread(client.publish_many, "orders", [b"a", b"b"])
        produce = await broker.receive(Produce)
        broker.send(appended(produce, 4))
        assert [r.offset for r in await many] == [4, 5]

        asking = thread(client.request, "svc.echo", b"hi", timeout=2)
        request = await broker.receive(Request)
        broker.send(Reply(request_id=request.request_id, batch=one_record(b"echo:hi")))
        assert (await asking).data == b"echo:hi"

        listing = thread(client.admin.list_topics)
        admin = await broker.receive(AdminRequest)
        broker.send(AdminResponse(request_id=admin.request_id, body=TopicList(topics=("orders",))))
        assert await listing == ("orders",)

        subscribing = thread(client.subscribe, "orders", "g", start="earliest")
        subscribe = await broker.subscribed()
        sub = await subscribing
        broker.send(deliver(subscribe.subscription_id, [stored([b"x", b"y"], 0)], [(0, 0, 1, 1)]))

        def take_two():
            first = next(sub)
            first.ack()
            second = sub.get(timeout=2)
            second.ack()
            third = sub.get(timeout=0.05)  # nothing more: None after the timeout
            return first, second, third

        first, second, third = await thread(take_two)
        assert (first.offset, first.data, second.offset, third) == (0, b"x", 1, None)
        ack = await broker.receive(Ack)  # flushed when the consumer waited for more
        assert [(r.first, r.last) for r in ack.offsets[0].ranges] == [(0, 1)]

        closing = thread(client.close)
        await play_close(broker)
        await closing
    with pytest.raises(NotConnected):
        client.publish("orders", b"late")
    client.close()  # twice is fine


async def test_connect_sync_failure_raises_and_leaves_no_thread(unused_tcp_port):
    before = {t.name for t in threading.enumerate()}
    with pytest.raises(tidings.errors.ConnectFailed):
        await asyncio.to_thread(tidings.connect_sync, f"tidings://127.0.0.1:{unused_tcp_port}", service="s")
    assert "tidings-sync-client" not in {t.name for t in threading.enumerate()} - before
