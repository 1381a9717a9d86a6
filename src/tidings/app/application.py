"""``App``: a service's handlers, its broker and (optionally) its database, started and stopped as one.

    app = tidings.App("inventory", broker="memory://shop", store="sqlite:///inventory.db")

    @app.subscribe(OrderPlaced, group="inventory", retries=5, backoff=tidings.Exponential(0.2, 30))
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        await ctx.publish(StockReserved(order_id=event.order_id))

    @app.respond(ConfirmPayment)                       # request/reply on the event's topic
    async def confirm(req: ConfirmPayment, ctx: tidings.Context) -> PaymentResult: ...

    async with app:                                    # or: await app.run() until cancelled
        reply = await app.request(ConfirmPayment(...), PaymentResult, timeout=5)

The App reaches the broker only through ``tidings.backends.base`` (the URL
picks the backend: ``broker=`` or ``$TIDINGS_URL``), so one service runs on
every backend. What happens to each delivery is ``tidings.app.handlers``'s
job; the App wires subscriptions, the store, the outbox relay and the lifecycle:

    start: open the backend, open the store and start its relay, subscribe
           every handler (max_deliveries=None: the framework decides retries)
    stop:  stop reading new deliveries, WAIT for the handlers in flight to
           finish and settle (graceful), close the subscriptions, drain the
           relay briefly, stop it, close the store and the backend.

A store makes ``ctx.publish`` go through the outbox; ``app.publish`` outside a
handler always publishes directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from tidings.app.backoff import Backoff, Exponential
from tidings.app.clock import ReplayPolicy
from tidings.app.codec import decode, encode
from tidings.app.events import event_info, event_schema
from tidings.app.handlers import (
    ERROR_HEADER,
    Handler,
    Middleware,
    Observer,
    Runner,
    SubscriptionSpec,
    chain,
    stop_consuming,
)
from tidings.app.tracing import producer_span
from tidings.backends.base import (
    Announcer,
    Backend,
    GroupMode,
    HandledEvent,
    PublishedEvent,
    Receipt,
    StartPosition,
    Subscription,
    open_backend,
)
from tidings.errors import HandlerFailed, InvalidArgument, StoreError, TidingsError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from tidings.app.store import OutboxRelay, Store
    from tidings.app.store.store import Outbox

__all__ = ["App", "AppState"]

log = logging.getLogger("tidings.app")

R = TypeVar("R")
H = TypeVar("H", bound=Handler)


class AppState(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"


class App:
    """A service: its handlers, broker and store. See the module docstring."""

    def __init__(
        self,
        name: str,
        *,
        broker: str | Backend | None = None,
        store: str | None = None,
        replay: ReplayPolicy | None = None,
        start: StartPosition = "latest",
        stop_timeout: float = 30.0,
        emits: Iterable[type] = (),
        **backend_options: Any,
    ) -> None:
        # A Backend instance (unopened; the App opens and closes it) is for backends configured in
        # code, and for the conformance suite, which runs the framework on the backend under test.
        given = None if broker is None or isinstance(broker, str) else broker
        url = given.url if given is not None else broker if isinstance(broker, str) else None
        url = url or os.environ.get("TIDINGS_URL")
        if not url:
            raise InvalidArgument("App needs a broker URL: App(name, broker='memory://') or $TIDINGS_URL")
        self.name = name
        self.broker_url = url
        self._given_backend = given
        self.store_url = store
        self.replay = replay or ReplayPolicy()
        self.start_position = start  # where a new group of this app begins, unless subscribe says
        self.stop_timeout = stop_timeout
        self.backend_options = backend_options
        self.specs: list[SubscriptionSpec] = []
        self.emitted: list[type] = []
        self._published_types: list[type] = []
        self._background: set[asyncio.Future[None]] = set()
        self.emits(*emits)
        self._middleware: list[Middleware] = []
        self.observer: Observer | None = None
        self.state = AppState.NEW
        self._backend: Backend | None = None
        self.store: Store | None = None
        self.relay: OutboxRelay | None = None
        self._runners: list[tuple[Runner, Subscription, asyncio.Task[None]]] = []

    def __repr__(self) -> str:
        return f"<App {self.name} {self.state.value} handlers={len(self.specs)} broker={self.broker_url}>"

    # -- declaring ------------------------------------------------------------------------------

    def subscribe(
        self,
        event_type: type,
        *,
        group: str | None = None,
        retries: int | None = 5,
        backoff: Backoff | None = None,
        concurrency: int = 1,
        mode: GroupMode = "partitioned",
        start: StartPosition | None = None,
        ack_deadline: float = 30.0,
    ) -> Callable[[H], H]:
        """Run the decorated ``async (event, ctx)`` for every ``event_type`` on its topic, in ``group``."""
        info = event_info(event_type)
        if concurrency < 1:
            raise InvalidArgument(f"concurrency must be >= 1, not {concurrency}")

        def register(handler: H) -> H:
            self._add(
                SubscriptionSpec(
                    event_type=event_type,
                    handler=handler,
                    group=group or self.name,
                    retries=retries,
                    backoff=backoff or Exponential(0.2, 30.0),
                    concurrency=concurrency,
                    mode=mode,
                    start=self.start_position if start is None else start,
                    ack_deadline=ack_deadline,
                )
            )
            log.debug("tidings: %s subscribes %s to %s", self.name, handler, info.topic)
            return handler

        return register

    def respond(
        self, event_type: type, *, group: str | None = None, concurrency: int = 1
    ) -> Callable[[H], H]:
        """Answer requests for ``event_type`` (on its topic) with what the decorated handler returns.

        With a store, the handler runs in a transaction (``ctx.db``, ``ctx.publish`` into the outbox)
        and the reply leaves after the commit; if the handler raises, its writes roll back and the
        requester gets ``HandlerFailed``.
        """
        event_info(event_type)

        def register(handler: H) -> H:
            self._add(
                SubscriptionSpec(
                    event_type=event_type,
                    handler=handler,
                    group=group or f"{self.name}.responders",
                    concurrency=concurrency,
                    mode="shared",
                    respond=True,
                )
            )
            return handler

        return register

    def emits(self, *event_types: type) -> None:
        """Declare the event types this service publishes (AsyncAPI ``send`` operations, the flow map).

        Publishing is not limited to them; the declaration is documentation the tools can read
        without running the service.
        """
        for event_type in event_types:
            event_info(event_type)  # TypeError now, not when the document is generated
            if event_type not in self.emitted:
                self.emitted.append(event_type)

    def middleware(self, wrap: Middleware) -> Middleware:
        """Wrap every handler with ``wrap``: the first registered is the outermost. Usable as a decorator."""
        if self.state is not AppState.NEW:
            raise RuntimeError("register middleware before the app starts")
        self._middleware.append(wrap)
        return wrap

    def _add(self, spec: SubscriptionSpec) -> None:
        if self.state is not AppState.NEW:
            raise RuntimeError("register handlers before the app starts")
        self.specs.append(spec)

    # -- publishing and requests ------------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            raise RuntimeError(f"{self!r} is not running: `async with app:` first")
        return self._backend

    async def publish(self, event: Any, key: str | bytes | None = None) -> Receipt:
        """Publish ``event`` to its topic now (never through the outbox)."""
        topic = event_info(event).topic
        with producer_span(topic, self.name) as trace_headers:
            encoded = encode(event, source=self.name, headers=trace_headers)
            receipt = await self.backend.publish(topic, encoded.data, key=key, headers=encoded.headers)
        self._published(receipt, encoded.data, encoded.headers)
        self._note_published_type(event)
        return receipt

    def outbox(self, session: AsyncSession) -> EventOutbox:
        """Publish typed events from a transaction the service owns: they leave when it commits.

        ``async with app.store.transaction() as tx: ...; await app.outbox(tx.session).publish(e)``
        writes the order row and its event atomically; the relay sends the event after the commit.
        """
        if self.store is None:
            raise StoreError(f"{self!r}: app.outbox needs a store (App(..., store=URL)) and a started app")
        return EventOutbox(self.name, self.store.outbox(session))

    async def _ctx_publish(self, event: Any, key: str | bytes | None) -> None:
        await self.publish(event, key)

    async def _relay_publish(
        self, topic: str, data: bytes, key: bytes | None, headers: dict[str, bytes]
    ) -> None:
        receipt = await self.backend.publish(topic, data, key=key, headers=headers)
        self._published(receipt, data, headers)

    def _published(self, receipt: Receipt, data: bytes, headers: dict[str, bytes]) -> None:
        if self.observer is not None:
            self.observer.on_published(receipt.topic, receipt.partition, receipt.offset, data, headers)

    async def request(self, event: Any, reply_type: type[R], *, timeout: float = 5.0) -> R:
        """Ask the responder of ``event``'s topic; its reply as a ``reply_type``.

        ``RequestTimeout`` / ``NoResponders`` from the backend; ``HandlerFailed`` when the responder raised.
        """
        topic = event_info(event).topic
        with producer_span(topic, self.name, operation="request") as trace_headers:
            encoded = encode(event, source=self.name, headers=trace_headers)
            reply = await self.backend.request(topic, encoded.data, headers=encoded.headers, timeout=timeout)
        if ERROR_HEADER in reply.headers:
            reason = bytes(reply.headers[ERROR_HEADER]).decode("utf-8", "replace")
            raise HandlerFailed(f"the responder to {topic} failed: {reason}", reason=reason)
        return decode(reply.data, reply.headers, reply_type).event

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend and the store, start the relay, subscribe every handler."""
        if self.state is not AppState.NEW:
            raise RuntimeError(f"{self!r} cannot start again")
        self.state = AppState.RUNNING
        try:
            self._backend = self._given_backend or open_backend(
                self.broker_url, service=self.name, **self.backend_options
            )
            await self._backend.open()
            if self.store_url is not None:
                from tidings.app.store import OutboxRelay, Store  # noqa: PLC0415 - SQLAlchemy on demand

                self.store = await Store.open(self.store_url)
                self.relay = OutboxRelay(self.store, self._relay_publish)
                await self.relay.start()
            for spec in self.specs:
                await self._start_runner(spec)
            await self._announce()
        except BaseException:
            await self.stop()
            raise
        log.info("tidings: %s running %d handler(s) on %s", self.name, len(self.specs), self.broker_url)

    async def _announce(self) -> None:
        """Tell a broker with a flow map (``Announcer``) which typed events this service emits and handles.

        Emitted: the ``emits`` declarations and each type published directly so far (events that
        only ever leave through the outbox are known by their declaration). A broker that refuses
        (an older one) costs a warning, not the start.
        """
        backend = self.backend
        if not isinstance(backend, Announcer):
            return
        emitted = [*self.emitted, *(t for t in self._published_types if t not in self.emitted)]
        publishes = [
            PublishedEvent(info.topic, info.type, info.version, event_schema(cls))
            for cls in emitted
            for info in [event_info(cls)]
        ]
        handles = [
            HandledEvent(event_info(spec.event_type).topic, spec.group, event_info(spec.event_type).type)
            for spec in self.specs
        ]
        try:
            await backend.announce(publishes, handles)
        except TidingsError as exc:
            log.warning(
                "tidings: %s could not announce its events to %s: %s", self.name, self.broker_url, exc
            )

    def _note_published_type(self, event: Any) -> None:
        """A type published for the first time is announced (in the background): the map stays complete."""
        cls = type(event)
        if cls in self._published_types or cls in self.emitted:
            return
        self._published_types.append(cls)
        if self.state is AppState.RUNNING:
            task = asyncio.ensure_future(self._announce())
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _start_runner(self, spec: SubscriptionSpec) -> None:
        topic = event_info(spec.event_type).topic
        subscribed_at = datetime.now(UTC)
        subscription = await self.backend.subscribe(
            topic,
            group=spec.group,
            mode=spec.mode,
            start=spec.start,
            prefetch=max(spec.concurrency, 1) * 2,
            ack_deadline=spec.ack_deadline,
            max_deliveries=None,
            requests=spec.respond,  # a request must reach a responder, never a plain subscriber
        )
        runner = Runner(
            spec=spec,
            handler=chain(spec.handler, self._middleware),
            backend=self.backend,
            source=self.name,
            publish=self._ctx_publish,
            request=self.request,
            store=self.store,
            replay=self.replay,
            observer=self.observer,
            subscribed_at=subscribed_at,
        )
        task = asyncio.create_task(runner.consume(subscription), name=f"tidings-consume-{spec.name}")
        task.add_done_callback(self._consumer_ended)
        self._runners.append((runner, subscription, task))

    def _consumer_ended(self, task: asyncio.Task[None]) -> None:
        """A subscription the server ended (or that failed) stops its handler: say so loudly."""
        if not task.cancelled() and task.exception() is not None:
            log.error("tidings: %s: %s stopped: %r", self.name, task.get_name(), task.exception())

    async def stop(self) -> None:
        """Graceful stop: finish and settle the handlers in flight, then close everything."""
        if self.state in (AppState.STOPPING, AppState.STOPPED, AppState.NEW):
            if self.state is AppState.NEW:
                self.state = AppState.STOPPED
            return
        self.state = AppState.STOPPING
        for pending in list(self._background):
            pending.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        runners, self._runners = self._runners, []
        for _, _, task in runners:
            await stop_consuming(task)
        try:
            async with asyncio.timeout(self.stop_timeout):
                for runner, _, _ in runners:
                    await runner.wait_idle()
        except TimeoutError:
            log.warning("tidings: %s stopped with handlers still running after %.0fs", self.name,
                        self.stop_timeout)  # fmt: skip
        for _, subscription, _ in runners:
            with contextlib.suppress(Exception):
                await subscription.close()
        if self.relay is not None:
            with contextlib.suppress(TimeoutError, RuntimeError):
                await self.relay.drain(min(self.stop_timeout, 5.0))
            await self.relay.stop()
        if self.store is not None:
            await self.store.close()
        if self._backend is not None:
            await self._backend.close()
        self.state = AppState.STOPPED
        log.info("tidings: %s stopped", self.name)

    async def run(self) -> None:
        """Start, run until cancelled (SIGINT/SIGTERM in ``tidings run``), then stop gracefully."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class EventOutbox:
    """``app.outbox(session)``: typed events into the outbox of a transaction the caller owns."""

    __slots__ = ("_outbox", "_source")

    def __init__(self, source: str, outbox: Outbox) -> None:
        self._source = source
        self._outbox = outbox

    async def publish(self, event: Any, key: str | bytes | None = None) -> int:
        """Queue ``event`` (CloudEvents headers, this service as source); returns the outbox row id."""
        topic = event_info(event).topic
        with producer_span(topic, self._source, operation="create") as trace_headers:
            encoded = encode(event, source=self._source, headers=trace_headers)
            return await self._outbox.enqueue(topic, encoded.data, key=key, headers=encoded.headers)
