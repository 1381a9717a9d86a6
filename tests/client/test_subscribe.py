"""Consuming: Subscribe, deliveries filtered by spans, credits, coalesced acks, nack and term."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tests.client.helpers import close, open_client, stored
from tidings.client import SubscriptionState
from tidings.errors import InvalidName, SubscriptionClosed
from tidings.protocol import (
    Ack,
    AtOffset,
    AtTime,
    Credit,
    Deliver,
    DeliverySpan,
    Earliest,
    Error,
    GroupMode,
    Latest,
    Nack,
    OffsetRange,
    PartitionRanges,
    Subscribe,
    Term,
    Unsubscribe,
    Unsubscribed,
)


async def subscribed(client, broker, *args, **kwargs):
    pending = asyncio.ensure_future(client.subscribe(*args, **kwargs))
    frame = await broker.subscribed()
    return await pending, frame


def deliver(
    sub_id: int, batches: list[bytes], spans: list[tuple[int, int, int, int]], topic="orders", partition=0
):
    return Deliver(
        subscription_id=sub_id,
        topic=topic,
        partition=partition,
        spans=tuple(DeliverySpan(batch=b, first=f, last=last, delivery=d) for b, f, last, d in spans),
        batches=tuple(batches),
    )


async def test_subscribe_sends_the_group_start_mode_credits_and_deadlines(listener):
    client, broker = await open_client(listener, service="inventory")
    sub, frame = await subscribed(client, broker, "orders.*", start="earliest", prefetch=50, ack_deadline=2.5)
    assert frame == Subscribe(
        request_id=frame.request_id,
        subscription_id=sub.id,
        topic="orders.*",
        group="inventory",  # the service name by default
        mode=GroupMode.PARTITIONED,
        start=Earliest(),
        credits=50,
        ack_deadline_ms=2500,
        max_deliveries=5,
    )
    assert sub.state is SubscriptionState.ACTIVE
    _, shared = await subscribed(
        client, broker, "orders", group="audit", mode="shared", start=42, max_deliveries=None
    )
    assert (shared.group, shared.mode, shared.start, shared.max_deliveries) == (
        "audit",
        GroupMode.SHARED,
        AtOffset(offset=42),
        None,
    )
    moment = datetime(2024, 5, 1, tzinfo=UTC)
    _, timed = await subscribed(client, broker, "orders", start=moment)
    assert timed.start == AtTime(time=int(moment.timestamp() * 1000))
    _, latest = await subscribed(client, broker, "orders")
    assert latest.start == Latest()
    with pytest.raises(InvalidName):
        await client.subscribe("orders", group="no spaces")
    with pytest.raises(ValueError):
        await client.subscribe("orders", start=-1)
    await close(client, broker)


async def test_deliveries_honour_their_spans(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders")
    batch = stored([b"m10", b"m11", b"m12", b"m13", b"m14"], base_offset=10)
    other = stored([b"m15", b"m16"], base_offset=15)
    # 11..12 (first delivery), 14 (third delivery) of batch 0; 16 of batch 1; 10, 13 and 15 are skipped
    broker.send(deliver(sub.id, [batch, other], [(0, 11, 12, 1), (0, 14, 14, 3), (1, 16, 16, 1)]))
    got = [await anext(sub) for _ in range(4)]
    assert [(m.offset, m.data, m.delivery_count) for m in got] == [
        (11, b"m11", 1),
        (12, b"m12", 1),
        (14, b"m14", 3),
        (16, b"m16", 1),
    ]
    message = got[0]
    assert (message.topic, message.partition, message.key) == ("orders", 0, None)
    assert message.timestamp == datetime.fromtimestamp(1_600_000_000, tz=UTC)  # the producer's clock
    assert message.append_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)  # the broker's
    assert "orders/0@11" in repr(message)
    await close(client, broker)


async def test_acks_are_coalesced_into_ranges_and_credits_given_back(listener):
    client, broker = await open_client(listener, ack_interval=0.05)
    # a window of 600: the 200 settlements stay below half of it, so the timer sends them as one Ack
    sub, _ = await subscribed(client, broker, "orders", prefetch=600)
    broker.send(deliver(sub.id, [stored([b"x"] * 100, base_offset=0)], [(0, 0, 99, 1)]))
    broker.send(deliver(sub.id, [stored([b"y"] * 100, base_offset=100)], [(0, 100, 199, 1)]))
    messages = [await anext(sub) for _ in range(200)]
    for message in messages:
        if message.offset != 150:
            await message.ack()
    await messages[150].ack()
    ack = await broker.receive(Ack)  # one Ack: the 200 coalesced into one range
    assert ack.offsets == (
        PartitionRanges(topic="orders", partition=0, ranges=(OffsetRange(first=0, last=199),), delivery=1),
    )
    assert await broker.receive(Credit) == Credit(subscription_id=sub.id, credits=200)
    await broker.nothing()
    await messages[0].ack()  # a second settlement is ignored
    await broker.nothing()
    assert messages[0].settled == "ack"
    await close(client, broker)


async def test_credits_go_back_when_half_the_window_is_settled(listener):
    """With a prefetch below ack_batch, settlements go out at half the window, not when it empties."""
    client, broker = await open_client(listener, ack_batch=256, ack_interval=10.0)
    sub, _ = await subscribed(client, broker, "orders", prefetch=100)
    broker.send(deliver(sub.id, [stored([b"x"] * 100, base_offset=0)], [(0, 0, 99, 1)]))
    for _ in range(50):
        await (await anext(sub)).ack()
    ack = await broker.receive(Ack)
    assert ack.offsets[0].ranges == (OffsetRange(first=0, last=49),)
    assert await broker.receive(Credit) == Credit(subscription_id=sub.id, credits=50)
    await close(client, broker)


async def test_a_busy_consumer_sends_one_ack_frame_per_ack_batch(listener):
    client, broker = await open_client(listener, ack_batch=64, ack_interval=10.0)
    sub, _ = await subscribed(client, broker, "orders", prefetch=1000)
    broker.send(deliver(sub.id, [stored([b"x"] * 1000, base_offset=0)], [(0, 0, 999, 1)]))
    for _ in range(640):
        await (await anext(sub)).ack()
    frames = []
    for _ in range(20):
        frames.append(await broker.receive())
    acks = [f for f in frames if isinstance(f, Ack)]
    credits = [f for f in frames if isinstance(f, Credit)]
    assert len(acks) == 10 and len(credits) == 10
    assert acks[3].offsets[0].ranges == (OffsetRange(first=192, last=255),)
    assert sum(c.credits for c in credits) == 640
    await close(client, broker)


async def test_a_consumer_waiting_for_more_sends_its_acks_at_once(listener):
    client, broker = await open_client(listener, ack_interval=10.0)
    sub, _ = await subscribed(client, broker, "orders", prefetch=4)  # one ack is below half the window
    broker.send(deliver(sub.id, [stored([b"x"], base_offset=7)], [(0, 7, 7, 1)]))
    await (await anext(sub)).ack()
    await broker.nothing()  # the application may still be busy: the ack waits for the interval...
    following = asyncio.ensure_future(anext(sub))  # ...until it asks for more, with nothing buffered
    assert (await broker.receive(Ack)).offsets[0].ranges == (OffsetRange(first=7, last=7),)
    assert await broker.receive(Credit) == Credit(subscription_id=sub.id, credits=1)
    broker.send(deliver(sub.id, [stored([b"y"], base_offset=8)], [(0, 8, 8, 1)]))
    assert (await following).offset == 8
    await close(client, broker)


async def test_nack_and_term_frames_carry_delay_and_reason(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders")
    broker.send(deliver(sub.id, [stored([b"a", b"b", b"c", b"d"], base_offset=0)], [(0, 0, 3, 2)]))
    a, b, c, d = [await anext(sub) for _ in range(4)]
    await a.nack(delay=1.5, reason="busy")
    await b.nack(delay=1.5, reason="busy")
    await c.term(reason="poison")
    await d.nack()
    frames = []
    while len(frames) < 4:
        frames.append(await broker.receive())
    nacks = sorted((f for f in frames if isinstance(f, Nack)), key=lambda f: f.delay_ms)
    assert [(n.delay_ms, n.reason, n.offsets[0].ranges) for n in nacks] == [
        (0, None, (OffsetRange(first=3, last=3),)),
        (1500, "busy", (OffsetRange(first=0, last=1),)),
    ]
    (term,) = [f for f in frames if isinstance(f, Term)]
    assert (term.reason, term.offsets[0].ranges) == ("poison", (OffsetRange(first=2, last=2),))
    (credit,) = [f for f in frames if isinstance(f, Credit)]
    assert credit.credits == 4
    await close(client, broker)


async def test_messages_decode_as_text_and_json(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders")
    broker.send(deliver(sub.id, [stored([b'{"id": 1}', "héllo".encode()], base_offset=0)], [(0, 0, 1, 1)]))
    first, second = await anext(sub), await anext(sub)
    assert first.json() == {"id": 1}
    assert second.text() == "héllo"
    await close(client, broker)


async def test_a_refused_subscribe_raises_subscription_closed(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.subscribe("orders", group="g", mode="shared"))
    frame = await broker.receive(Subscribe)
    broker.send(
        Error(code="group_mode_conflict", message="group g is partitioned", request_id=frame.request_id)
    )
    with pytest.raises(SubscriptionClosed, match="group g is partitioned") as caught:
        await pending
    assert caught.value.reason == "group_mode_conflict"
    await close(client, broker)


async def test_the_broker_ending_a_subscription_ends_its_iteration_with_the_reason(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders")
    broker.send(deliver(sub.id, [stored([b"last"], base_offset=0)], [(0, 0, 0, 1)]))
    broker.send(Unsubscribed(subscription_id=sub.id, reason="topic deleted"))
    assert (await anext(sub)).data == b"last"  # what was delivered before still comes out
    with pytest.raises(SubscriptionClosed, match="topic deleted"):
        await anext(sub)
    await close(client, broker)


async def test_close_flushes_acks_then_unsubscribes_and_ends_iteration(listener):
    client, broker = await open_client(listener, ack_interval=10.0)
    sub, _ = await subscribed(client, broker, "orders")
    broker.send(deliver(sub.id, [stored([b"a", b"b"], base_offset=0)], [(0, 0, 1, 1)]))
    first = await anext(sub)
    await first.ack()  # b is still buffered: the ack waits for the interval
    await broker.nothing()
    received = []

    async def consume():
        async with sub:
            received.append(await anext(sub))
        async for message in sub:
            received.append(message)

    await consume_and_answer(consume(), broker, sub.id)
    assert [m.data for m in received] == [b"b"]
    assert sub.state is SubscriptionState.CLOSED
    await close(client, broker)


async def consume_and_answer(coro, broker, sub_id):
    task = asyncio.ensure_future(coro)
    ack = await broker.receive(Ack)
    assert ack.offsets[0].ranges == (OffsetRange(first=0, last=0),)
    await broker.receive(Credit)
    unsubscribe = await broker.receive(Unsubscribe)
    assert unsubscribe.subscription_id == sub_id
    broker.send(Unsubscribed(subscription_id=sub_id, request_id=unsubscribe.request_id))
    await task


async def test_a_corrupt_delivery_is_nacked_back(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders")
    damaged = bytearray(stored([b"a", b"b"], base_offset=0))
    damaged[-1] ^= 0xFF
    broker.send(deliver(sub.id, [bytes(damaged)], [(0, 0, 1, 1)]))
    nack = await broker.receive(Nack)
    assert nack.offsets[0].ranges == (OffsetRange(first=0, last=1),) and nack.reason == "corrupt batch"
    assert (await broker.receive(Credit)).credits == 2
    await close(client, broker)


async def test_a_batch_delivered_in_parts_is_checked_once_and_each_record_decoded_once(listener):
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders", prefetch=2)
    batch = stored([f"m{i}".encode() for i in range(6)], base_offset=100)
    for first in (100, 102, 104):  # the broker sends the whole batch each time, naming two offsets
        broker.send(deliver(sub.id, [batch], [(0, first, first + 1, 1)]))
    got = [await anext(sub) for _ in range(6)]
    assert [m.offset for m in got] == list(range(100, 106))
    assert [m.data for m in got] == [f"m{i}".encode() for i in range(6)]
    assert (sub._batches.checked, sub._batches.decoded) == (1, 6)
    await close(client, broker)


async def test_a_span_from_the_middle_of_a_batch_decodes_only_that_span(listener):
    """A subscription starting at a time lands inside a stored batch of thousands: O(span), not O(batch)."""
    client, broker = await open_client(listener)
    sub, _ = await subscribed(client, broker, "orders", prefetch=3)
    batch = stored([f"m{i}".encode() for i in range(5000)], base_offset=1000)
    broker.send(deliver(sub.id, [batch], [(0, 4200, 4202, 1)]))
    got = [await anext(sub) for _ in range(3)]
    assert [(m.offset, m.data) for m in got] == [(4200, b"m3200"), (4201, b"m3201"), (4202, b"m3202")]
    assert sub._batches.decoded == 3
    broker.send(deliver(sub.id, [batch], [(0, 1003, 1003, 2)]))  # a redelivery before the last span
    again = await anext(sub)
    assert (again.offset, again.data, again.delivery_count) == (1003, b"m3", 2)
    await close(client, broker)
