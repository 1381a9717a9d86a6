"""Waiting out a lost server: the one retry loop publishes, settlements and admin calls share.

redis-py reconnects on the next command after a connection broke, but it
does not wait for a server that is restarting. ``retrying`` runs a call
until it succeeds, a non-retryable error (``errors.retryable``) is raised,
or ``deadline`` seconds passed, backing off from 20 ms to 500 ms; then it
raises the translated error. A call retried here must be safe to repeat:
publishes carry an id the script deduplicates by (``scripts.PUBLISH``),
``XACK`` and the other settlements are idempotent.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tidings.backends.redis.errors import retryable, translate

T = TypeVar("T")

FIRST_BACKOFF = 0.02
MAX_BACKOFF = 0.5


def backoff(attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1, 2, ...): doubling, capped."""
    return float(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** min(attempt - 1, 10)))


async def retrying(call: Callable[[], Awaitable[T]], what: str, *, url: str, deadline: float) -> T:
    """``await call()``, again while the server is away, for at most ``deadline`` seconds."""
    give_up = time.monotonic() + deadline
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as exc:
            attempt += 1
            if not retryable(exc) or time.monotonic() + backoff(attempt) > give_up:
                raise translate(exc, what, url=url) from exc
        await asyncio.sleep(backoff(attempt))
