"""Stopping background tasks for sure: cancel, wait, and cancel again while any still runs.

redis-py 8.1 can swallow the cancellation of the task awaiting a command
(measured: a task looping on ``await client.ping()``, cancelled at a random
moment, saw its command return normally with the cancellation pending in
most runs), so one ``cancel()`` does not reliably end a loop that talks to
Redis. Every loop here also checks its owner's closed flag; ``stop`` makes
sure the tasks end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RETRY_CANCEL = 0.05


async def stop(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel ``tasks`` and return once every one has ended (re-cancelling every 50 ms meanwhile)."""
    pending = {task for task in tasks if task is not None and not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RETRY_CANCEL)
