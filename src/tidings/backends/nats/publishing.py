"""Publishing into JetStream: partition choice, pipelined sends, and retries that store once.

A batch is sent in order on the one connection (``publish_async``: every
message goes out before any acknowledgement is awaited), so JetStream stores
it in that order and each key keeps its order. Each message carries a
``Nats-Msg-Id`` (the caller's ``msg_id``, else a generated one), so when an
attempt gets no acknowledgement (the server restarted, the connection
dropped, the ack was lost) the adapter resends the same message and
JetStream stores it once within the stream's duplicate window: this is
``idempotent_publish``.

An attempt waits ``config.request_timeout`` for its acknowledgements, or
until the connection drops (then they can never come): the next attempt is
sent as soon as the connection is back. Retrying goes on for
``config.reconnect_timeout`` seconds, with a backoff of 50 ms doubling to
1 s; then ``ConnectionLost``. A message lost in a crash is
resent after messages behind it that were stored, so across a server crash a
key's order within one batch can change; without failures it cannot.

``Receipt.duplicate`` is True when the first attempt already found the
``msg_id`` stored. A retry that finds it stored is the adapter's own earlier
attempt, so it reports ``duplicate=False``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext, api
from nats.js import errors as js_errors

from tidings.backends.base import OutgoingMessage, Receipt
from tidings.backends.nats import codec, naming
from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.errors import translate, translated
from tidings.backends.nats.streams import Streams, TopicInfo
from tidings.errors import ConnectionLost, NotConnected, TidingsError
from tidings.records.partitioning import partition_for_key


@dataclass(frozen=True, slots=True)
class Prepared:
    """One message, ready to send: where, what, and whether its id is the caller's."""

    subject: str
    partition: int
    payload: bytes
    headers: dict[str, str]
    own_id: bool


def choose_partition(key: str | bytes | None, partitions: int, turn: int) -> int:
    """Keyed: where the Tidings broker would put the key; unkeyed: round robin by ``turn``."""
    if key is None:
        return turn % partitions
    return partition_for_key(key.encode() if isinstance(key, str) else key, partitions)


def retryable(exc: BaseException) -> bool:
    """Whether a failed publish may succeed when sent again: the server or the connection was away."""
    if isinstance(exc, js_errors.APIError):
        return isinstance(exc, js_errors.ServiceUnavailableError) or exc.code == 503
    return isinstance(exc, nats.errors.Error | TimeoutError)


class Publisher:
    """Stores messages in their topic's stream (created on first use)."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        streams: Streams,
        config: NatsConfig,
        *,
        lost: Callable[[], asyncio.Event],
    ) -> None:
        self._nc = nc
        self._lost = lost
        self._js = js
        self._streams = streams
        self._config = config
        self._turns = itertools.count()

    def prepare(self, info: TopicInfo, message: OutgoingMessage, nats_id: str | None = None) -> Prepared:
        """``nats_id``: a ``Nats-Msg-Id`` to store verbatim (dead letters), instead of ``msg_id``'s."""
        partition = choose_partition(message.key, info.partitions, next(self._turns))
        headers = codec.outgoing_headers(
            message.headers, key=message.key, msg_id=message.msg_id, now=message.timestamp
        )
        if nats_id is not None:
            headers[codec.MSG_ID] = nats_id
        return Prepared(
            naming.subject(info.topic, partition),
            partition,
            bytes(message.data),
            headers,
            message.msg_id is not None,
        )

    async def publish(
        self, topic: str, messages: Sequence[OutgoingMessage], nats_ids: Sequence[str | None] = ()
    ) -> list[Receipt]:
        """Store ``messages`` in order; receipts in order (see the module docstring for retries)."""
        info = await self._streams.ensure(topic)
        ids = list(nats_ids) or [None] * len(messages)
        prepared = [
            self.prepare(info, message, nats_id) for message, nats_id in zip(messages, ids, strict=True)
        ]
        receipts: list[Receipt | None] = [None] * len(prepared)
        deadline = time.monotonic() + self._config.reconnect_timeout
        backoff = 0.05
        attempt = 0
        while True:
            attempt += 1
            todo = [index for index, receipt in enumerate(receipts) if receipt is None]
            if not todo:
                return [receipt for receipt in receipts if receipt is not None]
            failure = await self._attempt(info, prepared, todo, receipts, first=attempt == 1)
            if all(receipts[index] is not None for index in todo):
                continue
            if self._nc.is_closed:
                raise NotConnected(f"publishing to {topic!r}: the backend was closed")
            if time.monotonic() + backoff > deadline:
                raise ConnectionLost(
                    f"publishing to {topic!r}: not acknowledged within {self._config.reconnect_timeout:g} s "
                    f"({failure})"
                )
            if isinstance(failure, js_errors.NoStreamResponseError):
                # No stream took it: JetStream is still starting, or the stream is gone (then recreate it).
                info = await self._restore_stream(topic, info)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 1.0)
            while self._lost().is_set() and time.monotonic() < deadline:  # resend once reconnected
                await asyncio.sleep(0.02)

    async def _attempt(
        self,
        info: TopicInfo,
        prepared: list[Prepared],
        todo: list[int],
        receipts: list[Receipt | None],
        *,
        first: bool,
    ) -> BaseException | None:
        """Send the messages at ``todo`` in order and fill in the receipts that come back."""
        futures: list[asyncio.Future[api.PubAck]] = []
        failure: BaseException | None = None
        try:
            for index in todo:
                message = prepared[index]
                futures.append(
                    await self._js.publish_async(
                        message.subject, message.payload, headers=dict(message.headers)
                    )
                )
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError) as exc:
            raise NotConnected(f"publishing to {info.topic!r}: the backend was closed") from exc
        except (nats.errors.Error, OSError) as exc:
            failure = exc  # sent what it could; the rest go in the next attempt
        if futures:
            # Until every ack is in, the attempt's timeout, or the connection drops (then the acks of what
            # was in flight will never come: resend at once rather than at the timeout).
            lost = asyncio.ensure_future(self._lost().wait())
            acked = asyncio.ensure_future(asyncio.wait(futures))
            await asyncio.wait(
                {lost, acked}, timeout=self._config.request_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            lost.cancel()
            acked.cancel()
        for index, future in zip(todo, futures, strict=False):
            if not future.done():
                future.cancel()
                failure = failure or TimeoutError("no acknowledgement")
                continue
            problem = future.exception()
            if problem is None:
                ack = future.result()
                receipts[index] = await self._receipt(info, prepared[index], ack, first=first)
            elif retryable(problem):
                failure = problem
            else:
                raise translate(problem, f"publishing to {info.topic!r}") from problem
        return failure

    async def _receipt(self, info: TopicInfo, message: Prepared, ack: api.PubAck, *, first: bool) -> Receipt:
        duplicate = bool(ack.duplicate)
        partition = message.partition
        if duplicate and message.own_id:
            # The stored message may have gone to another partition (same id, another key).
            with translated(f"reading the original of a duplicate on {info.topic!r}"):
                stored = await self._js.get_msg(info.stream, ack.seq)
            if stored.subject:
                partition = naming.partition_of(stored.subject)
        return Receipt(info.topic, partition, ack.seq, duplicate=duplicate and first and message.own_id)

    async def _restore_stream(self, topic: str, info: TopicInfo) -> TopicInfo:
        self._streams.forget(topic)
        try:
            return await self._streams.ensure(topic)
        except NotConnected:
            raise
        except TidingsError:  # JetStream not ready yet: keep the old view and retry the publish
            return info
