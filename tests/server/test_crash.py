"""kill -9 the broker during a publish run, restart it: every acknowledged publish is still there."""

from __future__ import annotations

import asyncio

import pytest

from tests.server.helpers import BrokerProcess, batch, delivered
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    Deliver,
    DescribeTopic,
    Earliest,
    Produce,
    ProduceResult,
    Subscribe,
    Subscribed,
)
from tidings.testing.raw import RawClient

pytestmark = pytest.mark.slow

WINDOW = 8


async def publisher(client: RawClient, name: str, acked: dict[bytes, tuple[int, int]]) -> None:
    """Publish until the connection dies, ``WINDOW`` Produce frames in flight; record every ack."""
    sent = 0
    in_flight: dict[int, bytes] = {}
    try:
        while True:
            while len(in_flight) < WINDOW:
                sent += 1
                value = f"{name}-{sent}".encode()
                in_flight[sent] = value
                await client.send(Produce(request_id=sent, topic="crash", batches=(batch(value, key=value),)))
            result = await client.expect(ProduceResult, timeout=10)
            (appended,) = result.results
            assert isinstance(appended, Appended)
            acked[in_flight.pop(result.request_id)] = (appended.partition, appended.base_offset)
    except (ConnectionError, OSError):
        return


async def read_all(client: RawClient, end_offsets: list[int]) -> dict[tuple[int, int], bytes]:
    total = sum(end_offsets)
    await client.send(
        Subscribe(
            request_id=1, subscription_id=1, topic="crash", group="audit", start=Earliest(), credits=total + 1
        )
    )
    await client.expect(Subscribed)
    stored: dict[tuple[int, int], bytes] = {}
    while len(stored) < total:
        frame = await client.expect(Deliver, timeout=10)
        for record in delivered(frame):
            stored[frame.partition, record.offset] = record.value
    return stored


async def test_every_acked_publish_survives_kill_9(data_dir):
    broker = BrokerProcess(data_dir)
    acked: dict[bytes, tuple[int, int]] = {}
    try:
        admin = await RawClient.connect(broker.host, broker.port)
        await admin.send(AdminRequest(request_id=1, body=CreateTopic(name="crash", partitions=2)))
        await admin.expect(AdminResponse)
        clients = [await RawClient.connect(broker.host, broker.port) for _ in range(4)]
        tasks = [asyncio.create_task(publisher(c, f"p{n}", acked)) for n, c in enumerate(clients)]
        await asyncio.sleep(0.8)
        broker.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        for client in [admin, *clients]:
            await client.close()
    finally:
        broker.close()
    print(f"acked {len(acked)} publishes before the kill")
    assert len(acked) > 50, "the run acknowledged too little to prove anything"

    broker = BrokerProcess(data_dir)
    try:
        reader = await RawClient.connect(broker.host, broker.port)
        await reader.send(AdminRequest(request_id=2, body=DescribeTopic(name="crash")))
        description = (await reader.expect(AdminResponse)).body
        end_offsets = [p.end_offset for p in description.partitions]
        stored = await read_all(reader, end_offsets)
        await reader.close()
        assert broker.terminate() == 0
    finally:
        broker.close()
    missing = {value: place for value, place in acked.items() if stored.get(place) != value}
    assert not missing, f"{len(missing)} acked publishes lost or moved, e.g. {list(missing.items())[:3]}"
    assert len(set(stored.values())) == len(stored)  # and nothing stored twice
