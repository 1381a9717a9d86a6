"""Publishing: batching, linger, partitions, durable acks, sequence numbers and error mapping."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.client.helpers import appended, close, open_client, values
from tidings.errors import InvalidName, PublishError, UnknownTopic
from tidings.protocol import (
    AdminRequest,
    Appended,
    Close,
    DescribeTopic,
    Error,
    Produce,
    ProduceResult,
    Rejected,
)
from tidings.records import iter_records, partition_for_key, read_header


async def test_many_concurrent_publishes_share_one_produce_and_resolve_with_their_offsets(listener):
    client, broker = await open_client(listener)
    publishes = asyncio.gather(*(client.publish("orders", f"order {i}") for i in range(1000)))
    await broker.describe("orders")
    produce = await broker.receive(Produce)
    assert (produce.topic, produce.partition) == ("orders", 0)
    assert len(produce.batches) == 1
    assert values(produce) == [f"order {i}".encode() for i in range(1000)]
    header = read_header(produce.batches[0])
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (7, 0, 0)
    broker.send(appended(produce, base_offset=500))
    results = await publishes
    assert [(r.topic, r.partition, r.offset) for r in results] == [
        ("orders", 0, 500 + i) for i in range(1000)
    ]
    await broker.nothing()
    await close(client, broker)


async def test_a_keyed_record_goes_to_the_partition_of_its_key(listener):
    client, broker = await open_client(listener)
    keys = [f"customer-{i}" for i in range(20)]
    publishes = asyncio.gather(*(client.publish("orders", {"n": i}, key=key) for i, key in enumerate(keys)))
    await broker.describe("orders", partitions=4)
    frames = [
        await broker.receive(Produce) for _ in range(len({partition_for_key(k.encode(), 4) for k in keys}))
    ]
    for produce in frames:
        broker.send(appended(produce))
        for batch in produce.batches:
            for record in iter_records(batch):
                assert partition_for_key(record.key, 4) == produce.partition
    results = await publishes
    for key, result in zip(keys, results, strict=True):
        assert result.partition == partition_for_key(key.encode(), 4)
    await close(client, broker)


async def test_keyless_records_stick_to_one_partition_per_batch(listener):
    client, broker = await open_client(listener)
    first = asyncio.gather(*(client.publish("logs", b"a") for _ in range(10)))
    await broker.describe("logs", partitions=3)
    one = await broker.receive(Produce)
    assert len(values(one)) == 10  # all ten in the same partition's batch
    broker.send(appended(one))
    await first
    second = asyncio.gather(*(client.publish("logs", b"b") for _ in range(10)))
    two = await broker.receive(Produce)
    broker.send(appended(two))
    await second
    assert two.partition == (one.partition + 1) % 3  # round robin between batches
    await close(client, broker)


async def test_with_max_in_flight_1_one_produce_per_partition_and_sequences_follow_on(listener):
    client, broker = await open_client(listener, linger=0.0, max_in_flight=1)
    a = asyncio.ensure_future(client.publish("orders", b"a"))
    await broker.describe("orders")
    first = await broker.receive(Produce)
    more = asyncio.gather(*(client.publish("orders", f"m{i}") for i in range(5)))
    await broker.nothing()  # the partition's Produce is still unanswered: the next one waits
    broker.send(appended(first, 0))
    assert (await a).offset == 0
    second = await broker.receive(Produce)
    assert values(second) == [f"m{i}".encode() for i in range(5)]
    assert read_header(second.batches[0]).base_sequence == 1
    broker.send(appended(second, 1))
    assert [r.offset for r in await more] == [1, 2, 3, 4, 5]
    await close(client, broker)


async def test_batches_are_capped_by_bytes_and_queue_up_behind_a_full_window(listener):
    client, broker = await open_client(listener, linger=0.01, max_batch_bytes=4096, max_in_flight=1)
    publishes = asyncio.gather(*(client.publish("orders", b"x" * 1000) for i in range(10)))
    await broker.describe("orders")
    first = await broker.receive(Produce)  # the first full batch leaves at once
    assert len(first.batches) == 1 and read_header(first.batches[0]).length <= 4096
    await broker.nothing()  # the window (one Produce) is full: the others wait, sealed
    broker.send(appended(first))
    produces = [first]
    while sum(read_header(p.batches[0]).record_count for p in produces) < 10:
        produce = await broker.receive(Produce)  # one batch per Produce, one at a time
        assert len(produce.batches) == 1
        await broker.nothing()
        broker.send(appended(produce, sum(read_header(p.batches[0]).record_count for p in produces)))
        produces.append(produce)
    headers = [read_header(p.batches[0]) for p in produces]
    assert all(h.length <= 4096 for h in headers)
    counts = [h.record_count for h in headers]
    assert [h.base_sequence for h in headers] == [sum(counts[:i]) for i in range(len(counts))]
    assert [r.offset for r in await publishes] == list(range(10))
    await close(client, broker)


async def test_publish_many_is_one_produce(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(
        client.publisher("orders").publish_many([{"n": i} for i in range(300)], key="k")
    )
    await broker.describe("orders")
    produce = await broker.receive(Produce)
    assert values(produce) == [f'{{"n":{i}}}'.encode() for i in range(300)]
    broker.send(appended(produce, 10))
    assert [r.offset for r in await pending] == list(range(10, 310))
    await close(client, broker)


@dataclasses.dataclass
class Order:
    id: int
    item: str


async def test_data_is_bytes_text_or_json_and_headers_travel(listener):
    client, broker = await open_client(listener)
    publishes = asyncio.gather(
        client.publish("t", b"\x00raw"),
        client.publish("t", "héllo"),
        client.publish("t", Order(1, "tea"), headers={"trace": "abc", "bin": b"\x01"}),
    )
    await broker.describe("t")
    produce = await broker.receive(Produce)
    records = [r for b in produce.batches for r in iter_records(b)]
    assert [r.value for r in records] == [b"\x00raw", "héllo".encode(), b'{"id":1,"item":"tea"}']
    assert records[2].headers == (("trace", b"abc"), ("bin", b"\x01"))
    broker.send(appended(produce))
    await publishes
    with pytest.raises(TypeError, match="cannot publish object"):
        await client.publish("t", object())
    await close(client, broker)


async def test_a_rejected_batch_raises_with_the_brokers_code_and_gives_its_sequences_back(listener):
    client, broker = await open_client(listener, linger=0.0)
    first = asyncio.ensure_future(client.publish("orders", b"a"))
    await broker.describe("orders")
    produce = await broker.receive(Produce)
    broker.send(
        ProduceResult(
            request_id=produce.request_id, results=(Rejected(code="disk_full", message="no space"),)
        )
    )
    with pytest.raises(PublishError) as caught:
        await first
    assert caught.value.reason == "disk_full" and "no space" in str(caught.value)
    second = asyncio.ensure_future(client.publish("orders", b"b"))
    retry = await broker.receive(Produce)
    assert read_header(retry.batches[0]).base_sequence == 0  # the refused batch did not use sequence 0
    broker.send(appended(retry))
    assert (await second).offset == 0
    await close(client, broker)


async def test_a_produce_answered_by_an_error_fails_its_publishes(listener):
    client, broker = await open_client(listener)
    publishes = asyncio.gather(*(client.publish("orders", b"x") for _ in range(3)), return_exceptions=True)
    await broker.describe("orders")
    produce = await broker.receive(Produce)
    broker.send(Error(code="not_authorized", message="no writes for you", request_id=produce.request_id))
    outcomes = await publishes
    assert all(isinstance(o, PublishError) and o.reason == "not_authorized" for o in outcomes)
    await close(client, broker)


async def test_an_unknown_topic_is_created_by_the_broker_with_the_first_publish(listener):
    # a linger, so that the three publishes waiting for the topic share one batch when they resume
    client, broker = await open_client(listener, linger=0.01)
    first = asyncio.ensure_future(client.publish("fresh", b"first", key="k"))
    describe = await broker.receive(AdminRequest)
    assert isinstance(describe.body, DescribeTopic)
    broker.send(Error(code="unknown_topic", message="no topic fresh", request_id=describe.request_id))
    later = asyncio.gather(*(client.publish("fresh", f"later {i}", key="k") for i in range(3)))
    # the first record goes alone, unplaced: the broker creates the topic with its defaults and places it
    bootstrap = await broker.receive(Produce)
    assert bootstrap.partition is None and values(bootstrap) == [b"first"]
    assert read_header(bootstrap.batches[0]).base_sequence == 0
    placed = partition_for_key(b"k", 3)
    broker.send(
        ProduceResult(
            request_id=bootstrap.request_id,
            results=(Appended(partition=placed, base_offset=0, last_offset=0, append_time=1),),
        )
    )
    await broker.describe("fresh", partitions=3)  # now the client learns the partition count
    assert (await first).partition == placed
    produce = await broker.receive(Produce)
    assert produce.partition == placed and values(produce) == [b"later 0", b"later 1", b"later 2"]
    assert read_header(produce.batches[0]).base_sequence == 1  # after the bootstrap record
    broker.send(appended(produce, 1))
    assert [r.offset for r in await later] == [1, 2, 3]
    await broker.nothing()
    await close(client, broker)


async def test_a_broker_that_refuses_auto_creation_fails_the_publish_with_its_error(listener):
    client, broker = await open_client(listener)
    publish = asyncio.ensure_future(client.publish("nope", b"x"))
    describe = await broker.receive(AdminRequest)
    broker.send(Error(code="unknown_topic", message="no topic", request_id=describe.request_id))
    bootstrap = await broker.receive(Produce)
    refusal = Rejected(
        code="unknown_topic", message="unknown topic 'nope' (auto-creation of topics is off on this broker)"
    )
    broker.send(ProduceResult(request_id=bootstrap.request_id, results=(refusal,)))
    with pytest.raises(PublishError, match="auto-creation of topics is off") as caught:
        await publish
    assert caught.value.reason == "unknown_topic"
    await close(client, broker)


async def test_without_auto_create_an_unknown_topic_fails(listener):
    client, broker = await open_client(listener, auto_create_topics=False)
    publish = asyncio.ensure_future(client.publish("nope", b"x"))
    describe = await broker.receive(AdminRequest)
    broker.send(Error(code="unknown_topic", message="no topic", request_id=describe.request_id))
    with pytest.raises(PublishError) as caught:
        await publish
    assert caught.value.reason == "unknown_topic"
    with pytest.raises(UnknownTopic):  # admin calls raise the broker's own class
        task = asyncio.ensure_future(client.admin.describe_topic("nope"))
        request = await broker.receive(AdminRequest)
        broker.send(Error(code="unknown_topic", message="no topic", request_id=request.request_id))
        await task
    await close(client, broker)


async def test_bad_topic_names_and_huge_messages_fail_before_sending(listener):
    client, broker = await open_client(listener, broker_max_frame_size=64 * 1024)
    with pytest.raises(InvalidName):
        await client.publish("orders.*", b"x")
    publish = asyncio.ensure_future(client.publish("orders", b"x" * 100_000))
    await broker.describe("orders")
    with pytest.raises(PublishError) as caught:
        await publish
    assert caught.value.reason == "message_too_large"
    await broker.nothing()
    await close(client, broker)


async def test_close_sends_what_is_lingering(listener):
    client, broker = await open_client(listener, linger=10.0)
    publish = asyncio.ensure_future(client.publish("orders", b"late"))
    await broker.describe("orders")
    await broker.nothing()  # lingering
    closing = asyncio.ensure_future(client.close())
    produce = await broker.receive(Produce)
    broker.send(appended(produce, 3))
    assert (await publish).offset == 3
    await broker.receive()  # Close
    broker.send(Close())
    await closing


async def test_duplicate_answers_resolve_like_appends(listener):
    client, broker = await open_client(listener)
    publish = asyncio.ensure_future(client.publish("orders", b"x"))
    await broker.describe("orders")
    produce = await broker.receive(Produce)
    broker.send(
        ProduceResult(
            request_id=produce.request_id,
            results=(Appended(partition=0, base_offset=41, last_offset=41, append_time=1, duplicate=True),),
        )
    )
    assert (await publish).offset == 41
    await close(client, broker)
