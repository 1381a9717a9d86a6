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
* **sealed** batches leave as soon as the partition's window has room
  (``tidings.client.window``: up to ``max_in_flight`` Produces in flight per
  partition, resent in order after a reconnect, renumbered after a
  refusal). While the broker writes and fsyncs one, the next crosses the
  network, so a large ``publish_many`` overlaps network and disk.
* a batch that is not full is sealed, its linger over, only when the
  partition has nothing in flight; until then it keeps filling. So full
  batches pipeline, and small ones grow with the load instead of turning
  into more, smaller frames (each costs the broker a frame, a check and a
  write, and each consumer a delivery): the broker's group commit already
  shares one fsync among everything that arrives during the previous one,
  so sending a small batch earlier would not make it durable sooner. This
  was measured: letting small batches fill the window made p99 worse at
  high rates, not better. The exception is the last batch of a
  ``publish_many`` call (with ``linger=0``): its caller waits for all of
  it, so it leaves at once if the window has room (``_send_tails``).

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
from collections.abc import Awaitable, Iterable, Sequence
from itertools import accumulate
from typing import Any

from tidings.client.batches import PartitionQueue, PendingBatch, fail, retrieve
from tidings.client.channel import Channel
from tidings.client.config import check_topic
from tidings.client.message import (
    HeadersIn,
    PublishResult,
    PublishResults,
    encode_data,
    encode_headers,
    encode_key,
)
from tidings.client.metadata import TopicMetadata
from tidings.client.sequencer import PartitionKey, Sequencer
from tidings.client.window import ProduceWindow
from tidings.errors import NotConnected, PublishError, TidingsError
from tidings.protocol import Appended, Error, ProducerClaim, Welcome
from tidings.records import HEADER_SIZE, BatchBuilder, partition_for_key

log = logging.getLogger("tidings.client")

FRAME_SLACK = 4096
"""Room left in a frame for its prefix and msgpack header."""
RECORD_OVERHEAD = 24 + 2 + 64  # record prefix, header count, a little for header names


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
        self._window = ProduceWindow(channel, self._sequencer, metadata, self._seal)
        self._creating: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        in_flight = sum(len(q.window) for q in self._queues.values())
        return f"<Producer {self._sequencer!r} partitions={len(self._queues)} in_flight={in_flight}>"

    @property
    def producer_id(self) -> int | None:
        identity = self._sequencer.identity
        return None if identity is None else identity[0]

    @property
    def pending(self) -> int:
        """Publishes not yet answered."""
        total = self._window.in_flight_count
        for queue in self._queues.values():
            total += sum(batch.count for batch in queue.sealed) + (queue.open.count if queue.open else 0)
            total += sum(batch.count for batch in queue.retry)
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
    ) -> PublishResults:
        pending = items if type(items) is list else list(items)
        done: list[tuple[int, int, int]] = []
        partitions = self._metadata.cached(topic)
        if partitions is None:
            partitions = await self._metadata.partitions(check_topic(topic))
        if partitions is None and pending:
            created = await self._publish_creating(topic, pending[0], key=key, headers=headers)
            if isinstance(created, PublishResult):
                done.append((created.partition, created.offset, 1))
                pending = pending[1:]
                partitions = await self._metadata.partitions(topic)
            else:
                partitions = created
        if partitions is None:
            raise PublishError(
                f"cannot publish to {topic}: the broker does not list it", reason="unknown_topic"
            )
        if not pending:
            return PublishResults(topic, done)
        values = pending if set(map(type, pending)) == {bytes} else list(map(encode_data, pending))
        runs = self.enqueue_many(topic, partitions, values, encode_key(key), encode_headers(headers))
        if len(runs) == 1:
            done.append((*await runs[0][0], runs[0][1]))
            return PublishResults(topic, done)
        for outcome in await asyncio.gather(*(future for future, _ in runs), return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        done.extend((*future.result(), count) for future, count in runs)
        return PublishResults(topic, done)

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
        if queue.sealed:
            self._window.pump(queue)
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
        sums = list(accumulate(map(len, values)))  # value bytes up to each record (inclusive)

        def upto(index: int) -> int:  # batch bytes of the records up to ``index``, inclusive
            return sums[index] + per_record * (index + 1)

        if upto(len(values) - 1) + HEADER_SIZE > self._frame_budget:  # else none alone is too large
            largest = max(map(len, values)) + per_record
            if largest + HEADER_SIZE > self._frame_budget:
                raise _too_large(topic, largest, self._frame_budget)
        runs: list[tuple[asyncio.Future[tuple[int, int]], int]] = []
        touched: dict[PartitionKey, PartitionQueue] = {}
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
            touched[queue.key] = queue
            batch = queue.open if queue.open is not None else self._open(queue)
            before = upto(start - 1) if start else 0
            room = config.max_batch_bytes - batch.builder.size
            stop = min(
                bisect_right(range(len(values)), before + room, lo=start, key=upto),
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
            value_bytes = sums[stop - 1] - (sums[start - 1] if start else 0)
            batch.builder.add_many(values[start:stop], key=key, headers=headers, value_bytes=value_bytes)
            batch.count += stop - start
            runs.append((future, stop - start))
            start = stop
            if batch.count >= config.max_batch_records or batch.builder.size >= config.max_batch_bytes:
                self._seal(queue)
            if queue.sealed:
                self._window.pump(queue)
        if config.linger == 0:
            self._send_tails(touched)
        return runs

    def _send_tails(self, queues: dict[PartitionKey, PartitionQueue]) -> None:
        """Seal the last, partial batch of a ``publish_many`` now if its partition's window has room.

        Its caller waits for every record, so holding the tail back until the
        full batches before it are answered (the rule for a batch not full)
        would only add a round trip and a group commit to every call.
        """
        for queue in queues.values():
            tail = queue.open
            if tail is not None and tail.count and self._window.has_room(queue):
                self._seal(queue)
                self._window.pump(queue)

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
                self._window.pump(queue)
                if queue.task is not None:
                    tasks.append(queue.task)
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self, reason: TidingsError) -> None:
        """Fail whatever is still waiting with ``reason``; publishes from now on raise ``NotConnected``."""
        self._closed = self._window.closed = True
        for queue in self._queues.values():
            if queue.linger is not None:
                queue.linger.cancel()
            if queue.task is not None:
                queue.task.cancel()
            batches = [entry.batch for entry in queue.window] + queue.retry + list(queue.sealed)
            batches += [queue.open] if queue.open else []
            for entry in queue.window:
                retrieve(entry.answer)
            queue.window.clear()
            queue.retry.clear()
            queue.sealed.clear()
            queue.open = None
            fail(batches, reason)

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
                answer = await self._window.send_alone(queue, [batch])
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
        self._window.pump(queue)

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


def _too_large(topic: str, size: int, budget: int) -> PublishError:
    return PublishError(
        f"cannot publish to {topic}: a message of {size:,} bytes exceeds the broker's frame limit "
        f"({budget:,} bytes)",
        reason="message_too_large",
    )
