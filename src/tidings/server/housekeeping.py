"""The broker's periodic work, each job on its own timer and its blocking part in a thread.

=========================  =====================================  ===================================
job                        every                                  what blocks (runs in a thread)
=========================  =====================================  ===================================
group progress             ``progress_save_interval_ms`` (100)    ``FileGroupStore.save`` (fsync)
interval fsync             the smallest ``interval:MS`` in use    ``PartitionLog.tick``
retention                  ``retention_check_interval_ms`` (60 s) ``apply_retention``, emptying trash
producer snapshots         ``producer_snapshot_interval_ms`` (30s) ``write_snapshot`` (fsync)
=========================  =====================================  ===================================

Progress the engine hands out is kept until a save succeeds: a failed save
(a full disk) is retried with newer changes merged over it, never dropped.
After a kill -9, the acks of at most one save interval are lost, so those
messages are delivered again (at least once; docs/guarantees.md).

The engine's own timers (ack deadlines, delayed redeliveries) are not here:
the server arms one timer at ``BrokerCore.next_wakeup()`` after every call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from typing import Any

from tidings.core import producer_state
from tidings.core.broker import BrokerCore
from tidings.errors import TidingsError
from tidings.server.config import BrokerConfig
from tidings.storage import SyncMode

log = logging.getLogger(__name__)

IDLE_INTERVAL_MS = 1000
"""How often the interval-fsync job looks again when no log uses ``interval:MS``."""


class Housekeeping:
    def __init__(self, core: BrokerCore, config: BrokerConfig, executor: Executor) -> None:
        self.core = core
        self.config = config
        self._executor = executor
        self._tasks: list[asyncio.Task[None]] = []
        self._unsaved: dict[Any, Any] = {}
        self._save_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"<Housekeeping jobs={len(self._tasks)} unsaved={len(self._unsaved)}>"

    def start(self) -> None:
        c = self.config
        jobs: list[tuple[str, Callable[[], int], Callable[[], Awaitable[None]]]] = [
            ("progress", lambda: c.progress_save_interval_ms, self.save_progress),
            ("interval-fsync", self._fsync_interval, self._interval_fsync),
            ("retention", lambda: c.retention_check_interval_ms, self._retention),
            ("producer-snapshots", lambda: c.producer_snapshot_interval_ms, self.write_snapshots),
        ]
        for name, interval, job in jobs:
            self._tasks.append(asyncio.get_running_loop().create_task(self._every(interval, job), name=name))

    async def stop(self) -> None:
        # Not in the middle of a progress save: cancelling one whose job still waits for a thread
        # cancels the job too, and the changes it took from the engine would never be written.
        async with self._save_lock:
            for task in self._tasks:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _every(self, interval_ms: Callable[[], int], job: Callable[[], Awaitable[None]]) -> None:
        while True:
            await asyncio.sleep(interval_ms() / 1000)
            try:
                await job()
            except asyncio.CancelledError:
                raise
            except Exception:  # a housekeeping failure must not stop the broker; it is logged
                log.exception("housekeeping job failed")

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # -- jobs ----------------------------------------------------------------------

    async def save_progress(self) -> None:
        """Save what the engine's groups settled since the last save (off the loop)."""
        async with self._save_lock:
            engine = self.core.engine
            self._unsaved.update(engine.take_progress_changes())
            deleted = engine.take_progress_deletions()
            if deleted:  # a deleted topic's progress: drop it, unsaved or saved
                for key in deleted:
                    self._unsaved.pop(key, None)
                try:
                    await self._run(self.core.store.delete, deleted)
                except (OSError, TidingsError) as exc:
                    log.error("removing a deleted topic's group progress failed: %s", exc)
            if not self._unsaved:
                return
            changes, self._unsaved = self._unsaved, {}
            try:
                await self._run(self.core.store.save, changes)
            except (OSError, TidingsError) as exc:
                log.error("saving group progress failed (will retry): %s", exc)
                changes.update(self._unsaved)
                self._unsaved = changes

    def _fsync_interval(self) -> int:
        intervals = [
            lg.config.fsync.interval_ms
            for _, _, lg in self.core.topics.logs()
            if lg.config.fsync.mode is SyncMode.INTERVAL and lg.config.fsync.interval_ms
        ]
        return min(intervals, default=IDLE_INTERVAL_MS)

    async def _interval_fsync(self) -> None:
        due = [
            lg
            for _, _, lg in self.core.topics.logs()
            if lg.config.fsync.mode is SyncMode.INTERVAL and lg.end_offset > lg.durable_offset
        ]
        for partition_log in due:
            try:
                await self._run(partition_log.tick)
            except TidingsError as exc:
                log.error("interval fsync of %s failed: %s", partition_log, exc)

    async def _retention(self) -> None:
        for _, _, partition_log in self.core.topics.logs():
            try:
                removed = await self._run(partition_log.apply_retention)
            except TidingsError as exc:
                log.error("retention of %s failed: %s", partition_log, exc)
                continue
            if removed:
                log.info("retention removed %d segment(s) of %s", len(removed), partition_log)
        await self._run(self.core.datadir.empty_trash)

    async def write_snapshots(self) -> None:
        """Forget long-idle producers, then snapshot every loaded partition's producer state."""
        self.core.producers.expire(self.core.clock())
        for partition_log, data in self.core.produce_path.snapshots():
            try:
                await self._run(producer_state.write_snapshot, partition_log, data)
            except OSError as exc:  # a topic deleted meanwhile, a full disk: the log tail covers it
                log.warning("producer snapshot of %s not written: %s", partition_log, exc)
