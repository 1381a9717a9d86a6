"""Scenarios: deduplication by id, a server restart, a crash while publishing, topic patterns."""

from __future__ import annotations

import asyncio
from collections import Counter

from tidings.backends.base import Backend, OutgoingMessage, Reply
from tidings.errors import NoResponders
from tidings.testing.conformance.harness import WAIT, Harness, check, datas, scenario

RECONNECT = 30.0
"""Seconds a scenario allows for a restarted server to be reachable again and the backend to notice."""


@scenario("dedupe_by_id")
async def dedupe_by_id(h: Harness) -> None:
    """Publishing a msg_id again stores nothing new and says so (duplicate=True) with the first receipt."""
    backend = await h.backend()
    topic = await h.topic(backend, "payments")
    first = await backend.publish(topic, b"charge 10", key="k", msg_id="payment-1")
    again = await backend.publish(topic, b"charge 10", key="k", msg_id="payment-1")
    check(not first.duplicate and again.duplicate, f"receipts {first}, {again}")
    check((again.partition, again.offset) == (first.partition, first.offset), f"{again} != {first}")
    await backend.publish(topic, b"end", key="k", msg_id="payment-2")
    subscription = await h.subscribe(backend, topic, group=h.name("g"), start="earliest")
    got = await h.receive_until(subscription, b"end")
    check(datas(got) == [b"charge 10", b"end"], f"stored {datas(got)}")
    check([d.msg_id for d in got] == ["payment-1", "payment-2"], "msg_ids delivered")


@scenario("reconnects", timeout=90.0)
async def reconnect_after_restart(h: Harness) -> None:
    """After the server restarts, the backend reconnects by itself: a publish made meanwhile succeeds,
    the subscription resumes from the group's committed position (acked messages stay acked, the
    unsettled one comes back where ``persistent``), and requests are answered again."""
    producer, consumer = await h.backend("checkout"), await h.backend("inventory")
    topic = await h.topic(producer, "orders")
    subscription = await h.subscribe(consumer, topic, group=h.name("inventory"), start="earliest")
    await producer.publish(topic, b"acked before", key="k")
    await h.receive_many(subscription, 1)
    await producer.publish(topic, b"unsettled before", key="k")
    held = await h.receive(subscription)  # waiting for it sent the ack above; this one stays unsettled
    check(held.data == b"unsettled before", f"got {held!r}")

    await h.restart()
    await asyncio.wait_for(producer.publish(topic, b"after", key="k"), RECONNECT)
    got = await h.receive_until(subscription, b"after", timeout=RECONNECT)
    check(b"acked before" not in datas(got), f"an acked message came back after the restart: {datas(got)}")
    if h.capabilities.persistent:
        check(datas(got) == [b"unsettled before", b"after"], f"after the restart: {datas(got)}")

    if h.capabilities.request_reply:
        responder = await h.subscribe(consumer, h.name("ping"), group=h.name("ping"))

        async def answer() -> None:
            async for delivery in responder:
                if delivery.is_request:
                    await delivery.reply(b"pong")

        h.spawn(answer(), "ping")
        await h.restart()
        reply = await asyncio.wait_for(_ask_until_answered(producer, h.name("ping")), RECONNECT)
        check(reply.data == b"pong", f"reply after a restart: {reply!r}")


async def _ask_until_answered(backend: Backend, topic: str) -> Reply:
    """Requests find no responder until the responder's backend has reconnected and resubscribed too."""
    while True:
        try:
            return await backend.request(topic, b"ping", timeout=WAIT)
        except NoResponders:
            await asyncio.sleep(0.05)


@scenario("idempotent_publish", "reconnects", timeout=90.0)
async def idempotent_publish_across_crash(h: Harness) -> None:
    """The server crashes while batches are being published; the backend retries on its own, and every
    message whose publish returned is stored exactly once."""
    backend = await h.backend("checkout")
    topic = await h.topic(backend, "ledger", partitions=2)
    size = 10
    started, restarted = asyncio.Event(), asyncio.Event()

    async def publish() -> int:
        """Publish batch after batch, from before the crash until five batches after the restart."""
        batches = after = 0
        while after < 5:
            messages = [
                OutgoingMessage(f"entry-{batches}-{i}".encode(), key=f"k{i % 3}") for i in range(size)
            ]
            await asyncio.wait_for(backend.publish_batch(topic, messages), RECONNECT)
            batches += 1
            after += restarted.is_set()
            if batches == 5:
                started.set()
        return batches

    publisher = h.spawn(publish(), "publisher")
    await asyncio.wait_for(started.wait(), WAIT)
    await h.restart(crash=True)
    restarted.set()
    total = size * await publisher
    subscription = await h.subscribe(backend, topic, group=h.name("audit"), start="earliest")
    received = Counter(datas(await h.receive_many(subscription, total, timeout=RECONNECT)))
    duplicated = {data: n for data, n in received.items() if n > 1}
    check(not duplicated, f"stored more than once: {sorted(duplicated)[:10]}")
    check(len(received) == total, f"{len(received)} distinct messages of {total}")
    await backend.publish(topic, b"end", key="k0")
    extra = await h.receive_until(subscription, b"end")
    check(datas(extra) == [b"end"], f"more than {total} messages stored: {datas(extra)[:10]}")


@scenario("topic_patterns")
async def topic_patterns(h: Harness) -> None:
    """A subscription to a pattern takes every matching topic, also those created after it subscribed."""
    backend = await h.backend()
    base = h.name("shop")
    one, deep = (
        await h.subscribe(backend, f"{base}.*", group=h.name("one")),
        await h.subscribe(backend, f"{base}.>", group=h.name("deep")),
    )
    await backend.publish(f"{base}.orders", b"order")
    await backend.publish(f"{base}.eu.refunds", b"refund")
    await backend.publish(f"{base}.payments", b"payment")
    got_one = await h.receive_many(one, 2)
    check(sorted(datas(got_one)) == [b"order", b"payment"], f"{base}.* took {datas(got_one)}")
    check({d.topic for d in got_one} == {f"{base}.orders", f"{base}.payments"}, "deliveries name their topic")
    await backend.publish(f"{base}.orders", b"end")
    later = await h.receive_until(one, b"end")
    check(datas(later) == [b"end"], f"{base}.* also took {datas(later)} (one token only)")
    got_deep = await h.receive_many(deep, 3)
    check(sorted(datas(got_deep)) == [b"order", b"payment", b"refund"], f"{base}.> took {datas(got_deep)}")
