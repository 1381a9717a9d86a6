"""The producer: batching, linger, partitions, and retries of what is in flight.

Theory of operation
-------------------
``publish`` places a record in a partition (``partition_for_key`` for a
keyed record; keyless records stick to one partition until its batch is
sealed, then move round robin, as Kafka's sticky partitioner does) and adds
it to that partition's open ``BatchBuilder``. It returns a future that the
durable ack resolves. Per (topic, partition) there is a ``PartitionQueue``:

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
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
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


@dataclass(slots=True)
class PendingBatch:
    """Records on their way into one batch, and the futures of their publishes."""

    builder: BatchBuilder = field(default_factory=BatchBuilder)
    futures: list[asyncio.Future[PublishResult]] = field(default_factory=list)
    encoded: Encoded | None = None

    def __len__(self) -> int:
        return len(self.builder)


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
            total += sum(len(batch) for batch in queue.sealed) + (len(queue.open) if queue.open else 0)
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

    async def publish(
        self, topic: str, data: Any, *, key: str | bytes | None = None, headers: HeadersIn | None = None
    ) -> PublishResult:
        partitions = await self._metadata.partitions(check_topic(topic))
        if partitions is None:
            created = await self._publish_creating(topic, data, key=key, headers=headers)
            if isinstance(created, PublishResult):
                return created
            partitions = created
        return await self.enqueue(topic, partitions, data, key=key, headers=headers)

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
        futures = [self.enqueue(topic, partitions, item, key=key, headers=headers) for item in pending]
        for outcome in await asyncio.gather(*futures, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
            results.append(outcome)
        return results

    def enqueue(
        self,
        topic: str,
        partitions: int,
        data: Any,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> asyncio.Future[PublishResult]:
        """Add one record to its partition's open batch; the future resolves with the durable ack."""
        if self._closed:
            raise NotConnected("the client is closed")
        value, key_bytes, header_items = encode_data(data), encode_key(key), encode_headers(headers)
        size = RECORD_OVERHEAD + len(value) + len(key_bytes or b"")
        size += sum(len(name) + len(v) + 6 for name, v in header_items or ())
        if size + HEADER_SIZE > self._frame_budget:
            raise PublishError(
                f"cannot publish to {topic}: a message of {size:,} bytes exceeds the broker's frame limit "
                f"({self._frame_budget:,} bytes)",
                reason="message_too_large",
            )
        if key_bytes is not None:
            partition = partition_for_key(key_bytes, partitions)
        else:
            partition = self._sticky.get(topic, -1)
            if not 0 <= partition < partitions:
                partition = self._sticky[topic] = random.randrange(partitions)
        queue = self._queues.get((topic, partition))
        if queue is None:
            queue = self._queues[(topic, partition)] = PartitionQueue(topic, partition)
        batch = queue.open
        if batch is not None and len(batch) and batch.builder.size + size > self._config.max_batch_bytes:
            self._seal(queue)
            batch = None
        if batch is None:
            batch = queue.open = PendingBatch()
            loop = asyncio.get_running_loop()
            if self._config.linger > 0:
                queue.linger = loop.call_later(self._config.linger, self._linger_over, queue)
            else:  # the end of this turn of the loop: every publish made in it joins the batch
                queue.linger = loop.call_soon(self._linger_over, queue)
        future: asyncio.Future[PublishResult] = asyncio.get_running_loop().create_future()
        batch.builder.add(value, key=key_bytes, headers=header_items)
        batch.futures.append(future)
        if len(batch) >= self._config.max_batch_records or batch.builder.size >= self._config.max_batch_bytes:
            self._seal(queue)
        self._pump(queue)
        return future

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
        self, topic: str, data: Any, *, key: str | bytes | None, headers: HeadersIn | None
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
            builder.add(encode_data(data), key=encode_key(key), headers=encode_headers(headers))
            batch = PendingBatch(builder)
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
        records = sum(len(batch) for batch in batches)
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
        for batch, result in zip(batches, answer.results, strict=True):
            if isinstance(result, Appended):
                last_appended = batch.encoded
                for index, future in enumerate(batch.futures):
                    if not future.done():
                        future.set_result(
                            PublishResult(queue.topic, result.partition, result.base_offset + index)
                        )
            else:
                rejected = True
                if result.code == "unknown_topic":
                    self._metadata.forget(queue.topic)
                _fail(
                    [batch], PublishError(f"publish to {where} refused: {result.message}", reason=result.code)
                )
        if rejected:
            self._sequencer.rewind(queue.key, sent, last_appended)


def _fail(batches: Iterable[PendingBatch], exc: BaseException) -> None:
    for batch in batches:
        for future in batch.futures:
            if not future.done():
                future.set_exception(exc)
                future.exception()  # mark retrieved: a caller that gave up must not cause a warning
