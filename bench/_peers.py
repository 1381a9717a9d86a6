"""The systems bench/e2e.py measures, each driven the way its users are told to drive it.

Every peer implements the same three workloads with its best-practice Python
client and settings (written into the results as ``settings``):

* ``publish(topic, payloads)``: durable publish of every payload, with many
  publishes outstanding (the clients' own pipelining), returning when every
  one is acknowledged;
* ``consume(topic, count)``: read ``count`` pre-published events and
  acknowledge each one, as a consumer group member;
* ``latency(topic, rate, seconds, size)``: publish at a fixed rate while a
  consumer receives; each event carries its send time, and the consumer
  records ``receive - send`` (one process, one clock).

Peers that need a server start a private one (``tidings.testing.servers``:
free loopback port, temporary directory, stopped by PID); RabbitMQ, which
cannot be started privately here, uses the machine's service on 5672.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import struct
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aio_pika
import nats
import redis.asyncio as aioredis
from nats.js.api import DeliverPolicy

import tidings
from tidings.testing import servers

STAMP = struct.Struct("<d")  # send time (perf_counter) at the front of each latency payload
WINDOW = 1000  # outstanding publishes per producer, for every peer
MAX_OUTSTANDING = 20_000  # fixed-rate runs: a peer this far behind is saturated, not measured


class Peer(Protocol):
    name: str
    settings: str

    async def start(self, directory: Path) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None: ...
    async def consume(self, topic: str, count: int) -> None: ...
    async def latency(self, topic: str, rate: int, seconds: float, size: int) -> list[float]: ...


def quiet_heap() -> None:
    """Collect, then freeze what this process holds, before a latency run, for every system alike.

    This process keeps every result so far; a full collection of them (tens of
    ms) landing inside one system's two-second run would be that system's 99th
    percentile. The broker does the same after its start-up (``tidings broker``).
    """
    gc.collect()
    gc.freeze()


def stamped(size: int) -> bytes:
    return STAMP.pack(time.perf_counter()) + b"x" * max(0, size - STAMP.size)


def elapsed_since(payload: bytes) -> float:
    return time.perf_counter() - STAMP.unpack_from(payload)[0]


async def paced(rate: int, seconds: float, size: int, send: Any) -> int:
    """Call ``send(payload)`` ``rate`` times a second for ``seconds``, on schedule.

    Each payload carries the time it was *due*, not the time it went out, so
    a load generator (or client) that falls behind shows up as latency
    instead of hiding it (no coordinated omission). Nothing here waits for
    an ack: publishes are fire-and-forget, at most ``MAX_OUTSTANDING`` in
    flight as a safety net, and all are awaited at the end.
    """
    total = int(rate * seconds)
    filler = b"x" * max(0, size - STAMP.size)
    start = time.perf_counter()
    outstanding = 0
    room = asyncio.Event()
    failures: list[BaseException] = []

    def done(future: asyncio.Future[Any]) -> None:
        nonlocal outstanding
        outstanding -= 1
        if not future.cancelled() and future.exception() is not None:
            failures.append(future.exception())  # type: ignore[arg-type]
        room.set()

    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # uvloop's timers have millisecond resolution and may fire early: never stamp a time
        # before the real send, or a fast peer would show a negative latency
        future = asyncio.ensure_future(send(STAMP.pack(max(due, time.perf_counter())) + filler))
        outstanding += 1
        future.add_done_callback(done)
        while outstanding >= MAX_OUTSTANDING:
            room.clear()
            await room.wait()
    while outstanding:
        room.clear()
        await room.wait()
    if failures:
        raise failures[0]
    return total


async def saturated(count: int, size: int, send: Any) -> int:
    """Send ``count`` stamped payloads as fast as the client takes them, ``WINDOW`` outstanding."""
    filler = b"x" * max(0, size - STAMP.size)
    await windowed(send(STAMP.pack(time.perf_counter()) + filler) for _ in range(count))
    return count


async def windowed(awaitables: Any, window: int = WINDOW) -> None:
    """Run publishes with at most ``window`` outstanding; raises the first failure.

    Counts completions with a done-callback instead of ``asyncio.wait`` on the
    whole window, which re-registers a callback on every outstanding future
    each time one completes and, at a window of 1000, cost the load generator
    more than some of the clients it measures.
    """
    outstanding = 0
    room = asyncio.Event()
    failures: list[BaseException] = []

    def done(future: asyncio.Future[Any]) -> None:
        nonlocal outstanding
        outstanding -= 1
        if not future.cancelled() and future.exception() is not None:
            failures.append(future.exception())  # type: ignore[arg-type]
        if outstanding < window:
            room.set()

    for awaitable in awaitables:
        future = asyncio.ensure_future(awaitable)
        outstanding += 1
        future.add_done_callback(done)
        if outstanding >= window:
            room.clear()
            await room.wait()
        if failures:
            raise failures[0]
    while outstanding:
        room.clear()
        await room.wait()
    if failures:
        raise failures[0]


class TidingsPeer:
    def __init__(self, fsync: str = "always", *, batch_api: bool = False) -> None:
        how = (
            f"client.publish_many, chunks of {WINDOW}"
            if batch_api
            else f"client.publisher(topic).publish in a loop, {WINDOW} outstanding"
        )
        self.settings = (
            f"tidings broker, fsync={fsync} (group commit); tidings.connect, {how}; "
            f"consume: client.subscribe, prefetch {WINDOW}, message.ack() per message"
        )
        self.name = "tidings (publish_many)" if batch_api else "tidings"
        self.batch_api = batch_api
        self.fsync = fsync
        self.server: servers.ServerProcess | None = None
        self.client: Any = None

    async def start(self, directory: Path) -> None:
        self.server = await asyncio.to_thread(servers.start_broker, directory, fsync=self.fsync)
        self.client = tidings.connect(url=self.server.url, service="bench")
        await self.client.__aenter__()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.__aexit__(None, None, None)
        if self.server is not None:
            self.server.stop()

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        if self.batch_api:
            for start in range(0, len(payloads), WINDOW):
                await self.client.publish_many(topic, payloads[start : start + WINDOW])
            return
        await self.client.publish(topic, payloads[0])  # learn the topic, as a service does once
        publish = self.client.publisher(topic).publish
        await windowed(publish(payload) for payload in payloads[1:])

    async def consume(self, topic: str, count: int) -> None:
        sub = await self.client.subscribe(
            topic, group=f"g-{uuid.uuid4().hex[:8]}", start="earliest", prefetch=WINDOW
        )
        seen = 0
        async for message in sub:
            await message.ack()
            seen += 1
            if seen >= count:
                break
        await sub.close()

    async def latency(self, topic: str, rate: int, seconds: float, size: int) -> list[float]:
        # prefetch as the settings say and as the peers have (JetStream's max_ack_pending, COUNT,
        # qos): with the default 100, a consumer's rate is 100 per credit round trip, which at
        # 50,000/s is under what a slow hour's round trip allows.
        sub = await self.client.subscribe(
            topic, group=f"lat-{uuid.uuid4().hex[:8]}", start="latest", prefetch=WINDOW
        )
        samples: list[float] = []
        total = int(rate * seconds)

        async def receive() -> None:
            async for message in sub:
                samples.append(elapsed_since(message.data))
                await message.ack()
                if len(samples) >= total:
                    return

        receiver = asyncio.ensure_future(receive())
        await asyncio.sleep(0.2)
        publisher = self.client.publisher(topic)
        await paced(rate, seconds, size, publisher.publish)
        await asyncio.wait_for(receiver, 30)
        await sub.close()
        return samples

    # -- Tidings-only workloads (e2e.py's "more workloads" tables) ----------------------------

    async def consume_groups(self, topic: str, count: int, groups: int) -> None:
        """Fan-out: ``groups`` groups, each on its own connection, each reads and acks all ``count``."""
        assert self.server is not None
        clients = [tidings.connect(url=self.server.url, service=f"fan{i}") for i in range(groups)]
        for client in clients:
            await client.__aenter__()
        try:

            async def one(client: Any) -> None:
                group = f"f-{uuid.uuid4().hex[:8]}"
                sub = await client.subscribe(topic, group=group, start="earliest", prefetch=WINDOW)
                seen = 0
                async for message in sub:
                    await message.ack()
                    seen += 1
                    if seen >= count:
                        break
                await sub.close()

            await asyncio.gather(*(one(client) for client in clients))
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)

    async def consume_members(self, topic: str, count: int, members: int) -> None:
        """Competing consumers: ``members`` connections in one shared-mode group split ``count``."""
        assert self.server is not None
        clients = [tidings.connect(url=self.server.url, service=f"member{i}") for i in range(members)]
        for client in clients:
            await client.__aenter__()
        group = f"m-{uuid.uuid4().hex[:8]}"
        seen = 0
        finished = asyncio.Event()
        try:

            async def one(client: Any) -> None:
                nonlocal seen
                sub = await client.subscribe(
                    topic, group=group, start="earliest", mode="shared", prefetch=WINDOW // members
                )
                try:
                    async for message in sub:
                        await message.ack()
                        seen += 1
                        if seen >= count:
                            finished.set()
                            break
                finally:
                    await sub.close()

            tasks = [asyncio.ensure_future(one(client)) for client in clients]
            await asyncio.wait_for(finished.wait(), 120)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            for client in clients:
                await client.__aexit__(None, None, None)

    async def latency_saturated(self, topic: str, count: int, size: int) -> list[float]:
        """End-to-end latency while publishing as fast as the client takes events."""
        sub = await self.client.subscribe(
            topic, group=f"sat-{uuid.uuid4().hex[:8]}", start="latest", prefetch=WINDOW
        )
        samples: list[float] = []

        async def receive() -> None:
            async for message in sub:
                samples.append(elapsed_since(message.data))
                await message.ack()
                if len(samples) >= count:
                    return

        receiver = asyncio.ensure_future(receive())
        await asyncio.sleep(0.2)
        await saturated(count, size, self.client.publisher(topic).publish)
        await asyncio.wait_for(receiver, 60)
        await sub.close()
        return samples


class NatsPeer:
    name = "nats-jetstream"

    def __init__(self, sync_always: bool = False) -> None:
        sync = "sync_interval: always" if sync_always else "default sync (every 2 min)"
        self.settings = (
            f"nats-server JetStream, file storage, {sync}; nats-py, {WINDOW} async acks outstanding"
        )
        self.name = "nats-jetstream" + (" (sync always)" if sync_always else "")
        self.sync_always = sync_always
        self.server: servers.ServerProcess | None = None
        self.nc: Any = None
        self.js: Any = None

    async def start(self, directory: Path) -> None:
        self.server = await asyncio.to_thread(servers.start_nats, directory, sync_always=self.sync_always)
        self.nc = await nats.connect(self.server.url)
        self.js = self.nc.jetstream()

    async def stop(self) -> None:
        if self.nc is not None:
            await self.nc.close()
        if self.server is not None:
            self.server.stop()

    async def _stream(self, topic: str) -> None:
        with contextlib.suppress(Exception):
            await self.js.add_stream(name=topic.replace(".", "_"), subjects=[topic])

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        await self._stream(topic)
        await windowed(self.js.publish(topic, payload) for payload in payloads)

    async def consume(self, topic: str, count: int) -> None:
        durable = f"g{uuid.uuid4().hex[:8]}"
        sub = await self.js.pull_subscribe(topic, durable=durable)
        seen = 0
        while seen < count:
            for message in await sub.fetch(min(1000, count - seen), timeout=5):
                await message.ack()
                seen += 1
        await sub.unsubscribe()

    async def latency(self, topic: str, rate: int, seconds: float, size: int) -> list[float]:
        await self._stream(topic)
        samples: list[float] = []
        total = int(rate * seconds)
        done = asyncio.Event()

        async def on_message(message: Any) -> None:
            samples.append(elapsed_since(message.data))
            await message.ack()
            if len(samples) >= total:
                done.set()

        sub = await self.js.subscribe(
            topic, durable=f"l{uuid.uuid4().hex[:8]}", cb=on_message, deliver_policy=DeliverPolicy.NEW
        )
        await asyncio.sleep(0.2)
        await paced(rate, seconds, size, lambda payload: self.js.publish(topic, payload))
        await asyncio.wait_for(done.wait(), 30)
        await sub.unsubscribe()
        return samples


class RedisPeer:
    def __init__(self, appendfsync: str = "everysec") -> None:
        self.name = f"redis-streams ({appendfsync})"
        self.settings = (
            f"redis-server AOF appendfsync={appendfsync}; redis-py asyncio (blocking pool of 8), "
            f"pipelines of {WINDOW} XADD, XREADGROUP COUNT 1000 + pipelined XACK"
        )
        self.appendfsync = appendfsync
        self.server: servers.ServerProcess | None = None
        self.redis: Any = None

    async def start(self, directory: Path) -> None:
        self.server = await asyncio.to_thread(servers.start_redis, directory, appendfsync=self.appendfsync)
        # redis-py does not multiplex: each concurrent command holds a connection. A small
        # blocking pool queues commands instead of opening hundreds of sockets mid-run.
        pool = aioredis.BlockingConnectionPool.from_url(self.server.url, max_connections=8, timeout=30)
        self.redis = aioredis.Redis(connection_pool=pool)

    async def stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        if self.server is not None:
            self.server.stop()

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        for start in range(0, len(payloads), WINDOW):
            pipe = self.redis.pipeline(transaction=False)
            for payload in payloads[start : start + WINDOW]:
                pipe.xadd(topic, {b"d": payload})
            await pipe.execute()

    async def consume(self, topic: str, count: int) -> None:
        group = f"g{uuid.uuid4().hex[:8]}"
        await self.redis.xgroup_create(topic, group, id="0", mkstream=True)
        seen = 0
        while seen < count:
            response = await self.redis.xreadgroup(group, "c1", {topic: ">"}, count=1000, block=5000)
            ids = [entry_id for _, entries in response for entry_id, _ in entries]
            pipe = self.redis.pipeline(transaction=False)
            for entry_id in ids:
                pipe.xack(topic, group, entry_id)
            await pipe.execute()
            seen += len(ids)

    async def latency(self, topic: str, rate: int, seconds: float, size: int) -> list[float]:
        assert self.server is not None
        group = f"l{uuid.uuid4().hex[:8]}"
        await self.redis.xgroup_create(topic, group, id="$", mkstream=True)
        reader = aioredis.from_url(self.server.url)  # XREADGROUP BLOCK holds its connection
        samples: list[float] = []
        total = int(rate * seconds)

        async def receive() -> None:
            while len(samples) < total:
                response = await reader.xreadgroup(group, "c1", {topic: ">"}, count=1000, block=1000)
                ids = []
                for _, entries in response or []:
                    for entry_id, fields in entries:
                        samples.append(elapsed_since(fields[b"d"]))
                        ids.append(entry_id)
                if ids:
                    await reader.xack(topic, group, *ids)

        receiver = asyncio.ensure_future(receive())
        await asyncio.sleep(0.2)
        await paced(rate, seconds, size, lambda payload: self.redis.xadd(topic, {b"d": payload}))
        await asyncio.wait_for(receiver, 30)
        await reader.aclose()
        return samples


class RabbitPeer:
    name = "rabbitmq"
    settings = (
        "RabbitMQ (machine service, 127.0.0.1:5672), durable classic queue, persistent messages, "
        f"publisher confirms, {WINDOW} outstanding; aio-pika, prefetch 1000, ack per message"
    )

    def __init__(self) -> None:
        self.connection: Any = None
        self.channel: Any = None

    async def start(self, directory: Path) -> None:
        self.connection = await aio_pika.connect_robust("amqp://guest:guest@127.0.0.1:5672/", timeout=5)
        self.channel = await self.connection.channel(publisher_confirms=True)
        await self.channel.set_qos(prefetch_count=1000)

    async def stop(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    async def _queue(self, topic: str) -> Any:
        return await self.channel.declare_queue(f"bench.{topic}", durable=True)

    async def publish(self, topic: str, payloads: Sequence[bytes]) -> None:
        queue = await self._queue(topic)
        exchange = self.channel.default_exchange
        persistent = aio_pika.DeliveryMode.PERSISTENT
        await windowed(
            exchange.publish(aio_pika.Message(payload, delivery_mode=persistent), routing_key=queue.name)
            for payload in payloads
        )

    async def consume(self, topic: str, count: int) -> None:
        queue = await self._queue(topic)
        seen = 0
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                seen += 1
                if seen >= count:
                    break
        await queue.delete(if_unused=False, if_empty=False)

    async def latency(self, topic: str, rate: int, seconds: float, size: int) -> list[float]:
        queue = await self._queue(topic)
        samples: list[float] = []
        total = int(rate * seconds)
        done = asyncio.Event()

        async def on_message(message: Any) -> None:
            samples.append(elapsed_since(message.body))
            await message.ack()
            if len(samples) >= total:
                done.set()

        tag = await queue.consume(on_message)
        exchange = self.channel.default_exchange
        persistent = aio_pika.DeliveryMode.PERSISTENT
        await paced(
            rate,
            seconds,
            size,
            lambda payload: exchange.publish(
                aio_pika.Message(payload, delivery_mode=persistent), routing_key=queue.name
            ),
        )
        await asyncio.wait_for(done.wait(), 30)
        await queue.cancel(tag)
        await queue.delete(if_unused=False, if_empty=False)
        return samples
