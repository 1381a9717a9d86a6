"""Scenario 4b: a consumer group whose members and broker are killed over and over.

A producer publishes numbered events to a 2-partition topic, every tenth a
"poison" event that its handler always fails (nack, ``max_deliveries=3``).
Three raw-client members of one partitioned group ack what they handle and
nack the poison, with delivery-tagged settlements. Meanwhile a chaos loop,
``rounds`` times, either aborts a member's socket (and starts a new member)
or SIGKILLs the broker and restarts it (every member reconnects). A watcher
polls ``DescribeGroup`` and records each partition's committed offset.

Figures: events never delivered (must be 0), poison events missing from the
dead-letter topic (0), committed offsets that went backwards while a broker
ran (0), and, across kill -9, how far the committed offset fell back to the
last saved progress (at least once: those acks are redelivered, see
docs/guarantees.md, Group progress).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
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
    DescribeGroup,
    Earliest,
    GroupDescription,
    Nack,
    PartitionRanges,
    Produce,
    ProduceResult,
    Subscribe,
    Subscribed,
    coalesce,
)
from tidings.testing.raw import RawClient

TOPIC = "work"
GROUP = "workers"
DLQ = f"{TOPIC}.dlq.{GROUP}"
PARTITIONS = 2
MEMBERS = 3
EVENTS_PER_ROUND = 60
CREDITS = 20


def is_poison(value: bytes) -> bool:
    return value.startswith(b"poison")


async def connect(port: int) -> RawClient:
    """Connect, retrying while the broker restarts."""
    for _ in range(500):
        try:
            return await RawClient.connect(HOST, port, timeout=2.0)
        except (OSError, TimeoutError, ConnectionError):
            await asyncio.sleep(0.02)
    raise TimeoutError(f"no broker on port {port}")


class Member:
    """One group member: acks every event it handles, nacks the poison; ``handled`` is shared."""

    def __init__(self, port: int, handled: set[bytes]) -> None:
        self.port = port
        self.handled = handled
        self.task: asyncio.Task[None] | None = None
        self.client: RawClient | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:  # a broker restart ends the connection: reconnect and resubscribe
            try:
                self.client = client = await connect(self.port)
                await client.send(
                    Subscribe(
                        request_id=1, subscription_id=1, topic=TOPIC, group=GROUP, start=Earliest(),
                        credits=CREDITS, ack_deadline_ms=2_000, max_deliveries=3,
                    )
                )  # fmt: skip
                await client.expect(Subscribed, timeout=10)
                while True:
                    frame = await client.expect(Deliver, timeout=3600)
                    await self._handle(client, frame)
            except (ConnectionError, OSError, TimeoutError):
                if self.client is not None:
                    await self.client.close()
                await asyncio.sleep(0.01)

    async def _handle(self, client: RawClient, frame: Deliver) -> None:
        acks: list[int] = []
        nacks: list[int] = []
        deliveries = {}
        for span in frame.spans:
            for offset in range(span.first, span.last + 1):
                deliveries[offset] = span.delivery
        for record in delivered(frame):
            value = bytes(record.value or b"")
            if is_poison(value):
                nacks.append(record.offset)
            else:
                self.handled.add(value)
                acks.append(record.offset)
        for offsets, make in ((acks, "ack"), (nacks, "nack")):
            by_delivery: dict[int, list[int]] = {}
            for offset in offsets:
                by_delivery.setdefault(deliveries[offset], []).append(offset)
            groups = tuple(
                PartitionRanges(topic=TOPIC, partition=frame.partition, ranges=coalesce(o), delivery=d)
                for d, o in sorted(by_delivery.items())
            )
            if not groups:
                continue
            if make == "ack":
                await client.send(Ack(subscription_id=1, offsets=groups))
            else:
                await client.send(Nack(subscription_id=1, offsets=groups, delay_ms=0, reason="poison"))
        await client.send(Credit(subscription_id=1, credits=len(acks) + len(nacks)))

    def crash(self) -> None:
        """Abort the socket, as a killed process would: no Unsubscribe, no last acks."""
        if self.client is not None:
            self.client.writer.transport.abort()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        if self.client is not None:
            await self.client.close()


class Watcher:
    """Polls the group's committed offsets; counts any that move backwards."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.last: dict[int, int] = {}
        self.backwards_live = 0  # while one broker process ran: a bug
        self.fallbacks: list[int] = []  # after a kill -9: the acks of the last save interval
        self.epoch = 0
        self._seen_epoch = 0

    async def run(self, stop: asyncio.Event) -> None:
        request = 0
        while not stop.is_set():
            try:
                client = await connect(self.port)
                while not stop.is_set():
                    request += 1
                    await client.send(AdminRequest(request_id=request, body=DescribeGroup(group=GROUP)))
                    response = await client.expect(AdminResponse, request_id=request, timeout=5)
                    if isinstance(response.body, GroupDescription):
                        self._note(response.body)
                    await asyncio.sleep(0.02)
            except (ConnectionError, OSError, TimeoutError):
                await asyncio.sleep(0.01)

    def _note(self, description: GroupDescription) -> None:
        restarted = self._seen_epoch != self.epoch
        self._seen_epoch = self.epoch
        for part in description.partitions:
            before = self.last.get(part.partition)
            if before is not None and part.committed < before:
                if restarted:
                    self.fallbacks.append(before - part.committed)
                else:
                    self.backwards_live += 1
            self.last[part.partition] = part.committed


async def publish(port: int, values: list[bytes], first_request: int) -> None:
    """Publish ``values`` one by one, retrying each until acked (a restart may drop the first try).

    Plain (not idempotent) producer: a retry may store an event twice, which
    at-least-once consumers tolerate and this scenario does not count.
    """
    request = first_request
    for value in values:
        while True:
            try:
                client = await connect(port)
                request += 1
                await client.send(
                    Produce(request_id=request, topic=TOPIC, batches=(batch(value, key=value),))
                )
                await client.expect(ProduceResult, request_id=request, timeout=10)
                await client.close()
                break
            except (ConnectionError, OSError, TimeoutError):
                await asyncio.sleep(0.02)


async def read_dlq(port: int, timeout: float) -> set[bytes]:
    client = await connect(port)
    await client.send(
        Subscribe(
            request_id=1, subscription_id=1, topic=DLQ, group="audit", start=Earliest(), credits=100_000
        )
    )
    await client.expect(Subscribed)
    found: set[bytes] = set()
    with contextlib.suppress(TimeoutError):
        while True:
            frame = await client.expect(Deliver, timeout=timeout)
            found.update(bytes(r.value or b"") for r in delivered(frame))
    await client.close()
    return found


async def run(rounds: int, workdir: Path, *, seed: int | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    broker = Broker(workdir, fsync="always").start()
    handled: set[bytes] = set()
    members: list[Member] = []
    stop = asyncio.Event()
    watcher = Watcher(broker.port)
    loop = asyncio.get_running_loop()
    watching = loop.create_task(watcher.run(stop))
    try:
        admin = await connect(broker.port)
        await admin.send(AdminRequest(request_id=1, body=CreateTopic(name=TOPIC, partitions=PARTITIONS)))
        await admin.expect(AdminResponse, request_id=1)
        await admin.close()
        for _ in range(MEMBERS):
            member = Member(broker.port, handled)
            member.start()
            members.append(member)
        values = [
            (b"poison-%d" if n % 10 == 9 else b"event-%d") % n for n in range(rounds * EVENTS_PER_ROUND)
        ]
        member_kills = broker_kills = 0
        for index in range(rounds):
            chunk = values[index * EVENTS_PER_ROUND : (index + 1) * EVENTS_PER_ROUND]
            publishing = loop.create_task(publish(broker.port, chunk, 1_000_000 * (index + 1)))
            await asyncio.sleep(rng.uniform(0.05, 0.3))
            if rng.random() < 0.5:
                victim = rng.randrange(len(members))
                members[victim].crash()
                await members[victim].stop()
                members[victim] = Member(broker.port, handled)
                members[victim].start()
                member_kills += 1
            else:
                broker.kill()
                watcher.epoch += 1
                broker.start()
                broker_kills += 1
            await publishing
        expected = {v for v in values if not is_poison(v)}
        poison = {v for v in values if is_poison(v)}
        deadline = loop.time() + 60
        while not expected <= handled and loop.time() < deadline:
            await asyncio.sleep(0.05)
        dead = await read_dlq(broker.port, timeout=1.0)
        deadline = loop.time() + 30
        while not poison <= dead and loop.time() < deadline:
            dead |= await read_dlq(broker.port, timeout=0.5)
        return {
            "rounds": rounds,
            "member_kills": member_kills,
            "broker_kills": broker_kills,
            "events": len(expected),
            "poison_events": len(poison),
            "never_delivered": len(expected - handled),
            "poison_missing_from_dlq": len(poison - dead),
            "committed_backwards_live": watcher.backwards_live,
            "committed_fallbacks_after_kill9": len(watcher.fallbacks),
            "max_fallback_offsets": max(watcher.fallbacks, default=0),
        }
    finally:
        stop.set()
        for member in members:
            await member.stop()
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watching
        broker.stop()
