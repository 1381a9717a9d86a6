"""The suite's machinery: scenarios, the factory a backend's tests provide, and the ``Harness`` they use.

A *scenario* is an async function of a ``Harness``, registered with
``@scenario(*capabilities)``: it runs only where the backend declares every
capability named, and is otherwise skipped with the backend's reason
(``Scenario.skip_reason``). Scenarios never weaken themselves to suit a
backend: they check what the declared capabilities promise, word for word.

Failures raise ``ConformanceError`` (an ``AssertionError``, so test runners
show it as a failed check, and never stripped by ``python -O``).

Timing: deadlines and delays are short (a few hundred ms) and every wait is
on a condition (the next delivery, a task) with a generous timeout, never a
fixed sleep, so the suite is quick on a fast machine and still correct on a
slow one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tidings.backends.base import (
    Admin,
    Backend,
    Capabilities,
    Delivery,
    Subscription,
    capability_docs,
    capability_names,
)

T = TypeVar("T")

WAIT: float = 5.0
"""Seconds a scenario waits for something that should happen at once (a delivery, a reply)."""


class ConformanceError(AssertionError):
    """A backend did not do what its declared capabilities promise."""


def check(condition: object, message: str) -> None:
    """Raise ``ConformanceError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ConformanceError(message)


Restart = Callable[[bool], Awaitable[None]]
"""``restart(crash)``: stop the server (``crash``: without warning, like kill -9) and start it again,
same address, same data."""


@dataclass
class BackendFactory:
    """What a backend's test file gives the suite: new backends on its private server, and a restart."""

    url: str
    """Where the server under test is (for messages)."""
    make: Callable[[str], Backend]
    """``make(service)``: a new, unopened backend on the server under test."""
    restart: Restart | None = None
    """Restart the server; None where the fixture cannot (then ``reconnects`` must not be declared)."""


ScenarioFunction = Callable[["Harness"], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    name: str
    requires: tuple[str, ...]
    run: ScenarioFunction
    doc: str
    timeout: float = 30.0

    def skip_reason(self, capabilities: Capabilities) -> str | None:
        """Why this scenario does not apply: each missing capability, what it means, the backend's reason."""
        docs = {name: doc.replace("``", "") for name, doc in capability_docs().items()}
        missing = [name for name in self.requires if not getattr(capabilities, name)]
        if not missing:
            return None
        return "; ".join(
            f"capability {name!r} not declared ({docs.get(name, name).split('.')[0].rstrip()}): "
            f"{capabilities.why(name)}"
            for name in missing
        )


SCENARIOS: list[Scenario] = []
"""Every scenario, in the order the modules register them."""


def scenario(*requires: str, timeout: float = 30.0) -> Callable[[ScenarioFunction], ScenarioFunction]:
    """Register the decorated function as a scenario needing capabilities ``requires``."""
    unknown = set(requires) - set(capability_names())
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {capability_names()}")

    def register(function: ScenarioFunction) -> ScenarioFunction:
        doc = " ".join((function.__doc__ or "").split())
        SCENARIOS.append(Scenario(function.__name__, tuple(requires), function, doc, timeout))
        return function

    return register


async def run_scenario(scenario: Scenario, factory: BackendFactory) -> None:
    """Run one scenario (it should not be skipped: see ``skip_reason``), cleaning up after it."""
    harness = Harness(factory)
    try:
        async with asyncio.timeout(scenario.timeout):
            await scenario.run(harness)
    except TimeoutError as exc:
        raise ConformanceError(f"{scenario.name} did not finish within {scenario.timeout:g} s") from exc
    finally:
        await harness.close()


@dataclass
class Harness:
    """Backends, names and waits for one scenario; ``close`` leaves and disconnects everything."""

    factory: BackendFactory
    token: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    _backends: list[Backend] = field(default_factory=list)
    _subscriptions: list[Subscription] = field(default_factory=list)
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    @functools.cached_property
    def capabilities(self) -> Capabilities:
        """What the backend under test declares."""
        return self.factory.make("probe").capabilities

    def name(self, label: str) -> str:
        """A topic or group name of this run only, so scenarios never see each other's messages."""
        return f"{label}-{self.token}"

    async def topic(self, backend: Backend, label: str, *, partitions: int = 1) -> str:
        """A fresh topic name; created with ``partitions`` where the backend is an ``Admin``."""
        topic = self.name(label)
        if isinstance(backend, Admin):
            await backend.create_topic(topic, partitions=partitions)
        return topic

    async def backend(self, service: str = "conformance") -> Backend:
        """A new backend on the server under test, opened; closed by ``close``."""
        backend = self.factory.make(service)
        await backend.open()
        self._backends.append(backend)
        return backend

    async def subscribe(self, backend: Backend, topic: str, **options: Any) -> Subscription:
        """``backend.subscribe``; the subscription is closed by ``close``."""
        subscription = await backend.subscribe(topic, **options)
        self._subscriptions.append(subscription)
        return subscription

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A background task, cancelled by ``close`` if still running."""
        task = asyncio.create_task(coroutine, name=f"conformance-{name}")
        self._tasks.append(task)
        return task

    async def restart(self, *, crash: bool = False) -> None:
        restart = self.factory.restart
        if restart is None:
            raise ConformanceError(
                f"{self.factory.url} declares 'reconnects' but its test factory cannot restart the server"
            )
        await restart(crash)

    async def receive(self, subscription: Subscription, timeout: float = WAIT, what: str = "") -> Delivery:
        """The next delivery, or ``ConformanceError`` after ``timeout`` seconds."""
        try:
            return await asyncio.wait_for(anext(subscription), timeout)
        except TimeoutError:
            raise ConformanceError(
                f"no delivery on {subscription.topic} (group {subscription.group}) within {timeout:g} s"
                + (f": expected {what}" if what else "")
            ) from None

    async def receive_many(
        self, subscription: Subscription, count: int, timeout: float = WAIT, *, ack: bool = True
    ) -> list[Delivery]:
        """The next ``count`` deliveries (each acked unless ``ack=False``), ``timeout`` for each."""
        received: list[Delivery] = []
        for index in range(count):
            delivery = await self.receive(subscription, timeout, what=f"delivery {index + 1} of {count}")
            if ack:
                await delivery.ack()
            received.append(delivery)
        return received

    async def receive_until(
        self, subscription: Subscription, data: bytes, timeout: float = WAIT
    ) -> list[Delivery]:
        """Deliveries up to and including the one carrying ``data`` (all acked)."""
        received: list[Delivery] = []
        while True:
            delivery = await self.receive(subscription, timeout, what=f"the message {data!r}")
            await delivery.ack()
            received.append(delivery)
            if delivery.data == data:
                return received

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscription in self._subscriptions:
            with contextlib.suppress(Exception):
                await subscription.close()
        for backend in self._backends:
            with contextlib.suppress(Exception):
                await backend.close()


def datas(deliveries: Sequence[Delivery]) -> list[bytes]:
    return [d.data for d in deliveries]
