"""The window of Produces in flight per partition: sending in order, answers, resends, recovery.

Up to ``max_in_flight`` sealed batches per partition (5 by default, like Kafka's
``max.in.flight.requests.per.connection`` with idempotence) are in flight at
once, each in a Produce of its own; ``pump`` is the one place Produces
leave, and ``_drive`` (a task per partition while it has Produces in
flight) takes their answers, oldest first.

Order and exactly-once with several in flight. Sequences are given when a
batch is first encoded, which is when it is first sent, in window order, so
they rise with the order of the publishes. Frames of one connection are
handled by the broker in order, and it remembers each producer's last five
batches per partition (``core.producers.WINDOW``), which is why the window is
at most five batches: every batch in flight can still be recognised.

* **Reconnect**: every Produce in flight becomes unsent; once reconnected,
  they go again in their original order, byte for byte (same producer id,
  epoch and sequences), before anything new. The broker answers those it
  stored with ``duplicate=True`` and their original offsets, and appends the
  rest, since they follow on. If the broker granted another producer id,
  they are renumbered, still in order.
* **A refused batch** (or a Produce answered with an Error) leaves a gap in
  the sequence: the broker then refuses the batches sent after it with
  ``out_of_order_sequence``. The window stops sending, waits for the answers
  in flight, fails the refused batch, gives its numbers back (``rewind``)
  and sends the batches refused only because of the gap again, renumbered,
  in front of everything else. Their publishes never see that error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from tidings.client.batches import InFlight, PartitionQueue, PendingBatch, fail, retrieve
from tidings.client.channel import Channel
from tidings.client.connection import ClientConnection
from tidings.client.message import PublishResult
from tidings.client.metadata import TopicMetadata
from tidings.client.sequencer import Sequencer
from tidings.errors import ConnectionLost, NotConnected, PublishError, TidingsError
from tidings.protocol import (
    AckMode,
    Appended,
    BatchResult,
    Error,
    Frame,
    Produce,
    ProduceResult,
    Rejected,
)

log = logging.getLogger("tidings.client")

SMALL_IN_FLIGHT = 1
"""A batch that is not full leaves only while fewer than this many Produces of its partition are in flight."""


class ProduceWindow:
    """Sends every partition's sealed batches in order and settles their publishes from the answers.

    ``seal`` is the producer's: it seals a partition's open batch (the rule
    for when a batch not full may leave is applied here, in ``pump``).
    """

    def __init__(
        self,
        channel: Channel,
        sequencer: Sequencer,
        metadata: TopicMetadata,
        seal: Callable[[PartitionQueue], None],
    ) -> None:
        self._channel = channel
        self._sequencer = sequencer
        self._metadata = metadata
        self._seal = seal
        self._max_in_flight = channel.config.max_in_flight
        self._conn: ClientConnection | None = None
        """The connection Produces go out on, while it is open (set by the window tasks)."""
        self.in_flight_count = 0
        """Publishes in Produces sent and not answered yet, over every partition."""
        self.closed = False

    def has_room(self, queue: PartitionQueue) -> bool:
        return len(queue.window) < self._max_in_flight

    def pump(self, queue: PartitionQueue) -> None:
        """Send what is due while the partition's window has room: the one place Produces leave."""
        if self.closed or queue.recovering:
            return
        window = queue.window
        if queue.open is not None and queue.ready and len(window) < SMALL_IN_FLIGHT:
            self._seal(queue)  # a batch not full yet waits for the window to empty, and grows meanwhile
        if not queue.sealed or len(window) >= self._max_in_flight:
            return
        conn = self._conn
        if (
            conn is None
            or not conn.is_open
            or (window and (window[-1].answer is None or queue.sent_on is not conn))
        ):
            self._start(queue)  # it connects, then resends and sends in order
            return
        self._send_window(queue, conn)

    def _send_window(self, queue: PartitionQueue, conn: ClientConnection) -> None:
        """Send the window's unsent Produces in order, then sealed batches while there is room.

        Synchronous, so nothing can come between two frames of one partition:
        the order on the wire is the order of the sequences.
        """
        window = queue.window
        queue.sent_on = conn
        try:
            for entry in window:
                if entry.answer is None:
                    entry.answer = conn.request(self._produce_frame(queue, entry.batch, conn))
            while queue.sealed and len(window) < self._max_in_flight:
                entry = InFlight(queue.sealed.popleft())
                window.append(entry)
                self.in_flight_count += entry.batch.count
                entry.answer = conn.request(self._produce_frame(queue, entry.batch, conn))
        except ConnectionLost:  # no answer can come on this connection now: send it all again later
            for entry in window:
                retrieve(entry.answer)
                entry.answer = None
        if window:
            self._start(queue)

    def _produce_frame(self, queue: PartitionQueue, batch: PendingBatch, conn: ClientConnection) -> Produce:
        batch.encoded = encoded = self._sequencer.encode(queue.key, batch.builder, batch.encoded)
        return Produce(
            request_id=conn.next_id(),
            topic=queue.topic,
            partition=queue.partition,
            batches=(encoded.data,),
            ack=AckMode.DURABLE,
        )

    def _start(self, queue: PartitionQueue) -> asyncio.Task[None]:
        if queue.task is None:
            queue.task = asyncio.create_task(self._drive(queue), name=f"tidings-produce-{queue.topic}")
        return queue.task

    # -- sending and answers --------------------------------------------------------------

    async def _drive(self, queue: PartitionQueue) -> None:
        """Take the window's answers in order; after a lost connection, send the window again."""
        window = queue.window
        try:
            while True:
                if not window or window[-1].answer is None:
                    if not window and not queue.sealed:
                        return
                    try:
                        self._conn = conn = await self._channel.connection()
                    except (ConnectionLost, NotConnected):
                        self._sequencer.lose_track()  # the broker may have stored them: never reuse numbers
                        raise
                    self._send_window(queue, conn)
                    if not window:
                        return
                    with contextlib.suppress(ConnectionLost):
                        await conn.drain()
                head = window[0]
                if head.answer is None:
                    continue  # the connection broke while sending: wait for the next one
                try:
                    answer = await head.answer
                except ConnectionLost:
                    log.info(
                        "connection lost with %d Produce(s) in flight to %s/%s: sending them again "
                        "after reconnecting",
                        len(window),
                        queue.topic,
                        queue.partition,
                    )
                    for entry in window:
                        retrieve(entry.answer)
                        entry.answer = None
                    continue
                window.popleft()
                self.in_flight_count -= head.batch.count
                self._settle(queue, head.batch, answer)
                if queue.recovering and not window:
                    self._recovered(queue)
                self.pump(queue)
        except asyncio.CancelledError:
            self._abandon(queue, NotConnected("the client closed before the broker answered"))
            raise
        except TidingsError as exc:
            self._abandon(queue, exc)
            self._fail_queued(queue, exc)
        finally:
            queue.task = None
        self.pump(queue)

    def _fail_queued(self, queue: PartitionQueue, exc: BaseException) -> None:
        """No connection came within ``reconnect_timeout``: the batches waiting to be sent fail too.

        They hold no sequence numbers yet (those are given at the first send), so failing them is
        clean, and it keeps the promise of ``reconnect_timeout``: a publish made while the broker is
        away raises ``ConnectionLost`` then, rather than waiting for as long as the broker is gone.
        """
        batches = list(queue.sealed)
        queue.sealed.clear()
        if queue.open is not None:
            batches.append(queue.open)
            queue.open = None
        if queue.linger is not None:
            queue.linger.cancel()
            queue.linger = None
        fail(batches, exc)

    def _abandon(self, queue: PartitionQueue, exc: BaseException) -> None:
        """No answer will come for the window: fail its publishes (and those waiting to be resent)."""
        batches = [entry.batch for entry in queue.window] + queue.retry
        for entry in queue.window:
            retrieve(entry.answer)
            self.in_flight_count -= entry.batch.count
        queue.window.clear()
        queue.retry.clear()
        queue.recovering = False
        queue.refused = None
        fail(batches, exc)

    async def send_alone(self, queue: PartitionQueue, batches: list[PendingBatch]) -> ProduceResult | Error:
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
            future: asyncio.Future[Frame] | None = None
            try:
                future = conn.request(frame)
                await conn.drain()
                answer = await future
            except ConnectionLost:
                retrieve(future)  # when drain raised, the answer failed too, unawaited
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

    def _settle(self, queue: PartitionQueue, batch: PendingBatch, answer: Frame) -> None:
        """Resolve one Produce's publishes from its answer; a refusal starts a recovery (see the module)."""
        where = f"{queue.topic}/{queue.partition}"
        result: BatchResult | None = None
        if isinstance(answer, ProduceResult) and len(answer.results) == 1:
            result = answer.results[0]
        if isinstance(result, Appended):
            queue.last_appended = batch.encoded
            partition, base, topic = result.partition, result.base_offset, queue.topic
            for future, index, count in batch.waiters:
                if future.done():
                    continue
                if count:
                    future.set_result((partition, base + index))
                else:
                    future.set_result(PublishResult(topic, partition, base + index))
            return
        if queue.recovering and isinstance(result, Rejected) and result.code == "out_of_order_sequence":
            batch.encoded = None  # refused only because an earlier batch was: renumber it, send it again
            queue.retry.append(batch)
            return
        if isinstance(answer, Error):
            code, why = answer.code, f"failed: {answer.message} ({answer.code})"
        elif isinstance(result, Rejected):
            code, why = result.code, f"refused: {result.message}"
        elif isinstance(answer, ProduceResult):
            self._sequencer.lose_track()
            code = "unexpected_answer"
            why = f"the broker answered {len(answer.results)} results for 1 batch"
        else:
            self._sequencer.lose_track()
            code, why = "unexpected_answer", f"the broker answered a Produce with {type(answer).__name__}"
        if code == "unknown_topic":
            self._metadata.forget(queue.topic)
        if not queue.recovering:
            queue.recovering = True
            queue.refused = batch.encoded
        fail([batch], PublishError(f"publish to {where} {why}", reason=code))

    def _recovered(self, queue: PartitionQueue) -> None:
        """Every answer of the window is in: give back the refused numbers, resend what the gap refused."""
        if queue.refused is not None:
            appended = queue.last_appended
            if appended is not None and appended.identity != queue.refused.identity:
                appended = None
            self._sequencer.rewind(queue.key, [queue.refused], appended)
        queue.sealed.extendleft(reversed(queue.retry))
        queue.retry.clear()
        queue.refused = None
        queue.recovering = False
