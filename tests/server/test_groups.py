"""Consumer groups over sockets: deliver, ack, fan-out, competing consumers, nack, deadlines, DLQ, restart."""

from __future__ import annotations

import asyncio
import threading

from tests.server.helpers import ack_frame, batch, delivered
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    CreateTopic,
    Deliver,
    DescribeGroup,
    Earliest,
    GroupMode,
    Nack,
    PartitionRanges,
    Produce,
    ProduceResult,
    Subscribe,
    Subscribed,
    Term,
    coalesce,
)
from tidings.testing.raw import RawClient


async def publish(client, topic, *values, request_id=1000, key=None):
    await client.send(
        Produce(request_id=request_id, topic=topic, batches=tuple(batch(v, key=key) for v in values))
    )
    return (await client.expect(ProduceResult, request_id=request_id)).results


async def subscribe(client, topic, group, subscription_id=1, **options):
    options.setdefault("start", Earliest())
    options.setdefault("credits", 100)
    await client.send(
        Subscribe(
            request_id=500 + subscription_id,
            subscription_id=subscription_id,
            topic=topic,
            group=group,
            **options,
        )
    )
    await client.expect(Subscribed, subscription_id=subscription_id)


async def receive(client, count, *, subscription_id=None, timeout=5.0):
    """``count`` delivered records (across Deliver frames), with the spans' delivery counts."""
    records, frames = [], []
    while len(records) < count:
        fields = {} if subscription_id is None else {"subscription_id": subscription_id}
        frame = await client.expect(Deliver, timeout=timeout, **fields)
        frames.append(frame)
        records.extend(delivered(frame))
    return records, frames


async def test_subscribe_deliver_ack(connect):
    producer = await connect()
    consumer = await connect()
    await publish(producer, "orders", b"one", b"two", b"three")
    await subscribe(consumer, "orders", "billing")
    records, frames = await receive(consumer, 3)
    assert [r.value for r in records] == [b"one", b"two", b"three"]
    assert all(span.delivery == 1 for f in frames for span in f.spans)
    await consumer.send(ack_frame(1, "orders", 0, [r.offset for r in records]))
    await publish(producer, "orders", b"four", request_id=2)
    records, _ = await receive(consumer, 1)  # records published later arrive once durable
    assert [r.value for r in records] == [b"four"]


async def test_every_group_gets_every_event(connect):
    producer = await connect()
    billing, shipping = await connect(), await connect()
    await subscribe(billing, "orders", "billing")
    await subscribe(shipping, "orders", "shipping")
    await publish(producer, "orders", b"a", b"b")
    for consumer in (billing, shipping):
        records, _ = await receive(consumer, 2)
        assert [r.value for r in records] == [b"a", b"b"]


async def test_competing_consumers_split_partitions(connect):
    producer = await connect()
    await producer.send(AdminRequest(request_id=1, body=CreateTopic(name="jobs", partitions=4)))
    await producer.expect(AdminResponse, request_id=1)
    first, second = await connect(), await connect()
    await subscribe(first, "jobs", "workers")
    await subscribe(second, "jobs", "workers")
    keys = [b"k%d" % n for n in range(40)]
    for n, key in enumerate(keys):
        await publish(producer, "jobs", key, key=key, request_id=10 + n)
    await asyncio.sleep(0.3)
    got = {
        id(c): [r for f in c.frames if isinstance(f, Deliver) for r in delivered(f)] for c in (first, second)
    }
    partitions = {id(c): {f.partition for f in c.frames if isinstance(f, Deliver)} for c in (first, second)}
    assert sum(len(v) for v in got.values()) == 40  # each message to exactly one member
    assert got[id(first)] and got[id(second)]
    assert not partitions[id(first)] & partitions[id(second)]  # a partition has one owner
    assert sorted(r.value for v in got.values() for r in v) == sorted(keys)


async def test_shared_group_hands_out_messages_to_any_member(connect):
    producer = await connect()
    first, second = await connect(), await connect()
    await subscribe(first, "tasks", "pool", mode=GroupMode.SHARED, credits=3)
    await subscribe(second, "tasks", "pool", mode=GroupMode.SHARED, credits=3)
    await publish(producer, "tasks", *[b"t%d" % n for n in range(6)])
    await asyncio.sleep(0.3)
    counts = [sum(len(delivered(f)) for f in c.frames if isinstance(f, Deliver)) for c in (first, second)]
    assert counts == [3, 3]


async def test_nack_redelivers_with_a_higher_count(connect):
    producer, consumer = await connect(), await connect()
    await publish(producer, "orders", b"flaky")
    await subscribe(consumer, "orders", "billing")
    (record,), _ = await receive(consumer, 1)
    ranges = PartitionRanges(topic="orders", partition=0, ranges=coalesce([record.offset]))
    await consumer.send(Nack(subscription_id=1, offsets=(ranges,), delay_ms=50, reason="try again"))
    (again,), frames = await receive(consumer, 1)
    assert again.offset == record.offset and frames[0].spans[0].delivery == 2


async def test_ack_deadline_redelivers_unacked_messages(connect):
    producer, consumer = await connect(), await connect()
    await publish(producer, "orders", b"slow")
    await subscribe(consumer, "orders", "billing", ack_deadline_ms=150)
    (record,), _ = await receive(consumer, 1)
    (again,), frames = await receive(consumer, 1, timeout=3)  # no ack: it comes back after the deadline
    assert again.offset == record.offset and frames[0].spans[0].delivery == 2


async def test_dead_letter_topic_contents(connect):
    producer, consumer, inspector = await connect(), await connect(), await connect()
    await publish(producer, "orders", b"poison", key=b"k1")
    await subscribe(consumer, "orders", "billing", max_deliveries=1)
    (record,), _ = await receive(consumer, 1)
    ranges = PartitionRanges(topic="orders", partition=0, ranges=coalesce([record.offset]))
    await consumer.send(Nack(subscription_id=1, offsets=(ranges,), reason="cannot parse"))
    await asyncio.sleep(0.2)
    await subscribe(inspector, "orders.dlq.billing", "dlq-reader")
    (letter,), _ = await receive(inspector, 1)
    assert (letter.key, letter.value, letter.timestamp) == (b"k1", b"poison", record.timestamp)
    headers = dict(letter.headers)
    assert headers["tidings-dlq-topic"] == b"orders"
    assert headers["tidings-dlq-partition"] == b"0"
    assert headers["tidings-dlq-offset"] == str(record.offset).encode()
    assert headers["tidings-dlq-group"] == b"billing"
    assert headers["tidings-dlq-deliveries"] == b"1"
    assert headers["tidings-dlq-reason"] == b"cannot parse"


async def test_term_dead_letters_at_once(connect):
    producer, consumer, inspector = await connect(), await connect(), await connect()
    await publish(producer, "orders", b"never")
    await subscribe(consumer, "orders", "billing")
    (record,), _ = await receive(consumer, 1)
    ranges = PartitionRanges(topic="orders", partition=0, ranges=coalesce([record.offset]))
    await consumer.send(Term(subscription_id=1, offsets=(ranges,), reason="invalid order"))
    await subscribe(inspector, "orders.dlq.billing", "dlq-reader")
    (letter,), _ = await receive(inspector, 1)
    assert dict(letter.headers)["tidings-dlq-reason"] == b"invalid order"


async def test_progress_survives_a_clean_restart(start_broker):
    server = await start_broker()
    client = await RawClient.connect(*server.address)
    await publish(client, "orders", *[b"m%d" % n for n in range(10)])
    await subscribe(client, "orders", "billing")
    records, _ = await receive(client, 10)
    await client.send(ack_frame(1, "orders", 0, [r.offset for r in records[:5]]))
    await asyncio.sleep(0.1)
    await client.close()
    await server.stop()

    server = await start_broker()
    client = await RawClient.connect(*server.address)
    await subscribe(client, "orders", "billing")
    records, _ = await receive(client, 5)
    await client.none_of(Deliver, within=0.2)
    await client.send(AdminRequest(request_id=7, body=DescribeGroup(group="billing")))
    description = (await client.expect(AdminResponse, request_id=7)).body
    await client.close()
    assert [r.value for r in records] == [b"m%d" % n for n in range(5, 10)]  # no acked message again
    assert description.partitions[0].committed == 5


async def test_disconnect_gives_messages_to_another_member(connect):
    producer, first = await connect(), await connect()
    await publish(producer, "orders", b"a", b"b")
    await subscribe(first, "orders", "billing")
    await receive(first, 2)
    second = await connect()
    await subscribe(second, "orders", "billing")
    await first.close()
    records, frames = await receive(second, 2)
    assert [r.value for r in records] == [b"a", b"b"]
    assert frames[0].spans[0].delivery == 2


async def test_a_progress_save_still_queued_at_shutdown_is_not_lost(start_broker):
    # A clean stop cancelled the periodic progress save; when its job was still queued for a thread, the
    # acks it had taken from the engine were dropped, and the final save had nothing left to write: the
    # acked messages came back after the restart.
    server = await start_broker(progress_save_interval_ms=10)
    client = await RawClient.connect(*server.address)
    await publish(client, "orders", *[b"m%d" % n for n in range(10)])
    await subscribe(client, "orders", "billing")
    records, _ = await receive(client, 10)
    gate = threading.Event()
    busy = [server._io_pool.submit(gate.wait) for _ in range(4)]  # every io thread busy: saves queue up
    await client.send(ack_frame(1, "orders", 0, [r.offset for r in records[:5]]))
    await asyncio.sleep(0.1)  # the periodic save has taken the acks and waits for a thread
    await client.close()
    stopping = asyncio.create_task(server.stop())
    await asyncio.sleep(0.1)
    gate.set()
    await stopping
    assert all(f.done() for f in busy)

    server = await start_broker()
    client = await RawClient.connect(*server.address)
    await subscribe(client, "orders", "billing")
    records, _ = await receive(client, 5)
    await client.close()
    assert [r.value for r in records] == [b"m%d" % n for n in range(5, 10)]
