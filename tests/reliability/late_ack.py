"""Scenario 4a: a late ack must not settle the delivery that replaced it.

Over real sockets to a broker process, for each round: one message is
delivered (delivery d) to a member whose handler "overruns" the ack
deadline, so the broker redelivers it (d + 1) to the same member. Only then
does the ack for d arrive. The member nacks d + 1 at once: if the late ack
had settled d + 1, the message would never come back. A third delivery
(d + 2) proves it did not. Then the message is acked properly.

Figures: ``late_acks_accepted`` (must be 0), and ``untagged_acks_settle``:
a client that predates the delivery tag (``delivery=0``) keeps the old rule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.reliability.harness import HOST, Broker
from tests.server.helpers import batch, delivered
from tidings.protocol import (
    Ack,
    AdminRequest,
    AdminResponse,
    CreateTopic,
    Credit,
    Deliver,
    Earliest,
    Nack,
    PartitionRanges,
    Produce,
    ProduceResult,
    Subscribe,
    Subscribed,
    coalesce,
)
from tidings.testing.raw import RawClient

DEADLINE_MS = 150


def tagged(offset: int, delivery: int) -> tuple[PartitionRanges, ...]:
    return (PartitionRanges(topic="late", partition=0, ranges=coalesce([offset]), delivery=delivery),)


async def next_delivery(client: RawClient, timeout: float = 5.0) -> tuple[int, int]:
    """(offset, delivery) of the next single delivered message."""
    frame = await client.expect(Deliver, timeout=timeout)
    (record,) = delivered(frame)
    return record.offset, frame.spans[0].delivery


async def run(rounds: int, workdir: Path) -> dict[str, Any]:
    broker = Broker(workdir).start()
    try:
        client = await RawClient.connect(HOST, broker.port)
        await client.send(AdminRequest(request_id=1, body=CreateTopic(name="late", partitions=1)))
        await client.expect(AdminResponse, request_id=1)
        await client.send(
            Subscribe(
                request_id=2, subscription_id=1, topic="late", group="g", start=Earliest(),
                credits=10, ack_deadline_ms=DEADLINE_MS,
            )
        )  # fmt: skip
        await client.expect(Subscribed)
        accepted = 0
        for n in range(rounds):
            await client.send(Produce(request_id=100 + n, topic="late", batches=(batch(b"m%d" % n),)))
            await client.expect(ProduceResult, request_id=100 + n)
            offset, first = await next_delivery(client)
            again, second = await next_delivery(client)  # the deadline passed: redelivered to us
            assert (again, second) == (offset, first + 1), (again, second, offset, first)
            await client.send(Ack(subscription_id=1, offsets=tagged(offset, first)))  # the late ack
            await client.send(Nack(subscription_id=1, offsets=tagged(offset, second), delay_ms=0))
            try:
                third, count = await next_delivery(client, timeout=DEADLINE_MS / 1000 * 10)
            except TimeoutError:
                accepted += 1  # the late ack settled the newer delivery: the nack found nothing
                continue
            assert (third, count) == (offset, second + 1)
            await client.send(Ack(subscription_id=1, offsets=tagged(offset, count)))
            await client.send(Credit(subscription_id=1, credits=3))  # a raw client owns its credits
        # An untagged ack (a client before the tag) still settles whatever delivery is current.
        await client.send(Produce(request_id=99, topic="late", batches=(batch(b"old"),)))
        await client.expect(ProduceResult, request_id=99)
        offset, first = await next_delivery(client)
        untagged = (PartitionRanges(topic="late", partition=0, ranges=coalesce([offset])),)
        await client.send(Ack(subscription_id=1, offsets=untagged))
        try:
            await next_delivery(client, timeout=DEADLINE_MS / 1000 * 4)
            untagged_settles = False
        except TimeoutError:
            untagged_settles = True
        await client.close()
        return {
            "rounds": rounds,
            "late_acks_sent": rounds,
            "late_acks_accepted": accepted,
            "untagged_acks_settle": untagged_settles,
        }
    finally:
        broker.stop()
