"""``OutboxRelay``: moves outbox rows to the broker, in order, until each one is acknowledged.

    relay = OutboxRelay(store, publish)       # publish(topic, data, key, headers) -> awaitable
    async with relay:                          # runs in the background until the block ends
        ...

``publish`` must return only once the broker has made the event durable
(Tidings' ``client.publish`` does; so does every backend's ``publish``) and
raise if it could not. A round of the relay:

1. read up to ``batch`` pending rows, lowest id first;
2. split them by (topic, key), keeping id order inside each; keyless rows of
   a topic count as one key. Each group is published one row at a time, the
   next only after the previous one's ack; different groups run concurrently
   (at most ``max_in_flight`` at once). A group stops at its first failure,
   so a later row never overtakes an earlier one of the same key;
3. mark every acknowledged row published, in one transaction.

Then, if a publish failed (the broker is down), wait ``retry.delay(n)`` for
the n-th failed round in a row and start over from the oldest pending row;
else if the batch was full, go on at once; else sleep until a transaction
that enqueued commits (``Store.notify``) or ``poll_interval`` passes (rows
written by other processes are found by polling). Nothing is ever dropped:
a row stays pending until a publish of it succeeded.

Delivery is at least once. A crash between the broker's ack and step 3, or
a publish whose ack was lost (``ConnectionLost`` from a publish that did
reach the broker), publishes the row again on the next round. Each copy
carries the same ``ce_id``, so it is effectively once end to end: the
broker's idempotent producer drops a resend within one client session, and
the consuming service's inbox (``tidings_inbox``) skips any copy that still
gets through. Ordering is per (topic, key) in the order rows became
visible; rows of two transactions that commit concurrently are ordered by
id as the relay finds them, and a row whose transaction committed late is
still published (the relay scans for unpublished rows, not past a mark).

Run one relay per database: two would publish the same rows (duplicates
the inbox absorbs, but also interleavings that break per-key order).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tidings.app.backoff import Exponential
from tidings.app.store.outbox import OutboxRow
from tidings.app.store.store import Store

__all__ = ["OutboxRelay", "PublishFn", "RelayConfig", "RelayState", "Round"]

log = logging.getLogger("tidings.app.relay")

PublishFn = Callable[[str, bytes, bytes | None, dict[str, bytes]], Awaitable[Any]]
"""``publish(topic, data, key, headers)``: returns once the broker acknowledged the event durably."""


@dataclass(frozen=True, slots=True)
class RelayConfig:
    batch: int = 500
    """Rows read per round."""
    max_in_flight: int = 64
    """(topic, key) groups published concurrently."""
    poll_interval: float = 1.0
    """Seconds between scans when no commit woke the relay."""
    retry: Exponential = field(default_factory=lambda: Exponential(0.05, 5.0))
    """Wait after the n-th failed round in a row (the broker is down)."""

    def __post_init__(self) -> None:
        if self.batch < 1 or self.max_in_flight < 1 or self.poll_interval <= 0:
            raise ValueError("batch >= 1, max_in_flight >= 1 and poll_interval > 0")


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: rows read, rows acknowledged, and the first failure."""

    read: int
    published: int
    error: BaseException | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


class RelayState(enum.Enum):
    IDLE = "idle"
    RUNNING = "running"
    BACKING_OFF = "backing off"
    STOPPED = "stopped"


def groups_of(rows: list[OutboxRow]) -> list[list[OutboxRow]]:
    """``rows`` split by (topic, key), each group in id order, groups in order of their first row."""
    groups: dict[tuple[str, bytes | None], list[OutboxRow]] = {}
    for row in sorted(rows, key=lambda r: r.id):
        groups.setdefault((row.topic, row.key), []).append(row)
    return list(groups.values())


class OutboxRelay:
    """Publishes a store's outbox rows through ``publish`` (see the module docstring)."""

    def __init__(self, store: Store, publish: PublishFn, config: RelayConfig | None = None) -> None:
        self.store = store
        self.config = config or RelayConfig()
        self._publish = publish
        self.state = RelayState.IDLE
        self.published = 0
        self.failed_rounds = 0
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None
        self._waiter: asyncio.Event | None = None
        self._idle = asyncio.Event()

    def __repr__(self) -> str:
        error = f" last_error={self.last_error!r}" if self.last_error else ""
        return f"<OutboxRelay {self.state.value} published={self.published}{error}>"

    # -- one round ----------------------------------------------------------------------------

    async def run_once(self) -> Round:
        """Read pending rows, publish them, mark the acknowledged ones (steps 1 to 3).

        For tests and tools: never while the relay runs in the background, or rows go out twice.
        """
        rows = await self.store.pending(self.config.batch)
        if not rows:
            return Round(read=0, published=0)
        acked: list[int] = []
        errors: list[BaseException] = []
        slots = asyncio.Semaphore(self.config.max_in_flight)

        async def push(group: list[OutboxRow]) -> None:
            async with slots:
                for row in group:
                    try:
                        await self._publish(row.topic, row.data, row.key, row.headers)
                    except Exception as exc:
                        errors.append(exc)
                        log.warning("outbox row %d to %s not published: %s", row.id, row.topic, exc)
                        return
                    acked.append(row.id)

        await asyncio.gather(*(push(group) for group in groups_of(rows)))
        if acked:
            await self.store.mark_published(acked)
        self.published += len(acked)
        return Round(read=len(rows), published=len(acked), error=errors[0] if errors else None)

    # -- running in the background ----------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._waiter = self.store.waiter()
            self.state = RelayState.RUNNING
            self._task = asyncio.create_task(self._run(), name="tidings-outbox-relay")

    async def stop(self) -> None:
        """Stop now. A publish in flight is abandoned; its row stays pending and goes out next time."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._waiter is not None:
            self.store.forget(self._waiter)
            self._waiter = None
        self.state = RelayState.STOPPED

    async def __aenter__(self) -> OutboxRelay:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def drain(self, timeout: float) -> None:
        """Wait until a round finds nothing pending; ``TimeoutError`` after ``timeout`` seconds."""
        if self._task is None:
            raise RuntimeError("the relay is not running: start() it first")
        async with asyncio.timeout(timeout):
            while True:
                self._idle.clear()
                if self._waiter is not None:
                    self._waiter.set()  # make it look now rather than at the next poll
                await self._idle.wait()
                if await self.store.count_pending() == 0:
                    return

    async def _run(self) -> None:
        assert self._waiter is not None
        waiter = self._waiter
        failures = 0
        while True:
            waiter.clear()
            try:
                result = await self.run_once()
            except Exception as exc:  # the database itself failed: keep trying, like the broker
                log.warning("outbox relay cannot read its store: %s", exc)
                result = Round(read=0, published=0, error=exc)
            if result.failed:
                failures += 1
                self.failed_rounds += 1
                self.last_error = result.error
                self.state = RelayState.BACKING_OFF
                await asyncio.sleep(self.config.retry.delay(failures))
                continue
            if failures:
                log.info("outbox relay publishing again after %d failed round(s)", failures)
                failures = 0
            self.state = RelayState.RUNNING
            if result.read >= self.config.batch:
                continue
            self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), self.config.poll_interval)
