"""Scenario 1: kill -9 the broker at random moments during acked, idempotent publishing.

One idempotent producer (a raw client, so the test sees every frame)
publishes numbered single-record batches to a ``fsync=always`` broker with
``WINDOW`` Produce frames in flight. A killer sends SIGKILL after a random
delay, restarts the broker on the same port and data directory, and the
producer reconnects with its producer id and epoch and resends, in order,
every batch not acknowledged yet, with the same sequence numbers: what the
SDK does. At the end a consumer reads the partition from the start.

Figures: acknowledged records lost, reordered (read back out of sequence
order), duplicated (stored twice), and the restart-to-ready time.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from pathlib import Path
from typing import Any

from tests.reliability.harness import HOST, Broker, summary_ms
from tests.server.helpers import batch, delivered
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    Credit,
    Deliver,
    Earliest,
    Produce,
    ProducerClaim,
    ProduceResult,
    Subscribe,
    Subscribed,
)
from tidings.testing.raw import RawClient

WINDOW = 5  # the broker remembers the last 5 batches per producer: a resend never falls outside
TOPIC = "kill9"


class Producer:
    """Sequence-numbered batches; what is not acked yet is resent after each reconnect."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.claim = ProducerClaim()
        self.next_sequence = 0
        self.unacked: dict[int, bytes] = {}  # sequence -> value, in order
        self.acked: dict[int, int] = {}  # sequence -> offset
        self.duplicate_answers = 0
        self.sent = 0

    async def connect(self) -> RawClient:
        while True:
            try:
                client = await RawClient.connect(HOST, self.port, producer=self.claim, timeout=2.0)
            except (OSError, TimeoutError, ConnectionError):
                await asyncio.sleep(0.02)
                continue
            assert client.welcome is not None
            me = (client.welcome.producer_id, client.welcome.producer_epoch)
            assert me[0] is not None and me[1] is not None
            self.claim = ProducerClaim(producer_id=me[0], producer_epoch=me[1])
            return client

    def frame(self, sequence: int, value: bytes) -> Produce:
        assert self.claim.producer_id is not None and self.claim.producer_epoch is not None
        data = batch(value, producer=(self.claim.producer_id, self.claim.producer_epoch), sequence=sequence)
        self.sent += 1
        return Produce(request_id=sequence + 1, topic=TOPIC, batches=(data,), partition=0)

    async def publish_until_killed(self, client: RawClient, stop: asyncio.Event) -> None:
        """Resend the unacked backlog, keep ``WINDOW`` in flight until the connection dies or ``stop``.

        After ``stop`` nothing new is sent and every batch in flight is awaited.
        """
        in_flight: set[int] = set()
        try:
            for sequence, value in sorted(self.unacked.items()):
                await client.send(self.frame(sequence, value))
                in_flight.add(sequence)
            while in_flight or not stop.is_set():
                while len(in_flight) < WINDOW and not stop.is_set():
                    sequence = self.next_sequence
                    self.next_sequence += 1
                    value = b"v%d" % sequence
                    self.unacked[sequence] = value
                    await client.send(self.frame(sequence, value))
                    in_flight.add(sequence)
                result = await client.expect(ProduceResult, timeout=10)
                sequence = result.request_id - 1
                (appended,) = result.results
                assert isinstance(appended, Appended), appended
                self.duplicate_answers += appended.duplicate
                self.acked[sequence] = appended.base_offset
                self.unacked.pop(sequence, None)
                in_flight.discard(sequence)
        except (ConnectionError, OSError):
            return
        finally:
            await client.close()


async def read_back(port: int, end: int) -> list[tuple[int, bytes]]:
    client = await RawClient.connect(HOST, port)
    await client.send(
        Subscribe(request_id=1, subscription_id=1, topic=TOPIC, group="audit", start=Earliest(), credits=end)
    )
    await client.expect(Subscribed)
    out: list[tuple[int, bytes]] = []
    while len(out) < end:
        frame = await client.expect(Deliver, timeout=10)
        out.extend((record.offset, bytes(record.value or b"")) for record in delivered(frame))
    await client.send(Credit(subscription_id=1, credits=1))
    await client.close()
    return out


async def run(kills: int, workdir: Path, *, seed: int | None = None) -> dict[str, Any]:
    rng = random.Random(seed)
    broker = Broker(workdir, fsync="always").start()
    try:
        admin = await RawClient.connect(HOST, broker.port)
        await admin.send(AdminRequest(request_id=1, body=CreateTopic(name=TOPIC, partitions=1)))
        await admin.expect(AdminResponse, request_id=1)
        await admin.close()
        producer = Producer(broker.port)
        loop = asyncio.get_running_loop()
        for _ in range(kills):
            client = await producer.connect()
            stop = asyncio.Event()
            task = loop.create_task(producer.publish_until_killed(client, stop))
            await asyncio.sleep(rng.uniform(0.005, 0.15))  # a random moment of the publishing
            broker.kill()
            await task
            broker.start()
        drained = asyncio.Event()
        drained.set()  # a last round on the healthy broker: resend the backlog, await every answer
        await producer.publish_until_killed(await producer.connect(), drained)
        assert not producer.unacked, producer.unacked
        end = producer.next_sequence
        stored = await read_back(broker.port, end)
        values = [value for _, value in stored]
        sequences = [int(value[1:]) for value in values]
        lost = sum(1 for sequence in producer.acked if b"v%d" % sequence not in set(values))
        duplicates = len(values) - len(set(values))
        reordered = sum(1 for a, b in itertools.pairwise(sequences) if b <= a)
        wrong_offsets = sum(1 for offset, value in stored if producer.acked.get(int(value[1:])) != offset)
        return {
            "kills": kills,
            "acked": len(producer.acked),
            "stored": len(values),
            "lost": lost,
            "reordered": reordered,
            "duplicates": duplicates,
            "acked_at_other_offset": wrong_offsets,
            "duplicate_answers": producer.duplicate_answers,
            "recovery": summary_ms(broker.restarts),
        }
    finally:
        broker.stop()
