"""Producing over a socket: durable acks, offsets, partition choice, auto-creation, bad batches."""

from __future__ import annotations

import asyncio

import pytest

from tests.server.helpers import batch
from tidings.core.datadir import DataDir
from tidings.core.topics import TopicPolicy, TopicRegistry
from tidings.errors import InvalidTopicName
from tidings.protocol import (
    AckMode,
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    Deliver,
    DescribeTopic,
    Earliest,
    Error,
    Produce,
    ProduceResult,
    Rejected,
    Subscribe,
    Subscribed,
)
from tidings.protocol.codec import encode_bytes
from tidings.records import iter_batches, iter_records, partition_for_key


async def produce(client, request_id, topic, *batches, partition=None, ack=AckMode.DURABLE):
    await client.send(
        Produce(request_id=request_id, topic=topic, batches=batches, partition=partition, ack=ack)
    )
    if ack is AckMode.NONE:
        return None
    return (await client.expect(ProduceResult, request_id=request_id)).results


async def create_topic(client, name, partitions, request_id=900, **config):
    await client.send(
        AdminRequest(request_id=request_id, body=CreateTopic(name=name, partitions=partitions, config=config))
    )
    return (await client.expect(AdminResponse, request_id=request_id)).body


async def test_durable_ack_offsets_are_contiguous_and_read_back(broker, connect, data_dir):
    client = await connect()
    results = []
    for request_id in range(1, 6):
        results += await produce(client, request_id, "orders", batch(b"a", b"b"), batch(b"c"))
    assert all(isinstance(r, Appended) and not r.duplicate for r in results)
    offsets = [(r.base_offset, r.last_offset) for r in results]
    expected, next_offset = [], 0
    for size in [2, 1] * 5:
        expected.append((next_offset, next_offset + size - 1))
        next_offset += size
    assert offsets == expected
    partition_log = broker.core.topics.log("orders", 0)
    assert partition_log.durable_offset >= 15  # acked means fsynced under the default policy
    data = partition_log.read(0, 1 << 20).data
    values = [
        r.value for position, header in iter_batches(data) for r in iter_records(data, position, header)
    ]
    assert values == [b"a", b"b", b"c"] * 5


async def test_concurrent_producers_share_fsyncs(broker, connect):
    clients = [await connect() for _ in range(4)]

    async def run(client, base):
        for n in range(20):
            await client.send(Produce(request_id=base + n, topic="busy", batches=(batch(b"x"),)))
        return [await client.expect(ProduceResult, request_id=base + n) for n in range(20)]

    answers = await asyncio.gather(*(run(c, i * 100) for i, c in enumerate(clients)))
    offsets = sorted(r.results[0].base_offset for answer in answers for r in answer)
    assert offsets == list(range(80))
    committer = broker.committers["busy", 0]
    assert committer.commits < 80  # appends arriving during an fsync shared the next one


async def test_keyed_batches_always_land_on_the_same_partition(connect):
    client = await connect()
    await create_topic(client, "keyed", 8)
    seen: dict[bytes, set[int]] = {}
    request_id = 0
    for _round in range(3):
        for key in [b"order-1", b"order-2", b"order-3", b"customer-9", b""]:
            request_id += 1
            (result,) = await produce(client, request_id, "keyed", batch(b"v", key=key))
            seen.setdefault(key, set()).add(result.partition)
    assert all(len(partitions) == 1 for partitions in seen.values())

    assert seen[b"order-1"] == {partition_for_key(b"order-1", 8)}
    assert seen[b""] == {partition_for_key(b"", 8)}  # an empty key is a key


async def test_keyless_batches_are_spread_round_robin(connect):
    client = await connect()
    await create_topic(client, "spread", 3)
    partitions = [(await produce(client, n, "spread", batch(b"v")))[0].partition for n in range(1, 7)]
    assert sorted(partitions) == [0, 0, 1, 1, 2, 2]


async def test_explicit_partition_and_unknown_partition(connect):
    client = await connect()
    await create_topic(client, "two", 2)
    (ok,) = await produce(client, 1, "two", batch(b"v"), partition=1)
    assert isinstance(ok, Appended) and ok.partition == 1
    (bad,) = await produce(client, 2, "two", batch(b"v"), partition=5)
    assert isinstance(bad, Rejected) and bad.code == "unknown_partition"
    assert "'two'" in bad.message


async def test_auto_created_topics_get_the_default_partitions(start_broker, connect):
    server = await start_broker(default_partitions=3)
    client = await connect(server)
    await produce(client, 1, "fresh", batch(b"v"))
    await client.send(AdminRequest(request_id=2, body=DescribeTopic(name="fresh")))
    description = (await client.expect(AdminResponse, request_id=2)).body
    assert len(description.partitions) == 3


async def test_auto_create_off_rejects_unknown_topics(start_broker, connect):
    server = await start_broker(auto_create_topics=False)
    client = await connect(server)
    (result,) = await produce(client, 1, "nowhere", batch(b"v"))
    assert isinstance(result, Rejected) and result.code == "unknown_topic"
    assert "nowhere" in result.message
    await create_topic(client, "somewhere", 1)
    (result,) = await produce(client, 2, "somewhere", batch(b"v"))
    assert isinstance(result, Appended)


async def test_bad_batches_are_rejected_one_by_one(connect):
    client = await connect()
    good = batch(b"good")
    damaged = bytearray(batch(b"damaged"))
    damaged[-1] ^= 0xFF  # the CRC no longer matches
    results = await produce(client, 1, "mixed", good, bytes(damaged), good)
    assert [type(r) for r in results] == [Appended, Rejected, Appended]
    assert results[1].code == "corrupt_batch"
    assert (results[0].base_offset, results[2].base_offset) == (0, 1)


async def test_ack_none_sends_nothing_but_errors(connect):
    client = await connect()
    await produce(client, 1, "quiet", batch(b"v"), ack=AckMode.NONE)
    damaged = bytearray(batch(b"v"))
    damaged[-1] ^= 0xFF
    await produce(client, 2, "quiet", bytes(damaged), ack=AckMode.NONE)
    error = await client.expect(Error, request_id=2)
    assert error.code == "corrupt_batch"
    await client.none_of(ProduceResult, within=0.1)


async def test_invalid_topic_name_is_a_malformed_frame_naming_the_field(connect):
    client = await connect()
    frame = Produce(request_id=1, topic="ok", batches=(batch(b"v"),))
    raw = encode_bytes(frame).replace(b"\xa2ok", b"\xa2o*")  # a wildcard is no topic name
    await client.write_raw(raw)
    error = await client.expect(Error)
    assert error.code == "malformed_frame" and error.fatal
    assert "$[1]" in error.message  # the topic field
    await client.wait_closed()


def test_topic_name_errors_name_the_topic(tmp_path):
    registry = TopicRegistry(DataDir(str(tmp_path)), TopicPolicy())
    with pytest.raises(InvalidTopicName, match=r"'bad\.\.name'"):
        registry.create("bad..name")


async def test_interval_policy_acks_at_once_and_syncs_on_a_timer(start_broker, connect):
    server = await start_broker(fsync="interval:50")
    producer, consumer = await connect(server), await connect(server)
    await consumer.send(
        Subscribe(request_id=1, subscription_id=1, topic="fast", group="g", start=Earliest(), credits=10)
    )
    await consumer.expect(Subscribed)
    (result,) = await produce(producer, 1, "fast", batch(b"v"))
    assert isinstance(result, Appended)
    log = server.core.topics.log("fast", 0)
    assert log.high_watermark == 1  # visible once written: the user chose speed
    assert len((await consumer.expect(Deliver)).spans) == 1
    for _ in range(50):
        if log.durable_offset == 1:
            break
        await asyncio.sleep(0.02)
    assert log.durable_offset == 1  # the interval timer fsynced it


async def test_retention_runs_periodically(start_broker, connect):
    server = await start_broker(retention_check_interval_ms=50)
    client = await connect(server)
    await create_topic(client, "short", 1, **{"retention.bytes": "5000", "segment.bytes": "4096"})
    for n in range(12):
        await produce(client, 10 + n, "short", batch(b"x" * 1000))
    log = server.core.topics.log("short", 0)
    for _ in range(50):
        if log.start_offset > 0:
            break
        await asyncio.sleep(0.02)
    assert log.start_offset > 0  # whole sealed segments went, oldest first
