"""Running a broker as a process: the event loop, signals, and the one line that says it is ready.

``run(config)`` blocks until SIGTERM or SIGINT, then shuts down cleanly
(``BrokerServer.stop``) and returns. uvloop is used when installed. Once the
broker listens it prints exactly one line to stdout, and flushes it, so
scripts and test harnesses can wait for it::

    tidings broker listening on tidings://127.0.0.1:7400

With ``port = 0`` the line names the port the system chose. When the HTTP
API is on (``http``, the default), its URL goes to stderr, so stdout keeps
its one-line contract for scripts::

    tidings broker HTTP API on http://127.0.0.1:7401

Every failure to start is a ``TidingsError`` with one clear message (the
CLI prints it).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Callable

from tidings.server.broker import BrokerServer
from tidings.server.config import BrokerConfig

log = logging.getLogger(__name__)


def ready_line(server: BrokerServer) -> str:
    return f"tidings broker listening on {server.url}"


def http_line(server: BrokerServer) -> str | None:
    url = server.http_url
    return None if url is None else f"tidings broker HTTP API on {url}"


async def serve(config: BrokerConfig, *, ready: Callable[[BrokerServer], None] | None = None) -> None:
    """Start a broker, report it ready, and serve until SIGTERM/SIGINT (or ``server.stop()``)."""
    server = BrokerServer(config)
    await server.start(http=config.http)
    # Everything made so far (modules, classes, the opened logs' state) lives as long as the
    # process: out of the collector's sight, a full collection no longer walks it. Without
    # this, a full collection of the broker's ~52,000 start-up objects paused every client for
    # 13-41 ms here at unpredictable times (the p99 of end-to-end latency; docs/performance.md, round 4).
    gc.freeze()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(signum, stop.set)
    if ready is not None:
        ready(server)
    waiter = loop.create_task(server.wait_stopped())
    stopper = loop.create_task(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        stopper.cancel()
        await server.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)


def _print_ready(server: BrokerServer) -> None:
    sys.stdout.write(ready_line(server) + "\n")
    sys.stdout.flush()
    http = http_line(server)
    if http is not None:
        sys.stderr.write(http + "\n")
        sys.stderr.flush()


def run(config: BrokerConfig) -> None:
    """Serve in a fresh event loop (uvloop when available) until a signal; print the ready line."""
    try:
        import uvloop  # noqa: PLC0415 - optional dependency, absent on Windows
    except ImportError:  # pragma: no cover
        asyncio.run(serve(config, ready=_print_ready))
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(config, ready=_print_ready))
