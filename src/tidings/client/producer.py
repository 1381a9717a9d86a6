"""The producer: batching, linger, partitions, and retries of what is in flight.

Theory of operation
-------------------
``publish`` places a record in a partition (``partition_for_key`` for a
keyed record; keyless records stick to one partition until its batch is
sealed, then move round robin, as Kafka's sticky partitioner does) and adds
it to that partition's open ``BatchBuilder``. It returns a future that the
durable ack resolves. ``publish_many`` adds its items to the open batches in
runs (``BatchBuilder.add_many``) with one future per run, not per item, so
its cost per event is the encoder's (in C) plus building the results. Per
(topic, partition) there is a ``PartitionQueue``:

* the **open** batch fills until ``max_batch_bytes`` or ``max_batch_records``,
  or until ``linger`` has passed since its first record (with ``linger=0``, the
  default: until the end of the current turn of the event loop); then it is
  sealed;
* **sealed** batches wait for the partition's Produce in flight, if any;
* **at most one Produce per partition is in flight**. When it is answered,
  everything sealed meanwhile (and the open batch, if its linger is over)
  goes in the next Produce, as several batches, up to the broker's frame
  size. Load therefore grows batches instead of frames: while the broker
  fsyncs one Produce, the next one fills.

If the connection breaks, the Produce in flight is sent again, byte for
byte, once the client has reconnected (``tidings.client.sequencer`` says why
the broker then stores it once). One Produce in flight per partition is what
makes this safe whatever the broker remembers: it only ever needs to
recognise the last batch of each partition.

The first publish to a topic the broker does not know goes alone, with no
partition (``_publish_creating``): the broker creates the topic if its
policy allows, with its default partition count, and places the record (by
key, or by producer id for a keyless idempotent record, so a retry lands in
the same partition). Its sequence is 0, right for whichever partition the
broker picks, since this producer never wrote to the topic. Publishes that
arrive meanwhile wait for it, then learn the partition count as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from bisect import bisect_right
from collections import deque
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from tidings.client.channel import Channel
from tidings.client.config import check_topic
from tidings.client.message import HeadersIn, PublishResult, encode_data, encode_headers, encode_key
from tidings.client.metadata import TopicMetadata
from tidings.client.sequencer import Encoded, PartitionKey, Sequencer
from tidings.errors import ConnectionLost, NotConnected, PublishError, TidingsError
from tidings.protocol import AckMode, Appended, Error, Produce, ProducerClaim, ProduceResult, Welcome
from tidings.records import HEADER_SIZE, BatchBuilder, partition_for_key

log = logging.getLogger("tidings.client")

FRAME_SLACK = 4096
"""Room left in a frame for its prefix and msgpack header."""
RECORD_OVERHEAD = 24 + 2 + 64  # record prefix, header count, a little for header names


Waiter = tuple["asyncio.Future[Any]", int, int]
"""A future waiting on records of a batch: (future, index of its first record, record count).

A count of 0 marks one ``publish``: its future gets a ``PublishResult``. A run
of ``publish_many`` has its count, and its future gets ``(partition,
offset of its first record)``: one future per run instead of per event.
"""


@dataclass(slots=True)
class PendingBatch:
    """Records on their way into one batch, and the futures waiting on them."""

    builder: BatchBuilder = field(default_factory=BatchBuilder)
    waiters: list[Waiter] = field(default_factory=list)
    encoded: Encoded | None = None
    count: int = 0
    """Records in the batch (``len(builder)``, kept here because ``enqueue`` reads it every call)."""

    def __len__(self) -> int:
        return self.count


@dataclass(slots=True)
class PartitionQueue:
    topic: str
    partition: int | None
    """None only for the lone Produce that creates a topic (the broker places it)."""
    open: PendingBatch | None = None
    sealed: deque[PendingBatch] = field(default_factory=deque)
    task: asyncio.Task[None] | None = None
    linger: asyncio.Handle | None = None
    ready: bool = False
    """The open batch's linger is over: send it with the next Produce."""

    @property
    def key(self) -> PartitionKey:
        return (self.topic, self.partition)


class Producer:
    """Turns publishes into batched, idempotent Produce frames. Owned by a ``Client``."""

    def __init__(self, channel: Channel, metadata: TopicMetadata) -> None:
        self._channel = channel
        self._config = channel.config
        self._metadata = metadata
        self._sequencer = Sequencer()
        self._queues: dict[PartitionKey, PartitionQueue] = {}
        self._sticky: dict[str, int] = {}
        self._frame_budget = self._config.max_batch_bytes
        self._closed = False
        self._in_flight_count = 0
        self._creating: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        in_flight = sum(1 for q in self._queues.values() if q.task is not None)
        return f"<Producer {self._sequencer!r} partitions={len(self._queues)} in_flight={in_flight}>"

    @property
    def producer_id(self) -> int | None:
        identity = self._sequencer.identity
        return None if identity is None else identity[0]

    @property
    def pending(self) -> int:
        """Publishes not yet answered."""
        total = self._in_flight_count
        for queue in self._queues.values():
            total += sum(batch.count for batch in queue.sealed) + (queue.open.count if queue.open else 0)
        return total

    # -- session hooks (called by the Client) ----------------------------------------------

    def claim(self) -> ProducerClaim:
        return self._sequencer.claim()

    def on_welcome(self, welcome: Welcome, peer_max_frame_size: int) -> None:
        """A connection opened: adopt its producer identity before anything is sent on it."""
        self._frame_budget = max(peer_max_frame_size - FRAME_SLACK, 1024)
        before = self._sequencer.identity
        if self._sequencer.adopt(welcome) and before is not None:
            log.warning(
                "the broker granted producer %s (had %s): batches in flight are renumbered",
                self._sequencer.identity,
                before,
            )

    # -- publishing -----------------------------------------------------------------------

    def publish(
        self,
        topic: str,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
        timestamp: int | None = None,
    ) -> Awaitable[PublishResult]:
        """Queue one event; the awaitable resolves with its durable ack.

        A plain function, not a coroutine: once the topic's partition count
        is known (every publish but a topic's first), the event goes straight
        into its batch and the caller awaits the batch's future, with no
        coroutine of ours in between. Each coroutine layer cost about as much
        as the rest of a publish. Errors still surface when the result is
        awaited, as they would from a coroutine.
        """
        partitions = self._metadata.cached(topic)  # only names that passed check_topic are cached
        if partitions is None:
            return self._publish_looking_up(topic, data, key=key, headers=headers, timestamp=timestamp)
        try:
            return self.enqueue(topic, partitions, data, key=key, headers=headers, timestamp=timestamp)
        except Exception as exc:  # raised on await, as from a coroutine, not at the call
            failed: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def _publish_looking_up(
        self,
        topic: str,
        data: Any,
        *,
        key: str | bytes | None,
        headers: HeadersIn | None,
        timestamp: int | None = None,
    ) -> PublishResult:
        partitions = await self._metadata.partitions(check_topic(topic))
        if partitions is None:
            created = await self._publish_creating(topic, data, key=key, headers=headers, timestamp=timestamp)
            if isinstance(created, PublishResult):
                return created
            partitions = created
        return await self.enqueue(topic, partitions, data, key=key, headers=headers, timestamp=timestamp)

    async def publish_many(
        self,
        topic: str,
        items: Iterable[Any],
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> list[PublishResult]:
        pending = list(items)
        results: list[PublishResult] = []
        partitions = self._metadata.cached(topic)
        if partitions is None:
            partitions = await self._metadata.partitions(check_topic(topic))
        if partitions is None and pending:
            created = await self._publish_creating(topic, pending[0], key=key, headers=headers)
            if isinstance(created, PublishResult):
                results.append(created)
                pending = pending[1:]
                partitions = await self._metadata.partitions(topic)
            else:
                partitions = created
        if partitions is None:
            raise PublishError(
                f"cannot publish to {topic}: the broker does not list it", reason="unknown_topic"
            )
        if not pending:
            return results
        values = [encode_data(item) for item in pending]
        runs = self.enqueue_many(topic, partitions, values, encode_key(key), encode_headers(headers))
        for outcome in await asyncio.gather(*(future for future, _ in runs), return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        for future, count in runs:
            partition, first = future.result()
            results.extend(PublishResult(topic, partition, first + index) for index in range(count))
        return results

    def enqueue(
        self,
        topic: str,
        partitions: int,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
        timestamp: int | None = None,
    ) -> asyncio.Future[PublishResult]:
        """Add one record to its partition's open batch; the future resolves with the durable ack.

        ``timestamp``: the record's producer time in ms since the epoch (now when None).
        """
        if self._closed:
            raise NotConnected("the client is closed")
        value = data if type(data) is bytes else encode_data(data)
        key_bytes = key.encode() if isinstance(key, str) else key
        header_items = encode_headers(headers) if headers else None
        size = RECORD_OVERHEAD + len(value)
        if key_bytes is not None:
            size += len(key_bytes)
        if header_items is not None:
            size += sum(len(name) + len(v) + 6 for name, v in header_items)
        if size + HEADER_SIZE > self._frame_budget:
            raise _too_large(topic, size, self._frame_budget)
        if key_bytes is not None:
            partition = partition_for_key(key_bytes, partitions)
        else:
            partition = self._sticky.get(topic, -1)
            if not 0 <= partition < partitions:
                partition = self._sticky[topic] = random.randrange(partitions)
        queue = self._queues.get((topic, partition))
        if queue is None:
            queue = self._queues[(topic, partition)] = PartitionQueue(topic, partition)
        config = self._config
        batch = queue.open
        if batch is not None and batch.count and batch.builder.size + size > config.max_batch_bytes:
            self._seal(queue)
            batch = None
        elif batch is not None and batch.count and not batch.builder.fits(timestamp):
            self._seal(queue)  # the batch format spans ~24 days of record times: old history starts anew
            batch = None
        if batch is None:
            batch = self._open(queue)
        future: asyncio.Future[PublishResult] = self._loop.create_future()
        batch.builder.add(value, key=key_bytes, headers=header_items, timestamp=timestamp)
        batch.waiters.append((future, batch.count, 0))
        batch.count += 1
        if batch.count >= config.max_batch_records or batch.builder.size >= config.max_batch_bytes:
            self._seal(queue)
        if queue.task is None:
            self._pump(queue)
        return future

    def enqueue_many(
        self,
        topic: str,
        partitions: int,
        values: Sequence[bytes],
        key: bytes | None,
        headers: list[tuple[str, bytes]] | None,
    ) -> list[tuple[asyncio.Future[tuple[int, int]], int]]:
        """Add records to the open batches in runs; returns each run's future and record count, in order.

        A run is as many records as fit the open batch of the partition (by
        key, or the sticky one) within ``max_batch_records`` and
        ``max_batch_bytes``; a full batch is sealed and, for keyless records,
        the next run goes to the next partition, as single publishes would.
        """
        if self._closed:
            raise NotConnected("the client is closed")
        config = self._config
        per_record = RECORD_OVERHEAD + (len(key) if key is not None else 0)
        if headers:
            per_record += sum(len(name) + len(v) + 6 for name, v in headers)
        largest = max(map(len, values)) + per_record
        if largest + HEADER_SIZE > self._frame_budget:
            raise _too_large(topic, largest, self._frame_budget)
        ends = list(accumulate(len(value) + per_record for value in values))  # bytes up to each record
        runs: list[tuple[asyncio.Future[tuple[int, int]], int]] = []
        start = 0
        while start < len(values):
            if key is not None:
                partition = partition_for_key(key, partitions)
            else:
                partition = self._sticky.get(topic, -1)
                if not 0 <= partition < partitions:
                    partition = self._sticky[topic] = random.randrange(partitions)
            queue = self._queues.get((topic, partition))
            if queue is None:
                queue = self._queues[(topic, partition)] = PartitionQueue(topic, partition)
            batch = queue.open if queue.open is not None else self._open(queue)
            before = ends[start - 1] if start else 0
            room = config.max_batch_bytes - batch.builder.size
            stop = min(
                bisect_right(ends, before + room, lo=start),
                start + config.max_batch_records - batch.count,
                len(values),
            )
            if stop <= start:
                if batch.count:  # the open batch is full: seal it and go on with the next one
                    self._seal(queue)
                    continue
                stop = start + 1  # one record larger than max_batch_bytes goes alone
            future: asyncio.Future[tuple[int, int]] = self._loop.create_future()
            batch.waiters.append((future, batch.count, stop - start))
            batch.builder.add_many(values[start:stop], key=key, headers=headers)
            batch.count += stop - start
            runs.append((future, stop - start))
            start = stop
            if batch.count >= config.max_batch_records or batch.builder.size >= config.max_batch_bytes:
                self._seal(queue)
            if queue.task is None:
                self._pump(queue)
        return runs

    def _open(self, queue: PartitionQueue) -> PendingBatch:
        """Start the partition's open batch and schedule the end of its linger."""
        batch = queue.open = PendingBatch()
        if self._config.linger > 0:
            queue.linger = self._loop.call_later(self._config.linger, self._linger_over, queue)
        else:  # the end of this turn of the loop: every publish made in it joins the batch
            queue.linger = self._loop.call_soon(self._linger_over, queue)
        return batch

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def flush(self) -> None:
        """Send everything now, without waiting for linger, and wait for every answer."""
        while True:
            tasks = []
            for queue in list(self._queues.values()):
                queue.ready = True
                self._pump(queue)
                if queue.task is not None:
                    tasks.append(queue.task)
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self, reason: TidingsError) -> None:
        """Fail whatever is still waiting with ``reason``; publishes from now on raise ``NotConnected``."""
        self._closed = True
        for queue in self._queues.values():
            if queue.linger is not None:
                queue.linger.cancel()
            if queue.task is not None:
                queue.task.cancel()
            batches = list(queue.sealed) + ([queue.open] if queue.open else [])
            queue.sealed.clear()
            queue.open = None
            _fail(batches, reason)

    async def _publish_creating(
        self,
        topic: str,
        data: Any,
        *,
        key: str | bytes | None,
        headers: HeadersIn | None,
        timestamp: int | None = None,
    ) -> PublishResult | int:
        """Publish to a topic the broker does not list, letting the broker create it and place the record.

        Returns the result, or the partition count if another publish created
        the topic meanwhile (then the caller publishes as usual).
        """
        async with self._creating.setdefault(topic, asyncio.Lock()):
            partitions = self._metadata.cached(topic)
            if partitions is not None:
                return partitions  # created by the publish that held the lock before us
            builder = BatchBuilder()
            builder.add(
                encode_data(data), key=encode_key(key), headers=encode_headers(headers), timestamp=timestamp
            )
            batch = PendingBatch(builder, count=1)
            queue = PartitionQueue(topic, None)
            self._sequencer.forget_topic(topic)
            try:
                answer = await self._send(queue, [batch])
            finally:
                self._metadata.forget(topic)
            if isinstance(answer, Error):
                raise PublishError(
                    f"publish to {topic} failed: {answer.message} ({answer.code})", reason=answer.code
                )
            result = answer.results[0] if len(answer.results) == 1 else None
            if not isinstance(result, Appended):
                why = result.message if result else f"{len(answer.results)} results for 1 batch"
                raise PublishError(
                    f"publish to {topic} refused: {why}", reason=result.code if result else "internal_error"
                )
            assert batch.encoded is not None
            self._sequencer.moved(queue.key, (topic, result.partition), batch.encoded)
            with contextlib.suppress(TidingsError):  # stored already; a failed lookup is retried later
                await self._metadata.partitions(topic)  # learn the count for the publishes waiting
            return PublishResult(topic, result.partition, result.base_offset)

    # -- batching -------------------------------------------------------------------------

    def _linger_over(self, queue: PartitionQueue) -> None:
        queue.linger = None
        queue.ready = True
        self._pump(queue)

    def _seal(self, queue: PartitionQueue) -> None:
        if queue.open is None:
            return
        if queue.linger is not None:
            queue.linger.cancel()
            queue.linger = None
        queue.ready = False
        queue.sealed.append(queue.open)
        queue.open = None
        if queue.partition is not None and self._sticky.get(queue.topic) == queue.partition:
            partitions = self._metadata.cached(queue.topic) or 1
            self._sticky[queue.topic] = (queue.partition + 1) % partitions

    def _pump(self, queue: PartitionQueue) -> None:
        """Start the partition's next Produce if none is in flight and something is due."""
        if queue.task is not None or self._closed:
            return
        if queue.open is not None and queue.ready:
            self._seal(queue)
        if not queue.sealed:
            return
        batches = [queue.sealed.popleft()]
        total = batches[0].builder.size
        while queue.sealed and total + queue.sealed[0].builder.size <= self._frame_budget:
            total += queue.sealed[0].builder.size
            batches.append(queue.sealed.popleft())
        queue.task = asyncio.create_task(self._deliver(queue, batches), name=f"tidings-produce-{queue.topic}")

    # -- sending and answers --------------------------------------------------------------

    async def _deliver(self, queue: PartitionQueue, batches: list[PendingBatch]) -> None:
        records = sum(batch.count for batch in batches)
        self._in_flight_count += records
        try:
            self._complete(queue, batches, await self._send(queue, batches))
        except asyncio.CancelledError:
            _fail(batches, NotConnected("the client closed before the broker answered"))
            raise
        except TidingsError as exc:
            _fail(batches, exc)
        finally:
            self._in_flight_count -= records
            queue.task = None
            self._pump(queue)

    async def _send(self, queue: PartitionQueue, batches: list[PendingBatch]) -> ProduceResult | Error:
        """Send the batches until answered, again on each new connection. Raises if none comes in time."""
        while True:
            try:
                conn = await self._channel.connection()
            except (ConnectionLost, NotConnected):
                self._sequencer.lose_track()  # the broker may have stored them: never reuse these numbers
                raise
            for batch in batches:
                batch.encoded = self._sequencer.encode(queue.key, batch.builder, batch.encoded)
            frame = Produce(
                request_id=conn.next_id(),
                topic=queue.topic,
                partition=queue.partition,
                batches=tuple(batch.encoded.data for batch in batches if batch.encoded is not None),
                ack=AckMode.DURABLE,
            )
            try:
                future = conn.request(frame)
                await conn.drain()
                answer = await future
            except ConnectionLost:
                log.info(
                    "connection lost with a Produce in flight to %s/%s: sending it again after reconnecting",
                    queue.topic,
                    queue.partition,
                )
                continue
            if isinstance(answer, ProduceResult | Error):
                return answer
            raise PublishError(
                f"the broker answered a Produce with {type(answer).__name__}", reason="unexpected_answer"
            )

    def _complete(
        self, queue: PartitionQueue, batches: list[PendingBatch], answer: ProduceResult | Error
    ) -> None:
        where = f"{queue.topic}/{queue.partition}"
        sent = [batch.encoded for batch in batches if batch.encoded is not None]
        if isinstance(answer, Error):
            if answer.code == "unknown_topic":
                self._metadata.forget(queue.topic)
            self._sequencer.rewind(queue.key, sent, None)
            _fail(
                batches,
                PublishError(
                    f"publish to {where} failed: {answer.message} ({answer.code})", reason=answer.code
                ),
            )
            return
        if len(answer.results) != len(batches):
            self._sequencer.lose_track()
            _fail(
                batches,
                PublishError(
                    f"publish to {where}: the broker answered {len(answer.results)} results "
                    f"for {len(batches)} batches",
                    reason="unexpected_answer",
                ),
            )
            return
        last_appended: Encoded | None = None
        rejected = False
        topic = queue.topic
        for batch, result in zip(batches, answer.results, strict=True):
            if isinstance(result, Appended):
                last_appended = batch.encoded
                partition, base = result.partition, result.base_offset
                for future, index, count in batch.waiters:
                    if future.done():
                        continue
                    if count:
                        future.set_result((partition, base + index))
                    else:
                        future.set_result(PublishResult(topic, partition, base + index))
            else:
                rejected = True
                if result.code == "unknown_topic":
                    self._metadata.forget(queue.topic)
                _fail(
                    [batch], PublishError(f"publish to {where} refused: {result.message}", reason=result.code)
                )
        if rejected:
            self._sequencer.rewind(queue.key, sent, last_appended)


def _too_large(topic: str, size: int, budget: int) -> PublishError:
    return PublishError(
        f"cannot publish to {topic}: a message of {size:,} bytes exceeds the broker's frame limit "
        f"({budget:,} bytes)",
        reason="message_too_large",
    )


def _fail(batches: Iterable[PendingBatch], exc: BaseException) -> None:
    for batch in batches:
        for future, _, _ in batch.waiters:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: a caller that gave up must not cause a warning
