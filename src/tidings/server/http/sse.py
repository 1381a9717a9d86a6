"""``/api/stream``: Server-Sent Events, one compact snapshot every ``interval`` ms, for the dashboard.

Each event is ``event: snapshot`` with one ``data:`` line holding a
``Snapshot`` (flow map, topics, group summaries) as JSON, and an ``id:``
(the snapshot's time), so a browser's ``EventSource`` reconnects by
itself. A comment line (``: ...``) every interval also tells proxies the
stream is alive. The stream ends when the client goes away or the broker
stops (``closing`` is set), so shutdown never waits on a dashboard tab.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

import msgspec
from aiohttp import web

from tidings.server.http.models import Snapshot

DEFAULT_INTERVAL_MS: Final = 1000
MIN_INTERVAL_MS: Final = 200


def frame(snapshot: Snapshot) -> bytes:
    """One SSE event (JSON holds no raw newline, so one ``data:`` line suffices)."""
    return b"event: snapshot\nid: %d\ndata: %s\n\n" % (snapshot.time, msgspec.json.encode(snapshot))


async def stream(
    request: web.Request,
    snapshot: Callable[[], Snapshot],
    closing: asyncio.Event,
    *,
    interval_ms: int = DEFAULT_INTERVAL_MS,
) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    await response.write(b"retry: %d\n\n" % max(interval_ms, MIN_INTERVAL_MS))
    try:
        while not closing.is_set():
            await response.write(frame(snapshot()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), interval_ms / 1000)
    except (ConnectionResetError, ConnectionError):
        pass  # the client left
    return response
