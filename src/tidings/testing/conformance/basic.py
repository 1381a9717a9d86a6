"""Scenarios: publish and subscribe, fan-out, competing consumers, ordering per key."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from tidings.backends.base import Delivery, GroupMode, OutgoingMessage, Subscription
from tidings.testing.conformance.harness import WAIT, Harness, check, datas, scenario


@scenario()
async def publish_subscribe(h: Harness) -> None:
    """A message arrives with its key, headers, data bytes and metadata intact; a new group starts
    at "latest" by default, so what was published before it subscribed is not delivered."""
    backend = await h.backend()
    topic = await h.topic(backend, "roundtrip")
    await backend.publish(topic, b"before the group existed")
    subscription = await h.subscribe(backend, topic, group=h.name("g"))
    before = datetime.now(UTC)
    data = bytes(range(256)) + b"\x00\xff"
    sent = await backend.publish(
        topic, data, key="customer-7", headers={"text": "v\u00e9", "binary": b"\x00\xff", "empty": ""}
    )
    bare = await backend.publish(topic, b"")
    check(sent.topic == topic and bare.topic == topic, f"receipts name the topic: {sent}, {bare}")

    first, second = await h.receive_many(subscription, 2)
    check(first.data == data, f"data bytes changed in transit: {first.data[:40]!r}...")
    check(first.key == b"customer-7", f"key: {first.key!r}")
    check(
        dict(first.headers) == {"text": "v\u00e9".encode(), "binary": b"\x00\xff", "empty": b""},
        f"headers: {dict(first.headers)}",
    )
    check(
        (first.topic, first.partition, first.offset) == (topic, sent.partition, sent.offset),
        f"where it was delivered from {(first.topic, first.partition, first.offset)} != receipt {sent}",
    )
    check(first.delivery_count == 1 and not first.is_request, f"a first delivery: {first!r}")
    check(first.msg_id is None, f"no msg_id was given, got {first.msg_id!r}")
    slack = timedelta(seconds=30)
    check(before - slack <= first.timestamp <= datetime.now(UTC) + slack, f"timestamp {first.timestamp}")
    check(
        first.append_time is not None and before - slack <= first.append_time <= datetime.now(UTC) + slack,
        f"append_time {first.append_time}",
    )
    check(
        second.data == b"" and second.key is None and dict(second.headers) == {},
        f"an empty message with no key or headers: {second!r}",
    )
    check((second.partition, second.offset) == (bare.partition, bare.offset), "second receipt")


@scenario()
async def publish_batch(h: Harness) -> None:
    """publish_batch stores every message, returns receipts in order, keeps each key's order, and
    carries each msg_id to the consumer."""
    backend = await h.backend()
    topic = await h.topic(backend, "batch", partitions=2)
    subscription = await h.subscribe(backend, topic, group=h.name("g"))
    messages = [
        OutgoingMessage(
            f"{i % 5}:{i // 5}".encode(), key=f"k{i % 5}", headers={"n": str(i)}, msg_id=f"id-{i}"
        )
        for i in range(50)
    ]
    receipts = await backend.publish_batch(topic, messages)
    check(len(receipts) == 50, f"{len(receipts)} receipts for 50 messages")
    check(len({(r.partition, r.offset) for r in receipts}) == 50, "every message stored at its own offset")
    received = await h.receive_many(subscription, 50)
    by_id = {d.msg_id: d for d in received}
    check(sorted(by_id, key=str) == sorted((m.msg_id for m in messages), key=str), "every msg_id delivered")
    for number, (receipt, message) in enumerate(zip(receipts, messages, strict=True)):
        delivery = by_id[message.msg_id]
        check(
            (delivery.partition, delivery.offset) == (receipt.partition, receipt.offset),
            f"receipt {receipt} does not match delivery {delivery!r}",
        )
        check(
            delivery.data == message.data and delivery.headers.get("n") == str(number).encode(),
            f"{delivery!r} is not {message}",
        )
    _check_key_order(received)


@scenario("consumer_groups")
async def fan_out_across_groups(h: Harness) -> None:
    """Every group receives every message."""
    producer, inventory, shipping = (
        await h.backend("checkout"),
        await h.backend("inventory"),
        await h.backend("shipping"),
    )
    topic = await h.topic(producer, "orders", partitions=2)
    subscriptions = [
        await h.subscribe(inventory, topic, group=h.name("inventory")),
        await h.subscribe(shipping, topic, group=h.name("shipping")),
    ]
    sent = [f"order-{i}".encode() for i in range(20)]
    for data in sent:
        await producer.publish(topic, data, key=data)
    for subscription in subscriptions:
        got = datas(await h.receive_many(subscription, 20))
        check(sorted(got) == sorted(sent), f"group {subscription.group} got {sorted(got)}")


async def _compete(h: Harness, subscriptions: list[Subscription], total: int) -> list[list[bytes]]:
    """Consume with several members until ``total`` messages are in; each member holds its first message
    (unsettled, with prefetch 1) until every member has one, so the work has to be shared."""
    got: list[list[bytes]] = [[] for _ in subscriptions]
    started = [asyncio.Event() for _ in subscriptions]
    done = asyncio.Event()

    async def member(index: int, subscription: Subscription) -> None:
        while not done.is_set():
            nxt = asyncio.ensure_future(anext(subscription))
            finished = asyncio.ensure_future(done.wait())
            await asyncio.wait({nxt, finished}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
            finished.cancel()
            if not nxt.done():
                nxt.cancel()
                if done.is_set():
                    return
                raise TimeoutError(f"member {index} received nothing for {WAIT} s")
            delivery: Delivery = nxt.result()
            got[index].append(delivery.data)
            started[index].set()
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), WAIT)
            await delivery.ack()
            if sum(len(g) for g in got) >= total:
                done.set()

    tasks = [h.spawn(member(i, s), f"member-{i}") for i, s in enumerate(subscriptions)]
    try:
        await asyncio.gather(*tasks)
    except TimeoutError as exc:
        check(False, f"competing consumers stalled: {exc}; received {got}")
    return got


async def _competing(h: Harness, mode: GroupMode) -> None:
    publisher = await h.backend("publisher")
    topic = await h.topic(publisher, "work", partitions=2)
    group = h.name("workers")
    members = [await h.backend("worker") for _ in range(2)]
    subscriptions = [await h.subscribe(m, topic, group=group, mode=mode, prefetch=1) for m in members]
    sent = [f"job-{i}".encode() for i in range(30)]
    await publisher.publish_batch(topic, [OutgoingMessage(d, key=d) for d in sent])
    got = await _compete(h, subscriptions, len(sent))
    everything = [d for g in got for d in g]
    check(sorted(everything) == sorted(sent), f"each message to exactly one member: {got}")
    check(all(got), f"both members took part: {[len(g) for g in got]} messages")


@scenario("consumer_groups", "shared_groups")
async def competing_consumers_shared(h: Harness) -> None:
    """In a shared group, each message goes to exactly one member, and every member gets work."""
    await _competing(h, "shared")


@scenario("consumer_groups")
async def competing_consumers_partitioned(h: Harness) -> None:
    """In a partitioned group over two partitions, each message goes to exactly one member, and both
    members get work."""
    await _competing(h, "partitioned")


@scenario("consumer_groups", "ordered_per_key")
async def ordering_per_key(h: Harness) -> None:
    """Two members of a partitioned group: each key's messages all reach one member, in publish order."""
    publisher = await h.backend("publisher")
    topic = await h.topic(publisher, "ledger", partitions=4)
    group = h.name("ledger")
    members = [await h.backend("ledger") for _ in range(2)]
    subscriptions = [await h.subscribe(m, topic, group=group, prefetch=7) for m in members]
    keys, per_key = [f"account-{k}" for k in range(8)], 25
    for round_ in range(per_key):  # interleaved, in small batches and single publishes
        batch = [OutgoingMessage(f"{key}:{round_}".encode(), key=key) for key in keys]
        if round_ % 2:
            await publisher.publish_batch(topic, batch)
        else:
            for message in batch:
                await publisher.publish(topic, message.data, key=message.key)
    total = len(keys) * per_key
    received: list[list[Delivery]] = [[], []]
    done = asyncio.Event()

    async def member(index: int) -> None:
        while not done.is_set():
            delivery = await anext(subscriptions[index])
            received[index].append(delivery)
            await delivery.ack()
            if sum(map(len, received)) >= total:
                done.set()

    tasks = [h.spawn(member(i), f"ledger-{i}") for i in range(2)]
    try:
        await asyncio.wait_for(done.wait(), WAIT * 2)
    except TimeoutError:
        check(False, f"received {sum(map(len, received))} of {total} messages")
    for task in tasks:
        task.cancel()
    owners: defaultdict[bytes | None, set[int]] = defaultdict(set)
    for index, deliveries in enumerate(received):
        for delivery in deliveries:
            owners[delivery.key].add(index)
        _check_key_order(deliveries)
    shared = {key: who for key, who in owners.items() if len(who) > 1}
    check(not shared, f"keys delivered to both members: {shared}")


def _check_key_order(deliveries: list[Delivery]) -> None:
    """Data is ``<key>:<n>``: per key, n must grow by one from 0 (no gap, no duplicate, no reordering)."""
    seen: defaultdict[str, list[int]] = defaultdict(list)
    for delivery in deliveries:
        key, _, number = delivery.data.decode().rpartition(":")
        seen[key].append(int(number))
    for key, numbers in seen.items():
        check(numbers == list(range(len(numbers))), f"key {key} delivered out of order: {numbers}")


@scenario()
async def publish_batch_keeps_given_timestamps(h: Harness) -> None:
    """An OutgoingMessage's timestamp (the producer's time, as a copy of history gives it) is the
    delivery's timestamp, to the millisecond; messages without one get the time of publishing."""
    backend = await h.backend()
    topic = await h.topic(backend, "stamped")
    subscription = await h.subscribe(backend, topic, group=h.name("g"))
    then = datetime(2025, 6, 7, 8, 9, 10, 123_000, tzinfo=UTC)
    before = datetime.now(UTC)
    await backend.publish_batch(
        topic, [OutgoingMessage(b"old", key="k", timestamp=then), OutgoingMessage(b"new", key="k")]
    )
    old, new = await h.receive_many(subscription, 2)
    got = old.timestamp.replace(microsecond=old.timestamp.microsecond // 1000 * 1000)
    check(got == then, f"the given timestamp {then.isoformat()} came back as {old.timestamp.isoformat()}")
    slack = timedelta(seconds=30)
    check(before - slack <= new.timestamp <= datetime.now(UTC) + slack, f"timestamp of now: {new.timestamp}")
