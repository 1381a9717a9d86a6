"""Several Produces in flight per partition: order, the window's bound, resends after a break or a refusal."""

from __future__ import annotations

import asyncio

import pytest

from tests.client.helpers import ScriptedBroker, appended, close, open_client, values
from tidings.client import ReconnectPolicy
from tidings.errors import PublishError
from tidings.protocol import Produce, ProduceResult, Rejected
from tidings.records import read_header

FAST = {"reconnect": ReconnectPolicy(initial=0.001, maximum=0.01)}
SMALL = {"max_batch_records": 4, **FAST}  # four records fill a batch
RECORDS = [f"record-{i:02d}".encode() for i in range(12)]  # three full batches


def sequences(produces: list[Produce]) -> list[int]:
    return [read_header(p.batches[0]).base_sequence for p in produces]


async def receive_all(broker: ScriptedBroker, count: int) -> list[Produce]:
    return [await broker.receive(Produce) for _ in range(count)]


def refused(produce: Produce, code: str) -> ProduceResult:
    return ProduceResult(request_id=produce.request_id, results=(Rejected(code=code, message=code),))


async def test_batches_leave_without_waiting_for_answers_in_order_one_per_produce(listener):
    client, broker = await open_client(listener, **SMALL)
    pending = asyncio.ensure_future(client.publish_many("orders", RECORDS, key="k"))
    await broker.describe("orders")
    produces = await receive_all(broker, 3)  # all three before any answer
    assert [len(p.batches) for p in produces] == [1, 1, 1]
    assert [v for p in produces for v in values(p)] == RECORDS
    assert sequences(produces) == [0, 4, 8]
    for index, produce in enumerate(produces):
        broker.send(appended(produce, 100 + 4 * index))
    assert [r.offset for r in await pending] == list(range(100, 112))
    await close(client, broker)


async def test_the_window_holds_at_most_max_in_flight_produces(listener):
    client, broker = await open_client(listener, max_in_flight=2, **SMALL)
    pending = asyncio.ensure_future(client.publish_many("orders", RECORDS, key="k"))
    await broker.describe("orders")
    first, second = await receive_all(broker, 2)
    await broker.nothing()  # the third waits for room in the window
    broker.send(appended(first, 0))
    third = await broker.receive(Produce)
    assert sequences([first, second, third]) == [0, 4, 8]
    broker.send(appended(second, 4), appended(third, 8))
    assert [r.offset for r in await pending] == list(range(12))
    await close(client, broker)


async def test_a_batch_not_full_waits_for_the_window_to_empty_and_grows_meanwhile(listener):
    client, broker = await open_client(listener, **SMALL)
    full = asyncio.ensure_future(client.publish_many("orders", RECORDS[:4], key="k"))
    await broker.describe("orders")
    first = await broker.receive(Produce)
    small = [asyncio.ensure_future(client.publish("orders", r, key="k")) for r in RECORDS[4:6]]
    await asyncio.sleep(0.01)
    small.append(asyncio.ensure_future(client.publish("orders", RECORDS[6], key="k")))
    await broker.nothing()  # three records, not a full batch: they wait for the Produce in flight
    broker.send(appended(first, 0))
    grown = await broker.receive(Produce)
    assert values(grown) == RECORDS[4:7]  # one batch, grown while it waited
    broker.send(appended(grown, 4))
    await full
    assert [(await f).offset for f in small] == [4, 5, 6]
    await close(client, broker)


async def test_the_last_partial_batch_of_publish_many_leaves_with_the_full_ones(listener):
    client, broker = await open_client(listener, **SMALL)
    pending = asyncio.ensure_future(client.publish_many("orders", RECORDS[:6], key="k"))
    await broker.describe("orders")
    full, tail = await receive_all(broker, 2)  # no answer needed for the tail to leave
    assert (values(full), values(tail)) == (RECORDS[:4], RECORDS[4:6])
    broker.send(appended(full, 0), appended(tail, 4))
    assert [r.offset for r in await pending] == list(range(6))
    await close(client, broker)


async def test_after_a_break_the_whole_window_is_resent_in_order_byte_for_byte(listener):
    client, broker = await open_client(listener, **SMALL)
    pending = asyncio.ensure_future(client.publish_many("orders", RECORDS, key="k"))
    await broker.describe("orders")
    lost = await receive_all(broker, 3)
    broker.send(appended(lost[0], 0))  # the first is answered; the other two are not
    await asyncio.sleep(0.01)
    broker.drop()

    again = ScriptedBroker(await listener.accept())
    await again.handshake(producer_id=7, producer_epoch=0)
    resent = await receive_all(again, 2)
    assert [bytes(p.batches[0]) for p in resent] == [bytes(p.batches[0]) for p in lost[1:]]
    later = asyncio.ensure_future(client.publish("orders", b"after", key="k"))
    await again.nothing()  # new records only after the resent window
    again.send(appended(resent[0], 4, duplicate=True), appended(resent[1], 8))
    follow = await again.receive(Produce)
    assert sequences([follow]) == [12]
    again.send(appended(follow, 12))
    assert [r.offset for r in await pending] == list(range(12))
    assert (await later).offset == 12
    await close(client, again)


async def test_a_window_resent_under_a_new_producer_id_is_renumbered_in_order(listener):
    client, broker = await open_client(listener, **SMALL)
    pending = asyncio.ensure_future(client.publish_many("orders", RECORDS, key="k"))
    await broker.describe("orders")
    await receive_all(broker, 3)
    broker.drop()
    again = ScriptedBroker(await listener.accept())
    await again.handshake(producer_id=99, producer_epoch=0)  # the broker forgot us
    resent = await receive_all(again, 3)
    assert [read_header(p.batches[0]).producer_id for p in resent] == [99, 99, 99]
    assert sequences(resent) == [0, 4, 8]
    assert [v for p in resent for v in values(p)] == RECORDS
    again.send(*(appended(p, 4 * i) for i, p in enumerate(resent)))
    assert [r.offset for r in await pending] == list(range(12))
    await close(client, again)


async def test_batches_refused_only_for_the_gap_a_refusal_left_are_renumbered_and_resent(listener):
    client, broker = await open_client(listener, **SMALL)
    await_first = asyncio.gather(*(client.publish("orders", r, key="k") for r in RECORDS[:4]))
    await broker.describe("orders")
    first = await broker.receive(Produce)
    rest = asyncio.ensure_future(client.publish_many("orders", RECORDS[4:], key="k"))
    second, third = await receive_all(broker, 2)
    assert sequences([first, second, third]) == [0, 4, 8]
    broker.send(refused(first, "disk_full"))
    broker.send(refused(second, "out_of_order_sequence"), refused(third, "out_of_order_sequence"))
    again = await receive_all(broker, 2)  # the same records, numbered from the refused batch's base
    assert [values(p) for p in again] == [values(second), values(third)]
    assert sequences(again) == [0, 4]
    broker.send(appended(again[0], 0), appended(again[1], 4))
    assert [r.offset for r in await rest] == list(range(8))
    with pytest.raises(PublishError) as failed:
        await await_first
    assert failed.value.reason == "disk_full"
    later = asyncio.ensure_future(client.publish("orders", b"next", key="k"))
    follow = await broker.receive(Produce)
    assert sequences([follow]) == [8]
    broker.send(appended(follow, 8))
    assert (await later).offset == 8
    await close(client, broker)
