"""Reconnecting: idempotent resends of in-flight batches, re-subscribing, giving up in time."""

from __future__ import annotations

import asyncio

import pytest

from tests.client.helpers import ScriptedBroker, appended, close, eventually, open_client, stored, values
from tests.client.test_subscribe import deliver
from tidings.client import ClientState, ReconnectPolicy
from tidings.errors import ConnectionLost
from tidings.protocol import (
    Ack,
    AdminRequest,
    AdminResponse,
    Close,
    Credit,
    OffsetRange,
    PartitionRanges,
    Produce,
    ProducerClaim,
    Subscribe,
    Subscribed,
    TopicList,
)
from tidings.records import read_header

FAST = {"reconnect": ReconnectPolicy(initial=0.001, maximum=0.01)}


async def test_a_batch_in_flight_is_resent_byte_for_byte_under_the_same_producer_id(listener):
    client, broker = await open_client(listener, **FAST)
    publishes = asyncio.gather(*(client.publish("orders", f"o{i}", key="k") for i in range(5)))
    await broker.describe("orders")
    lost = await broker.receive(Produce)
    sent_bytes = [bytes(b) for b in lost.batches]
    broker.drop()  # the connection breaks before the broker answers

    again = ScriptedBroker(await listener.accept())
    hello = await again.handshake(producer_id=7, producer_epoch=0)
    assert hello.producer == ProducerClaim(producer_id=7, producer_epoch=0)  # resume, do not start over
    resent = await again.receive(Produce)
    assert [bytes(b) for b in resent.batches] == sent_bytes
    assert (resent.topic, resent.partition) == (lost.topic, lost.partition)
    again.send(appended(resent, base_offset=20, duplicate=True))  # the broker had stored it: same offsets
    assert [r.offset for r in await publishes] == [20, 21, 22, 23, 24]
    assert client.reconnects == 1 and client.state is ClientState.CONNECTED
    # the next batch carries on the sequence
    follow = asyncio.ensure_future(client.publish("orders", "next", key="k"))
    produce = await again.receive(Produce)
    assert read_header(produce.batches[0]).base_sequence == 5
    again.send(appended(produce, 25))
    assert (await follow).offset == 25
    await close(client, again)


async def test_a_new_producer_id_after_reconnect_renumbers_the_batch(listener):
    client, broker = await open_client(listener, **FAST)
    publishes = asyncio.gather(*(client.publish("orders", f"o{i}") for i in range(3)))
    await broker.describe("orders")
    await broker.receive(Produce)
    broker.drop()
    again = ScriptedBroker(await listener.accept())
    await again.handshake(producer_id=99, producer_epoch=0)  # the broker forgot us
    resent = await again.receive(Produce)
    header = read_header(resent.batches[0])
    assert (header.producer_id, header.base_sequence) == (99, 0)
    assert values(resent) == [b"o0", b"o1", b"o2"]
    again.send(appended(resent))
    await publishes
    assert client.producer_id == 99
    await close(client, again)


async def test_publishes_made_while_reconnecting_wait_for_the_connection(listener):
    client, broker = await open_client(listener, **FAST)
    first = asyncio.ensure_future(client.publish("orders", b"a"))
    await broker.describe("orders")
    broker.send(appended(await broker.receive(Produce)))
    await first
    broker.drop()
    await asyncio.sleep(0)
    waiting = asyncio.ensure_future(client.publish("orders", b"b"))
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    produce = await again.receive(Produce)
    assert values(produce) == [b"b"]
    again.send(appended(produce, 1))
    assert (await waiting).offset == 1
    await close(client, again)


async def test_subscriptions_are_resubscribed_with_their_group_and_remaining_credits(listener):
    client, broker = await open_client(listener, ack_interval=10.0, **FAST)
    pending = asyncio.ensure_future(
        client.subscribe("orders", group="inventory", prefetch=10, start="earliest")
    )
    first = await broker.subscribed()
    sub = await pending
    broker.send(deliver(sub.id, [stored([b"a", b"b", b"c"], base_offset=0)], [(0, 0, 2, 1)]))
    held = await anext(sub)  # the application holds offset 0; 1 and 2 stay buffered
    broker.drop()

    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    resubscribe = await again.receive(Subscribe)
    assert (resubscribe.subscription_id, resubscribe.group, resubscribe.topic) == (
        sub.id,
        "inventory",
        "orders",
    )
    assert resubscribe.start == first.start
    assert resubscribe.credits == 9  # prefetch less the one message the application still holds
    again.send(Subscribed(request_id=resubscribe.request_id, subscription_id=sub.id))
    # the buffered messages were dropped (the broker redelivers them), the held one can still be acked
    again.send(deliver(sub.id, [stored([b"a", b"b", b"c"], base_offset=0)], [(0, 1, 2, 2)]))
    redelivered = await anext(sub)
    assert (redelivered.offset, redelivered.delivery_count) == (1, 2)
    await held.ack()
    await redelivered.ack()
    waiting = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)  # offset 2 is still buffered, so acks wait for the interval...
    sub.flush()  # ...or a flush
    ack = await again.receive(Ack)
    # each settlement names the delivery it answers: offset 0 its first, offset 1 its second
    assert [(group.ranges, group.delivery) for group in ack.offsets] == [
        ((OffsetRange(first=0, last=0),), 1),
        ((OffsetRange(first=1, last=1),), 2),
    ]
    assert (await again.receive(Credit)).credits == 2
    assert (await waiting).offset == 2
    await close(client, again)


async def test_acks_waiting_when_the_connection_broke_are_sent_after_resubscribing(listener):
    client, broker = await open_client(listener, ack_interval=10.0, **FAST)
    pending = asyncio.ensure_future(client.subscribe("orders"))
    await broker.subscribed()
    sub = await pending
    broker.send(deliver(sub.id, [stored([b"a", b"b"], base_offset=0)], [(0, 0, 1, 1)]))
    a = await anext(sub)
    await a.ack()  # waits for the interval (b is buffered)
    broker.drop()
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    await again.subscribed()
    ack = await again.receive(Ack)
    assert ack.offsets[0].ranges == (OffsetRange(first=0, last=0),)
    await close(client, again)


async def test_a_broker_down_for_longer_than_reconnect_timeout_fails_the_publish(listener):
    client, broker = await open_client(listener, reconnect_timeout=0.2, **FAST)
    publish = asyncio.ensure_future(client.publish("orders", b"x"))
    await broker.describe("orders")
    await broker.receive(Produce)
    listener.refuse = 10**6
    broker.drop()
    with pytest.raises(ConnectionLost, match=r"no connection to .* for 0\.2 s"):
        await publish
    assert client.state is ClientState.RECONNECTING
    listener.refuse = 0
    again = ScriptedBroker(await listener.accept())
    hello = await again.handshake(producer_id=8)
    assert hello.producer == ProducerClaim()  # the lost batch's fate is unknown: never reuse its sequences
    await close(client, again)


async def test_refused_reconnects_are_retried_with_backoff(listener):
    client, broker = await open_client(listener, **FAST)
    listener.refuse = 3
    broker.drop()
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    await eventually(lambda: client.connected)
    assert listener.refuse == 0 and client.reconnects == 1
    await close(client, again)


async def test_a_draining_broker_gets_a_close_back_and_the_client_reconnects(listener):
    client, broker = await open_client(listener, **FAST)
    broker.send(Close(reason="draining"))
    assert await broker.receive(Close) == Close(reason="broker closed")
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    await eventually(lambda: client.connected)
    assert client.reconnects == 1
    await close(client, again)


async def test_acks_waiting_to_be_coalesced_are_flushed_into_a_draining_brokers_half_close(listener):
    # A clean broker restart used to lose the acks still in the 5 ms coalescing window: the client
    # answered the broker's Close at once, so those messages were redelivered after the restart.
    client, broker = await open_client(listener, ack_interval=60.0, **FAST)
    pending = asyncio.ensure_future(client.subscribe("orders", "g"))
    await broker.subscribed()
    subscription = await pending
    broker.send(deliver(subscription.id, [stored([b"a"], 0)], [(0, 0, 0, 1)]))
    message = await anext(subscription)
    await message.ack()  # coalesced: nothing is sent yet
    broker.send(Close(reason="draining"))
    sent = [await broker.receive()]
    while not isinstance(sent[-1], Close):
        sent.append(await broker.receive())
    acks = [frame.offsets for frame in sent if isinstance(frame, Ack)]
    assert acks == [
        (PartitionRanges(topic="orders", partition=0, ranges=(OffsetRange(first=0, last=0),), delivery=1),)
    ]
    assert sent[-1] == Close(reason="broker closed")
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    await again.subscribed()
    await again.nothing()  # the ack went out already: it is not sent again
    await close(client, again)


async def test_admin_reads_are_retried_after_a_reconnect(listener):
    client, broker = await open_client(listener, **FAST)
    pending = asyncio.ensure_future(client.admin.list_topics())
    await broker.receive(AdminRequest)
    broker.drop()
    again = ScriptedBroker(await listener.accept())
    await again.handshake()
    request = await again.receive(AdminRequest)
    again.send(AdminResponse(request_id=request.request_id, body=TopicList(topics=("orders",))))
    assert await pending == ("orders",)
    await close(client, again)
