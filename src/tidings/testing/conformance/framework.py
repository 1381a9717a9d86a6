"""Scenarios: the service framework (``tidings.App``) on the backend under test.

The other scenarios hold the backend to its contract; these hold the
framework to its promises on that backend, since a service only ever sees
the two together: retries with their backoff, dead letters after the last
retry and at once for an event that fails validation (whether the backend
dead-letters natively or the framework does it for it), the inbox applying a
duplicated event once, per-key order under concurrency, and typed
request/reply. Each scenario runs a real ``App`` on a backend from the
factory (``App(name, broker=backend)``), with its own event class on a topic
of its own and, for the inbox, a SQLite store in a temporary directory.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tidings.app import App, Context, Event, Fixed, NoBackoff, encode
from tidings.backends.base import DLQ_DELIVERIES, DLQ_GROUP, DLQ_REASON, DLQ_TOPIC, Admin
from tidings.errors import HandlerFailed, NoResponders
from tidings.testing.conformance.harness import WAIT, Harness, check, scenario
from tidings.testing.conformance.redelivery import EARLY, read_dead_letter

BACKOFF = 0.3
"""Seconds between the framework's retries in the backoff scenario."""


def _event_class(topic: str, **fields: type) -> type[Event]:
    """An event class of its own for ``topic`` (the topic lives on the class, and each run has its own)."""

    def body(namespace: dict[str, Any]) -> None:
        namespace["__annotations__"] = dict(fields)
        namespace["__module__"] = __name__

    return types.new_class("ConformanceEvent", (Event,), {"topic": topic}, body)


async def _app(h: Harness, label: str, *, store: Path | None = None) -> App:
    """An App on a new backend from the factory; stopped by the scenario's ``async with``."""
    name = h.name(label)
    url = None if store is None else f"sqlite:///{store / f'{label}.db'}"
    return App(name, broker=h.factory.make(name), store=url, stop_timeout=WAIT)


async def _topic(h: Harness, label: str, partitions: int = 1) -> str:
    backend = await h.backend()
    topic = h.name(label)
    if isinstance(backend, Admin):
        await backend.create_topic(topic, partitions=partitions)
    return topic


async def _until(condition: Callable[[], bool], what: str, changed: asyncio.Event) -> None:
    """Wait until ``condition()`` holds, re-checking whenever a handler sets ``changed``."""
    try:
        async with asyncio.timeout(WAIT * 2):
            while not condition():
                await changed.wait()
                changed.clear()
    except TimeoutError:
        check(False, f"the framework did not get there in time: {what}")


@scenario("consumer_groups", "nack_delay")
async def framework_retries_with_backoff(h: Harness) -> None:
    """A handler that fails twice is called again after the backoff each time, then its success is
    final: three calls with delivery counts 1, 2, 3, spaced by the backoff, and nothing dead-lettered."""
    topic = await _topic(h, "fw-retry")
    order = _event_class(topic, n=int)
    calls: list[tuple[int, float]] = []
    changed = asyncio.Event()
    app = await _app(h, "fw-retry")

    @app.subscribe(order, retries=3, backoff=Fixed(BACKOFF), start="earliest")
    async def flaky(event: Any, ctx: Context) -> None:
        calls.append((ctx.delivery_count, time.monotonic()))
        changed.set()
        if ctx.delivery_count < 3:
            raise RuntimeError(f"transient failure {ctx.delivery_count}")

    async with app:
        await app.publish(order(n=1))
        await _until(lambda: len(calls) >= 3, "three calls of a handler that fails twice", changed)
        marker_seen = len(calls)
        await app.publish(order(n=2))  # the success was final: the next call is the next event's
        await _until(lambda: len(calls) > marker_seen, "the next event", changed)
    check([count for count, _ in calls] == [1, 2, 3, 1], f"delivery counts of the calls: {calls}")
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(calls[:3])]
    check(all(gap >= BACKOFF - EARLY for gap in gaps), f"retries came sooner than the backoff: {gaps}")


async def _dead_letters_of(h: Harness, topic: str, group: str) -> dict[str, str]:
    dead = await read_dead_letter(h, await h.backend(), topic, group)
    return {name: value.decode() for name, value in dead.headers.items()}


@scenario("consumer_groups", "replay_from_earliest")
async def framework_dead_letters_after_retries(h: Harness) -> None:
    """After ``retries`` failed retries the event goes to <topic>.dlq.<group> with the dead-letter
    headers and the last error, and the handler is not called again for it."""
    topic = await _topic(h, "fw-dlq")
    order = _event_class(topic, n=int)
    calls: list[int] = []
    changed = asyncio.Event()
    app = await _app(h, "fw-dlq")
    group = app.name

    @app.subscribe(order, retries=1, backoff=NoBackoff(), start="earliest")
    async def broken(event: Any, ctx: Context) -> None:
        calls.append(event.n)
        changed.set()
        if event.n == 1:
            raise ValueError("no such warehouse")

    async with app:
        await app.publish(order(n=1))
        headers = await _dead_letters_of(h, topic, group)
        await app.publish(order(n=2))
        await _until(lambda: 2 in calls, "the event after the dead letter", changed)
    check(calls == [1, 1, 2], f"two calls (the first and one retry), then the next event: {calls}")
    check(
        (headers.get(DLQ_TOPIC), headers.get(DLQ_GROUP), headers.get(DLQ_DELIVERIES)) == (topic, group, "2"),
        f"dead-letter headers {headers}",
    )
    reason = headers.get(DLQ_REASON, "")
    check("ValueError: no such warehouse" in reason, f"the last error in the reason: {reason!r}")


@scenario("consumer_groups", "replay_from_earliest")
async def framework_invalid_event_dead_lettered_at_once(h: Harness) -> None:
    """An event that fails validation is dead-lettered on its first delivery with the validation
    error, never reaches the handler, and does not hold up the events behind it."""
    topic = await _topic(h, "fw-invalid")
    order = _event_class(topic, n=int)
    calls: list[int] = []
    changed = asyncio.Event()
    app = await _app(h, "fw-invalid")

    @app.subscribe(order, retries=5, backoff=Fixed(30.0), start="earliest")
    async def handle(event: Any, ctx: Context) -> None:
        calls.append(event.n)
        changed.set()

    async with app:
        valid = encode(order(n=1), source="conformance")
        await app.backend.publish(topic, b'{"n": "not a number"}', headers=valid.headers, key="k")
        await app.backend.publish(topic, valid.data, headers=valid.headers, key="k")
        await _until(lambda: calls == [1], "the valid event behind the invalid one", changed)
        headers = await _dead_letters_of(h, topic, app.name)
    check(headers.get(DLQ_DELIVERIES) == "1", f"dead-lettered on its first delivery: {headers}")
    check("EventValidationError" in headers.get(DLQ_REASON, ""), f"the validation error: {headers}")


@scenario("consumer_groups")
async def framework_inbox_applies_a_duplicate_once(h: Harness) -> None:
    """An event stored twice (same event id, as an outbox resend after a lost ack would) is applied
    once: the inbox records the id in the handler's transaction and skips the second copy."""
    topic = await _topic(h, "fw-inbox", partitions=2)
    order = _event_class(topic, n=int)
    applied: list[tuple[int, str]] = []
    changed = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="tidings-conformance-") as directory:
        app = await _app(h, "fw-inbox", store=Path(directory))

        @app.subscribe(order, start="earliest")
        async def apply(event: Any, ctx: Context) -> None:
            applied.append((event.n, ctx.event_id))
            changed.set()

        async with app:
            once = encode(order(n=1), source="conformance")
            for _ in range(2):
                await app.backend.publish(topic, once.data, key="k", headers=once.headers)
            await app.publish(order(n=2), key="k")  # same key, so handled after both copies
            await _until(lambda: any(n == 2 for n, _ in applied), "the event after the copies", changed)
    check([n for n, _ in applied] == [1, 2], f"the duplicate was applied again: {applied}")
    check(applied[0][1] == once.id, f"the event id seen by the handler: {applied[0][1]} != {once.id}")


@scenario("consumer_groups", "ordered_per_key")
async def framework_keeps_key_order_under_concurrency(h: Harness) -> None:
    """With ``concurrency`` > 1 in partitioned mode, events of one key are handled one at a time, in
    the order they were published, while different keys run in parallel."""
    topic = await _topic(h, "fw-order", partitions=4)
    order = _event_class(topic, n=int, key=str)
    seen: dict[str, list[int]] = defaultdict(list)
    running: dict[str, int] = defaultdict(int)
    overlaps: list[str] = []
    changed = asyncio.Event()
    app = await _app(h, "fw-order")

    @app.subscribe(order, concurrency=4, start="earliest")
    async def handle(event: Any, ctx: Context) -> None:
        running[event.key] += 1
        if running[event.key] > 1:
            overlaps.append(event.key)
        await asyncio.sleep(0.002)
        seen[event.key].append(event.n)
        running[event.key] -= 1
        changed.set()

    keys = [f"customer-{i}" for i in range(6)]
    per_key = 8
    async with app:
        for n in range(per_key):
            for key in keys:
                await app.publish(order(n=n, key=key), key=key)
        await _until(lambda: sum(map(len, seen.values())) >= per_key * len(keys), "every event", changed)
    check(not overlaps, f"two events of one key ran at once: {overlaps[:5]}")
    wrong = {key: got for key, got in seen.items() if got != list(range(per_key))}
    check(not wrong, f"events of a key out of order: {wrong}")


@scenario("request_reply")
async def framework_request_reply(h: Harness) -> None:
    """``app.request`` gets the typed reply of another service's ``@app.respond`` (never routed to a
    plain ``@app.subscribe`` of the same topic); a responder that raises makes the request fail with
    ``HandlerFailed`` naming the error."""
    topic = h.name("fw-confirm")
    confirm = _event_class(topic, amount=int)
    result = _event_class(h.name("fw-result"), approved=bool)
    responder = await _app(h, "fw-payment")

    @responder.respond(confirm)
    async def answer(request: Any, ctx: Context) -> Any:
        if request.amount < 0:
            raise ValueError("negative amount")
        return result(approved=request.amount <= 100)

    auditor = await _app(h, "fw-audit")  # consumes the same topic's events: must never get a request

    @auditor.subscribe(confirm, start="earliest")
    async def audit(event: Any, ctx: Context) -> None: ...

    caller = await _app(h, "fw-checkout")
    async with responder, auditor, caller:
        reply = await _retry_no_responders(lambda: caller.request(confirm(amount=20), result, timeout=WAIT))
        check(reply == result(approved=True), f"reply {reply!r}")
        for amount in range(4):  # a request routed to the auditor would time out
            reply = await caller.request(confirm(amount=amount), result, timeout=WAIT)
            check(reply == result(approved=True), f"reply {reply!r}")
        try:
            await caller.request(confirm(amount=-1), result, timeout=WAIT)
        except HandlerFailed as exc:
            check("negative amount" in str(exc), f"HandlerFailed names the error: {exc}")
        else:
            check(False, "a responder that raised answered normally")


async def _retry_no_responders(ask: Callable[[], Awaitable[Any]]) -> Any:
    """The first request may race the responder's subscription: retry NoResponders for a moment."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            return await ask()
        except NoResponders:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
