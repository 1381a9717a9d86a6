"""Idempotent producers over a socket: a retried batch gets its original offsets and is stored once."""

from __future__ import annotations

from tests.server.helpers import BrokerProcess, batch
from tidings.protocol import Appended, Produce, ProducerClaim, ProduceResult, Rejected
from tidings.records import iter_batches
from tidings.storage import PartitionLog
from tidings.testing.raw import RawClient


async def send(client, request_id, topic, data, partition=None):
    await client.send(Produce(request_id=request_id, topic=topic, batches=(data,), partition=partition))
    (result,) = (await client.expect(ProduceResult, request_id=request_id)).results
    return result


def stored_batches(data_dir, topic="orders", partition=0):
    with PartitionLog(str(data_dir / "topics" / topic / str(partition))) as log:
        data = log.read(0, 1 << 24).data
    return [header for _, header in iter_batches(data)]


async def test_same_batch_twice_is_stored_once(broker, connect):
    client = await connect(producer=ProducerClaim())
    me = (client.welcome.producer_id, client.welcome.producer_epoch)
    first = await send(client, 1, "orders", batch(b"a", b"b", producer=me, sequence=0))
    again = await send(client, 2, "orders", batch(b"a", b"b", producer=me, sequence=0))
    assert isinstance(again, Appended) and again.duplicate
    assert (again.base_offset, again.last_offset, again.append_time) == (
        first.base_offset,
        first.last_offset,
        first.append_time,
    )
    following = await send(client, 3, "orders", batch(b"c", producer=me, sequence=2))
    assert following.base_offset == 2 and not following.duplicate
    assert broker.core.topics.log("orders", 0).end_offset == 3


async def test_sequence_gap_and_stale_sequence_are_rejected(connect):
    client = await connect(producer=ProducerClaim())
    me = (client.welcome.producer_id, client.welcome.producer_epoch)
    for n in range(7):
        await send(client, n + 1, "orders", batch(b"x", producer=me, sequence=n))
    gap = await send(client, 20, "orders", batch(b"x", producer=me, sequence=9))
    assert isinstance(gap, Rejected) and gap.code == "out_of_order_sequence"
    assert "expected 7" in gap.message
    old = await send(client, 21, "orders", batch(b"x", producer=me, sequence=0))
    assert isinstance(old, Rejected) and old.code == "duplicate_sequence"
    recent = await send(client, 22, "orders", batch(b"x", producer=me, sequence=3))
    assert isinstance(recent, Appended) and recent.duplicate and recent.base_offset == 3


async def test_batch_with_a_producer_id_the_session_did_not_claim(connect):
    client = await connect()
    result = await send(client, 1, "orders", batch(b"x", producer=(12345, 0), sequence=0))
    assert isinstance(result, Rejected) and result.code == "unknown_producer"


async def test_retry_after_reconnect_with_a_producer_claim(broker, connect, data_dir):
    first = await connect(producer=ProducerClaim())
    me = (first.welcome.producer_id, first.welcome.producer_epoch)
    original = await send(first, 1, "orders", batch(b"only once", producer=me, sequence=0))
    await first.close()  # the ack is "lost": the producer retries on a new connection

    second = await connect(producer=ProducerClaim(producer_id=me[0], producer_epoch=me[1]))
    assert (second.welcome.producer_id, second.welcome.producer_epoch) == me
    retried = await send(second, 1, "orders", batch(b"only once", producer=me, sequence=0))
    assert retried.duplicate and retried.base_offset == original.base_offset
    assert broker.core.topics.log("orders", 0).end_offset == 1


async def test_a_newer_claim_fences_the_older_session(connect):
    old = await connect(producer=ProducerClaim())
    me = (old.welcome.producer_id, old.welcome.producer_epoch)
    await connect(producer=ProducerClaim(producer_id=me[0], producer_epoch=me[1]))
    fenced = await send(old, 1, "orders", batch(b"zombie", producer=me, sequence=0))
    assert isinstance(fenced, Rejected) and fenced.code == "producer_fenced"


async def test_idempotent_keyless_batches_stay_on_one_partition(start_broker, connect):
    server = await start_broker(default_partitions=4)
    client = await connect(server, producer=ProducerClaim())
    me = (client.welcome.producer_id, client.welcome.producer_epoch)
    results = [await send(client, n + 1, "wide", batch(b"x", producer=me, sequence=n)) for n in range(6)]
    assert len({r.partition for r in results}) == 1
    assert all(isinstance(r, Appended) and not r.duplicate for r in results)


async def test_state_survives_a_clean_restart(start_broker, data_dir):
    server = await start_broker()
    client = await RawClient.connect(*server.address, producer=ProducerClaim())
    me = (client.welcome.producer_id, client.welcome.producer_epoch)
    original = await send(client, 1, "orders", batch(b"x", producer=me, sequence=0))
    await client.close()
    await server.stop()
    assert (data_dir / "topics" / "orders" / "0" / "producer-snapshot").exists()

    server = await start_broker()
    client = await RawClient.connect(
        *server.address, producer=ProducerClaim(producer_id=me[0], producer_epoch=me[1])
    )
    retried = await send(client, 1, "orders", batch(b"x", producer=me, sequence=0))
    await client.close()
    assert retried.duplicate and retried.base_offset == original.base_offset
    assert len(stored_batches(data_dir)) == 1 or server.core.topics.log("orders", 0).end_offset == 1


async def test_retry_after_kill_9_and_restart(data_dir):
    """The broker dies (SIGKILL, no snapshot written) between the append and the retry."""
    process = BrokerProcess(data_dir)
    try:
        client = await RawClient.connect(process.host, process.port, producer=ProducerClaim())
        me = (client.welcome.producer_id, client.welcome.producer_epoch)
        originals = [
            await send(client, n + 1, "orders", batch(b"v%d" % n, producer=me, sequence=n)) for n in range(3)
        ]
        await client.close()
        process.kill()
    finally:
        process.close()
    assert not (data_dir / "topics" / "orders" / "0" / "producer-snapshot").exists()

    process = BrokerProcess(data_dir)
    try:
        claim = ProducerClaim(producer_id=me[0], producer_epoch=me[1])
        client = await RawClient.connect(process.host, process.port, producer=claim)
        retried = await send(client, 1, "orders", batch(b"v2", producer=me, sequence=2))
        following = await send(client, 2, "orders", batch(b"v3", producer=me, sequence=3))
        await client.close()
        assert process.terminate() == 0
    finally:
        process.close()
    assert retried.duplicate and retried.base_offset == originals[2].base_offset
    assert following.base_offset == 3 and not following.duplicate
    headers = stored_batches(data_dir)
    assert [h.base_sequence for h in headers] == [0, 1, 2, 3]  # exactly one copy of each
