"""``TestApp``: run an App against a private in-memory broker and wait until everything is handled.

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1", sku="tea", qty=2))
        await t.drain()                        # every event handled, retried or dead-lettered
        assert t.published(StockReserved) == [StockReserved(order_id="o-1")]

The broker is ``memory://`` (a private instance: the real broker's code in
this process), so groups, nack delays, dead letters and request/reply behave
as in production; nothing is mocked. ``drain`` knows when the work is done
because the App tells its ``Observer`` every publish (with its receipt) and
every settlement: it waits until each event published to a subscribed topic
was acked or dead-lettered by every group that subscribes to it, and the
outbox has nothing pending. An event still waiting for its retry keeps
``drain`` waiting, so a test of retries needs a short backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

from tidings.app.application import App
from tidings.app.codec import decode
from tidings.app.events import event_info
from tidings.app.runner import Ack, DeadLetter, Decision
from tidings.backends.base import Delivery, Receipt

__all__ = ["Recorded", "TestApp"]

E = TypeVar("E")

_Position = tuple[str, str, int, int]  # group, topic, partition, offset


@dataclass(frozen=True, slots=True)
class Recorded:
    """One message the App published (directly, through ``ctx.publish`` or through the outbox relay)."""

    topic: str
    partition: int
    offset: int
    data: bytes
    headers: dict[str, bytes]


class TestApp:
    """An ``App`` on a private memory:// broker, with ``publish``, ``drain``, ``published`` and ``read``."""

    __test__ = False  # not a pytest class

    def __init__(self, app: App, *, broker: str = "memory://") -> None:
        self.app = app
        self.app.broker_url = broker
        self.app.observer = self
        self.records: list[Recorded] = []
        self._outstanding: set[_Position] = set()
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"<TestApp {self.app.name} published={len(self.records)} outstanding={len(self._outstanding)}>"

    # -- the Observer the App reports to ----------------------------------------------------------

    def on_published(
        self, topic: str, partition: int, offset: int, data: bytes, headers: dict[str, bytes]
    ) -> None:
        self.records.append(Recorded(topic, partition, offset, data, dict(headers)))
        for spec in self.app.specs:
            if not spec.respond and event_info(spec.event_type).topic == topic:
                self._outstanding.add((spec.group, topic, partition, offset))
        self._changed.set()

    def on_settled(self, group: str, delivery: Delivery, decision: Decision) -> None:
        if isinstance(decision, Ack | DeadLetter):
            self._outstanding.discard((group, delivery.topic, delivery.partition, delivery.offset))
        self._changed.set()

    # -- what tests call ------------------------------------------------------------------------------

    async def publish(self, event: Any, key: str | bytes | None = None) -> Receipt:
        return await self.app.publish(event, key)

    def published(self, event_type: type[E]) -> list[E]:
        """Every published ``event_type`` (by topic), decoded, in publish order."""
        topic = event_info(event_type).topic
        return [decode(r.data, r.headers, event_type).event for r in self.records if r.topic == topic]

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait until every published event is settled for good by every group, and the outbox is empty."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if not self._outstanding and await self._outbox_empty():
                    return
                # The relay does not report rows it has yet to publish: look again soon as well.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.05)

    async def _outbox_empty(self) -> bool:
        store = self.app.store
        return store is None or await store.count_pending() == 0

    async def read(self, topic: str, count: int, *, timeout: float = 10.0) -> list[Delivery]:
        """The first ``count`` messages of ``topic`` (a dead-letter topic, say), read by a fresh group."""
        subscription = await self.app.backend.subscribe(
            topic, group=f"testapp-read-{len(self.records)}-{id(self)}", start="earliest", max_deliveries=None
        )
        got: list[Delivery] = []
        try:
            async with asyncio.timeout(timeout):
                async for delivery in subscription:
                    got.append(delivery)
                    await delivery.ack()
                    if len(got) >= count:
                        break
        finally:
            await subscription.close()
        return got

    async def __aenter__(self) -> Self:
        await self.app.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.app.stop()
