"""The handler runner: delivery -> decode -> (inbox + handler in one transaction) -> decide -> settle.

One ``Runner`` per ``@app.subscribe``. For each delivery it:

1. decodes the event (``codec.decode``); an ``EventValidationError`` goes to
   ``runner.decide`` like any outcome, which dead-letters it at once: the
   handler never sees data that is not its event;
2. with a store, opens a transaction, claims the event id in the inbox
   (``tx.mark_handled(group, event_id)``) BEFORE the handler, and skips the
   handler when the id was already handled (a redelivered duplicate is acked);
   the handler's writes, its ``ctx.publish`` outbox rows and the inbox row
   commit together, or roll back together when it raises;
3. calls the handler through the middleware chain;
4. settles with what ``runner.decide`` returns (Ack / Nack(delay) /
   DeadLetter): the one place a decision is taken (STYLE.md 8).

Middleware is ``fn(handler) -> handler``, a handler being
``async (event, ctx) -> result``. ``chain`` applies them so that the FIRST
registered is the OUTERMOST: it runs first on the way in and last on the way
out, and sees the exception of everything inside it. Middleware runs inside
the transaction (it sees ``ctx.db``) and after decoding (it sees the typed event).

Dead-lettering: where the backend declares ``native_dead_letters``,
``delivery.term(reason)`` (the broker writes ``<topic>.dlq.<group>`` with the
``DLQ_*`` headers); otherwise the runner publishes the original data and
headers plus the ``DLQ_*`` headers to ``dead_letter_topic(topic, group)``
and then acks. The framework subscribes with ``max_deliveries=None``, so the
broker never dead-letters on its own count: ``retries`` is the only limit.

Concurrency: up to ``concurrency`` deliveries of one subscription run at
once. In ``partitioned`` mode two deliveries of the SAME partition never run
at once (a per-partition lock, taken in delivery order), so per-key order
holds; parallelism is across partitions. In ``shared`` mode there is no order.
With SQLite, store transactions are serialised by the store, so handlers
that use a store run one at a time on SQLite whatever ``concurrency`` says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from tidings.app import tracing
from tidings.app.backoff import Backoff, Exponential
from tidings.app.clock import ReplayPolicy
from tidings.app.codec import Decoded, decode, encode
from tidings.app.context import Context, PublishFn, RequestFn
from tidings.app.runner import Ack, DeadLetter, Decision, Nack, decide, describe
from tidings.backends.base import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    Backend,
    Delivery,
    GroupMode,
    StartPosition,
    Subscription,
    dead_letter_topic,
)

if TYPE_CHECKING:
    from tidings.app.store import Store

__all__ = [
    "ERROR_HEADER",
    "Handler",
    "Middleware",
    "Observer",
    "Runner",
    "SubscriptionSpec",
    "chain",
    "settle",
]

log = logging.getLogger("tidings.app")

Handler = Callable[[Any, Context], Awaitable[Any]]
"""``async (event, ctx) -> result``: a subscriber returns None, a responder its reply."""
Middleware = Callable[[Handler], Handler]
"""Wraps a handler; the first registered is the outermost (see the module docstring)."""

ERROR_HEADER = "tidings-error"
"""Set on a responder's reply when it raised: the reason, and the data is empty."""


class Observer(Protocol):
    """Told what the App publishes and settles (``TestApp`` uses it to know when all is handled)."""

    def on_published(
        self, topic: str, partition: int, offset: int, data: bytes, headers: dict[str, bytes]
    ) -> None: ...

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None: ...


@dataclass(frozen=True, slots=True)
class SubscriptionSpec:
    """What ``@app.subscribe`` declared for one handler."""

    event_type: type
    handler: Handler
    group: str
    retries: int | None = 5
    backoff: Backoff = field(default_factory=lambda: Exponential(0.2, 30.0))
    concurrency: int = 1
    mode: GroupMode = "partitioned"
    start: StartPosition = "latest"
    ack_deadline: float = 30.0
    respond: bool = False
    """A responder (``@app.respond``): answers requests, ignores (acks) plain events."""

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


def chain(handler: Handler, middleware: Sequence[Middleware]) -> Handler:
    """``handler`` wrapped so that ``middleware[0]`` is outermost."""
    for wrap in reversed(middleware):
        handler = wrap(handler)
    return handler


async def settle(
    delivery: Delivery,
    decision: Decision,
    *,
    group: str,
    backend: Backend,
) -> None:
    """Do what ``decision`` says with ``delivery``: the only code that acks, nacks or dead-letters."""
    match decision:
        case Ack():
            await delivery.ack()
        case Nack(delay=delay, reason=reason):
            await delivery.nack(delay, reason=reason)
        case DeadLetter(reason=reason):
            if backend.capabilities.native_dead_letters:
                await delivery.term(reason)
                return
            headers: dict[str, str | bytes] = dict(delivery.headers)
            headers.update(
                {
                    DLQ_TOPIC: delivery.topic,
                    DLQ_PARTITION: str(delivery.partition),
                    DLQ_OFFSET: str(delivery.offset),
                    DLQ_GROUP: group,
                    DLQ_DELIVERIES: str(delivery.delivery_count),
                    DLQ_REASON: reason,
                }
            )
            await backend.publish(
                dead_letter_topic(delivery.topic, group), delivery.data, key=delivery.key, headers=headers
            )
            await delivery.ack()


@dataclass(slots=True)
class Runner:
    """Runs one subscription's deliveries through its handler (see the module docstring)."""

    spec: SubscriptionSpec
    handler: Handler
    backend: Backend
    source: str
    publish: PublishFn
    request: RequestFn
    store: Store | None = None
    replay: ReplayPolicy = field(default_factory=ReplayPolicy)
    observer: Observer | None = None
    subscribed_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _in_flight: set[asyncio.Task[None]] = field(default_factory=set)
    _partitions: dict[tuple[str, int], asyncio.Lock] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"<Runner {self.spec.name} group={self.spec.group} in_flight={len(self._in_flight)}>"

    async def consume(self, subscription: Subscription) -> None:
        """Read deliveries and run up to ``concurrency`` at once until cancelled or the subscription ends."""
        slots = asyncio.Semaphore(self.spec.concurrency)
        async for delivery in subscription:
            await slots.acquire()
            task = asyncio.create_task(self._one(delivery, slots), name=f"tidings-handler-{self.spec.name}")
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)

    async def wait_idle(self) -> None:
        """Wait for every handler in flight to finish and settle (graceful stop)."""
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)

    async def _one(self, delivery: Delivery, slots: asyncio.Semaphore) -> None:
        try:
            if self.spec.mode == "partitioned" and not delivery.is_request:
                lock = self._partitions.setdefault((delivery.topic, delivery.partition), asyncio.Lock())
                async with lock:
                    await self.handle(delivery)
            else:
                await self.handle(delivery)
        except Exception:  # settling failed (the connection went): the broker redelivers it
            log.exception("tidings: settling %s@%d failed", delivery.topic, delivery.offset)
        finally:
            slots.release()

    async def handle(self, delivery: Delivery) -> None:
        """One delivery, start to settlement."""
        if delivery.is_request:
            if self.spec.respond:
                await self._answer(delivery)
            return  # requests=False should keep requests away; if one came anyway, it is not ours to answer
        outcome: BaseException | None = None
        if self.spec.respond:
            decision: Decision = Ack()  # a plain event on a responder's topic is not its business
        else:
            try:
                outcome = await self._run(delivery)
            except BaseException as exc:  # CancelledError, KeyboardInterrupt: decide says nack(0)
                outcome = exc
            decision = decide(outcome, delivery.delivery_count, self.spec.retries, self.spec.backoff)
        self._log(delivery, decision)
        await settle(delivery, decision, group=self.spec.group, backend=self.backend)
        if self.observer is not None:
            self.observer.on_settled(self.spec.group, delivery, decision)
        if outcome is not None and not isinstance(outcome, Exception):
            raise outcome

    async def _run(self, delivery: Delivery) -> BaseException | None:
        """Decode and call the handler (in the inbox transaction with a store); its exception, or None."""
        try:
            decoded: Decoded[Any] = decode(delivery.data, delivery.headers, self.spec.event_type)
        except Exception as exc:  # EventValidationError: decide dead-letters it at once
            return exc
        with tracing.consumer_span(delivery, self.spec.group, decoded.envelope.id) as span:
            try:
                await self._call(delivery, decoded)
            except Exception as exc:
                tracing.failed(span, exc)
                return exc
        return None

    async def _call(self, delivery: Delivery, decoded: Decoded[Any]) -> None:
        """The handler, with a store in the transaction that also claims the event id in the inbox."""
        if self.store is None:
            await self.handler(decoded.event, self._context(delivery, decoded))
            return
        async with self.store.transaction() as tx:
            if not await tx.mark_handled(self.spec.group, decoded.envelope.id):
                log.info(
                    "tidings: event %s already handled by %s: skipped", decoded.envelope.id, self.spec.group
                )
                return
            await self.handler(decoded.event, self._context(delivery, decoded, tx))

    async def _answer(self, delivery: Delivery) -> None:
        """Run the responder (in a store transaction when there is a store) and reply after the commit.

        No inbox here: a request is not stored and every ``request`` carries a new id, so there is
        nothing to deduplicate; a responder that must decide once per business key (payment, per
        order) does so in ``ctx.db``. The reply leaves only once the transaction has committed, so
        a requester never hears of a decision that was rolled back.
        """
        try:
            decoded: Decoded[Any] = decode(delivery.data, delivery.headers, self.spec.event_type)
            with tracing.consumer_span(delivery, self.spec.group, decoded.envelope.id) as span:
                try:
                    if self.store is None:
                        result = await self.handler(decoded.event, self._context(delivery, decoded))
                    else:
                        async with self.store.transaction() as tx:
                            result = await self.handler(decoded.event, self._context(delivery, decoded, tx))
                except Exception as exc:
                    tracing.failed(span, exc)
                    raise
            encoded = encode(result, source=self.source, type=f"{self.spec.event_type.__qualname__}.reply")
        except Exception as exc:
            log.warning("tidings: responder %s failed: %s", self.spec.name, describe(exc))
            await delivery.reply(b"", headers={ERROR_HEADER: describe(exc)})
            return
        await delivery.reply(encoded.data, headers=encoded.headers)

    def _context(self, delivery: Delivery, decoded: Decoded[Any], tx: Any = None) -> Context:
        return Context(
            delivery=delivery,
            envelope=decoded.envelope,
            group=self.spec.group,
            subscribed_at=self.subscribed_at,
            source=self.source,
            _publish=self.publish,
            _request=self.request,
            replay=self.replay,
            transaction=tx,
        )

    def _log(self, delivery: Delivery, decision: Decision) -> None:
        where = {
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
            "group": self.spec.group,
            "handler": self.spec.name,
            "delivery_count": delivery.delivery_count,
            "decision": type(decision).__name__,
        }
        if isinstance(decision, Ack):
            log.debug("tidings: handled %s@%d", delivery.topic, delivery.offset, extra={"tidings": where})
        elif isinstance(decision, Nack):
            log.warning(
                "tidings: %s failed on %s@%d (delivery %d), retry in %.2fs: %s",
                self.spec.name, delivery.topic, delivery.offset, delivery.delivery_count, decision.delay,
                decision.reason, extra={"tidings": where},
            )  # fmt: skip
        else:
            log.error(
                "tidings: %s dead-lettered %s@%d: %s", self.spec.name, delivery.topic, delivery.offset,
                decision.reason, extra={"tidings": where},
            )  # fmt: skip


async def stop_consuming(task: asyncio.Task[None] | None) -> None:
    """Cancel a ``consume`` task (it only waits for the next delivery) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
