"""``publish`` and ``publish_many`` against a real broker: runs split over batches and partitions.

``publish_many`` queues its items in runs (one future per run, not per event)
and ``publish`` skips the coroutine layers once a topic is known; these tests
hold both to what a consumer then reads: every event stored once, in order
within its partition, at the offset its result names.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

import tidings
from tidings.errors import NotConnected, PublishError
from tidings.testing import servers


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    broker = servers.start_broker(Path(tmp_path_factory.mktemp("publish-runs")))
    try:
        yield broker.url
    finally:
        broker.stop()


async def read_all(client: tidings.Client, topic: str, count: int) -> dict[tuple[int, int], bytes]:
    """(partition, offset) -> data for the first ``count`` events of ``topic``."""
    seen: dict[tuple[int, int], bytes] = {}
    subscription = await client.subscribe(topic, group=f"reader-{topic}", start="earliest", prefetch=1000)
    async with asyncio.timeout(20):
        async for message in subscription:
            assert message.partition is not None and message.offset is not None
            seen[(message.partition, message.offset)] = message.data
            await message.ack()
            if len(seen) >= count:
                break
    await subscription.close()
    return seen


async def test_publish_many_splits_into_batches_and_partitions_and_names_each_offset(broker_url: str) -> None:
    async with tidings.connect(url=broker_url, service="runs", max_batch_records=70) as client:
        await client.admin.create_topic("runs.spread", partitions=3)
        items = [f"event {i}".encode() for i in range(1000)]
        results = await client.publish_many("runs.spread", items)
        assert len(results) == 1000
        assert len({(r.partition, r.offset) for r in results}) == 1000
        assert len({r.partition for r in results}) > 1, "sealed batches move keyless events on"
        for earlier, later in itertools.pairwise(results):  # in order within a partition
            if earlier.partition == later.partition:
                assert later.offset > earlier.offset
        stored = await read_all(client, "runs.spread", 1000)
        assert {(r.partition, r.offset): item for r, item in zip(results, items, strict=True)} == stored


async def test_publish_many_with_a_key_stays_in_its_partition_across_batches(broker_url: str) -> None:
    async with tidings.connect(url=broker_url, service="runs", max_batch_bytes=4096) as client:
        await client.admin.create_topic("runs.keyed", partitions=4)
        items = [bytes([65 + i % 26]) * 100 for i in range(500)]  # about 40 events a batch
        results = await client.publish_many("runs.keyed", items, key="customer-7", headers={"h": "v"})
        assert len({r.partition for r in results}) == 1
        assert [r.offset for r in results] == list(range(results[0].offset, results[0].offset + 500))
        stored = await read_all(client, "runs.keyed", 500)
        assert [stored[(r.partition, r.offset)] for r in results] == items


async def test_publishes_and_runs_in_one_batch_get_their_own_offsets(broker_url: str) -> None:
    async with tidings.connect(url=broker_url, service="runs") as client:
        await client.publish("runs.mixed", b"first")  # the topic exists from here on
        singles = [client.publish("runs.mixed", f"single {i}") for i in range(5)]
        run = client.publish_many("runs.mixed", [f"run {i}" for i in range(5)])
        more = [client.publish("runs.mixed", {"n": i}) for i in range(5)]
        outcome = await asyncio.gather(*singles, run, *more)
        results = [*outcome[:5], *outcome[5], *outcome[6:]]
        offsets = [r.offset for r in results]
        assert len(set(offsets)) == 15
        stored = await read_all(client, "runs.mixed", 16)
        expected = [f"single {i}".encode() for i in range(5)] + [f"run {i}".encode() for i in range(5)]
        expected += [f'{{"n":{i}}}'.encode() for i in range(5)]
        assert [stored[(r.partition, r.offset)] for r in results] == expected


async def test_a_message_too_large_is_refused_before_anything_is_sent(broker_url: str) -> None:
    async with tidings.connect(url=broker_url, service="runs") as client:
        await client.publish("runs.large", b"small")
        huge = b"x" * (64 << 20)
        with pytest.raises(PublishError) as single:
            await client.publish("runs.large", huge)
        assert single.value.reason == "message_too_large"
        with pytest.raises(PublishError) as many:
            await client.publish_many("runs.large", [b"fine", huge])
        assert many.value.reason == "message_too_large"
        assert (await client.publish("runs.large", b"after")).offset == 1  # nothing of the refused went out


async def test_publishing_after_close_raises_not_connected(broker_url: str) -> None:
    client = tidings.connect(url=broker_url, service="runs")
    await client.__aenter__()
    await client.publish("runs.closed", b"x")
    await client.close()
    with pytest.raises(NotConnected):
        await client.publish("runs.closed", b"y")
    with pytest.raises(NotConnected):
        await client.publish_many("runs.closed", [b"y"])
