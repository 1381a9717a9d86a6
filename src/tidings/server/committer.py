"""Group commit off the event loop: one committer per partition log, fsyncing in a thread.

Theory of operation
-------------------
A produce appends on the event loop (written, in the page cache) and then
waits for its last offset to fall below the log's high watermark. The
partition's ``Committer`` runs ``log.commit(target)`` in the fsync thread
pool, where ``target`` is the highest offset anyone waits for. While that
fsync runs, more appends arrive and raise ``target``; when it returns, every
waiter now below the high watermark is released, and if some are still
above it, one more commit covers all of them at once. So one fsync serves
every append that arrived during the previous one, and throughput grows
with the number of concurrent producers rather than being capped by the
disk's fsync rate (docs/guarantees.md).

After each commit (and at once for ``interval:MS`` and ``never``, where the
high watermark is the end offset) the committer calls ``on_durable``: the
server tells the group engine that the partition has new records, so
consumers only ever see durable ones.

A failed commit (``LogFailedError``, a closed log) fails every waiter at or
below the target; the server reports their batches as ``Rejected``.

The commit is handed to the thread pool in the call that asks for it, and
its end comes back as one ``call_soon_threadsafe`` callback that releases
the waiters and announces the records: no task, so no event-loop turn is
spent starting it or waking it, and consumers hear of durable records in
the first turn after the fsync.

The commit does not top up the log's preallocated room (see
``PartitionLog.preallocate``): the thread does that after handing the result
to the loop, so zero-filling a few MiB and its fsync never delay an answer
that was ready.

Each commit is timed in its thread (``time.perf_counter`` around
``log.commit``) and the seconds handed to ``on_fsync``: the broker's fsync
latency histogram (``/metrics``), measured where the disk wait happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future

from tidings.errors import TidingsError
from tidings.storage import PartitionLog


class Committer:
    """Waits, fsyncs and wake-ups for one partition log."""

    def __init__(
        self,
        log: PartitionLog,
        executor: Executor,
        on_durable: Callable[[], None],
        *,
        on_fsync: Callable[[float], None] | None = None,
    ) -> None:
        self.log = log
        self._executor = executor
        self._on_durable = on_durable
        self._on_fsync = on_fsync
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._target = -1
        self._idle: asyncio.Future[None] | None = None
        """Not None while a commit runs; done when the committer goes idle (``drain`` waits on it)."""
        self._notify_scheduled = False
        self.commits = 0
        """fsync rounds run so far (for tests and metrics: fewer than appends means group commit works)."""

    def __repr__(self) -> str:
        state = "committing" if self._idle is not None else "idle"
        return f"<Committer {self.log.directory} {state} target={self._target} waiters={len(self._waiters)}>"

    def wait(self, offset: int) -> asyncio.Future[None]:
        """A future done when ``offset`` is durable (below the high watermark), or failed with the error."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if offset < self.log.high_watermark:
            future.set_result(None)
            return future
        self._waiters.append((offset, future))
        self.kick(offset)
        return future

    def kick(self, offset: int) -> None:
        """Something up to ``offset`` was appended: make it durable, then announce it."""
        self._target = max(self._target, offset)
        if self._idle is not None:
            return
        if offset < self.log.high_watermark:  # interval / never: visible already, just announce
            self._announce_soon()
            return
        self._idle = asyncio.get_running_loop().create_future()
        self._start()

    async def drain(self) -> None:
        """Wait until no commit is running (at shutdown)."""
        while self._idle is not None:
            await asyncio.shield(self._idle)

    def _start(self) -> None:
        """Hand the commit to the fsync thread now, not from a task's first step a loop turn later."""
        loop = asyncio.get_running_loop()
        target = self._target
        job = self._executor.submit(self._commit, target)

        def finished(job: Future[float]) -> None:  # in the fsync thread
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody is waiting
                loop.call_soon_threadsafe(self._committed, job, target)
            # The waiters are being released: now top up the log's zero-filled room, in this
            # thread, off their path (a no-op unless it runs low; never raises).
            self.log.preallocate()

        job.add_done_callback(finished)

    def _committed(self, job: Future[float], target: int) -> None:
        """On the loop, right after the fsync: release its waiters and announce, or commit again."""
        again = False
        try:
            try:
                seconds = job.result()
            except TidingsError as exc:
                self._release(failed_up_to=target, error=exc)
                return
            self.commits += 1
            if self._on_fsync is not None:
                self._on_fsync(seconds)
            self._release()
            self._on_durable()
            again = self._target >= self.log.high_watermark
        finally:
            if again:
                self._start()
            else:
                idle, self._idle = self._idle, None
                if idle is not None and not idle.done():
                    idle.set_result(None)

    def _commit(self, target: int) -> float:
        """In the fsync thread: commit, and say how long it took (seconds)."""
        started = time.perf_counter()
        self.log.commit(target, preallocate=False)
        return time.perf_counter() - started

    def _release(self, *, failed_up_to: int = -1, error: TidingsError | None = None) -> None:
        watermark = self.log.high_watermark
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for offset, future in self._waiters:
            if future.done():
                continue
            if offset < watermark:
                future.set_result(None)
            elif error is not None and offset <= failed_up_to:
                future.set_exception(error)
            else:
                waiting.append((offset, future))
        self._waiters = waiting

    def _announce_soon(self) -> None:
        if not self._notify_scheduled:
            self._notify_scheduled = True
            asyncio.get_running_loop().call_soon(self._announce)

    def _announce(self) -> None:
        self._notify_scheduled = False
        self._on_durable()
