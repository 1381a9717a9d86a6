"""``Inbox``: the deliveries waiting for the application, shared by the subscriptions that fill it.

A topic subscription fills its own inbox; a pattern subscription gives one
inbox to the subscription of every topic it takes, and the application
iterates that one. Iteration returns what is ready, then raises the first
failure a filler reported; it ends once the inbox is closed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from tidings.backends.base import Delivery
from tidings.errors import TidingsError


class Inbox:
    """Deliveries ready for the application, in arrival order."""

    def __init__(self) -> None:
        self._ready: deque[Delivery] = deque()
        self._changed = asyncio.Event()
        self._failure: TidingsError | None = None
        self.closed = False

    def __len__(self) -> int:
        return len(self._ready)

    def put(self, delivery: Delivery) -> None:
        self._ready.append(delivery)
        self._changed.set()

    def discard(self, delivery: Delivery) -> None:
        """Take ``delivery`` out if it is still waiting."""
        if delivery in self._ready:
            self._ready.remove(delivery)

    def drop(self, which: Callable[[Delivery], bool]) -> list[Delivery]:
        """Take out every waiting delivery ``which`` selects; returns them."""
        dropped = [delivery for delivery in self._ready if which(delivery)]
        for delivery in dropped:
            self._ready.remove(delivery)
        return dropped

    def fail(self, error: TidingsError) -> None:
        if self._failure is None:
            self._failure = error
        self._changed.set()

    def close(self) -> None:
        """End iteration; what is still waiting was handed back to the group and is not delivered here."""
        self.closed = True
        self._ready.clear()
        self._changed.set()

    async def next(self) -> Delivery:
        while True:
            if self._ready:
                return self._ready.popleft()
            if self._failure is not None:
                raise self._failure
            if self.closed:
                raise StopAsyncIteration
            self._changed.clear()
            await self._changed.wait()
