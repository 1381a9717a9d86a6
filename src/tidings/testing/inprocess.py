"""``InProcessBroker``: the real broker in this process and event loop, reached through in-memory pipes.

This is what ``memory://`` runs on, so that memory:// has the broker's
semantics because it *is* the broker: the same ``BrokerServer``, core,
consumer groups and storage, minus the sockets. Nothing is re-implemented.

* **Pipes.** ``connect`` is a client ``TransportFactory``: it makes a
  ``MockTransport`` pair, gives the client one end, and hands the other,
  wrapped in ``PipeTransport`` (the ``asyncio.Transport`` a server ``Session``
  expects), to ``BrokerServer.accept``. The broker opens no socket
  (``start(listen=False)``). Pipes have no write buffer limit: a test broker
  does not need back-pressure toward its clients.
* **Storage.** The logs live in ``data_dir`` with ``fsync = never`` (the
  data is thrown away with the directory, so paying for durability would be
  waste); reads come from the page cache.
* **Restart.** ``restart()`` stops the server cleanly and starts a new one on
  the same directory; clients see their connection close and reconnect by
  themselves. ``restart(crash=True)`` first breaks every pipe without a
  goodbye, as a killed process would, so produces in flight are resent.

Why this module may import ``tidings.server`` (see pyproject.toml's import
contracts): ``tidings.testing`` is where the shipped test doubles live, and
this one needs the broker's shell to accept connections; the client SDK and
the framework still never import the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from tidings.client.transport import MockTransport, Transport
from tidings.errors import ConnectFailed, ConnectionLost, ListenError
from tidings.records import Buffer
from tidings.server import BrokerConfig, BrokerServer
from tidings.server.session import Session

DEFAULTS: Final[dict[str, Any]] = {
    "fsync": "never",
    "port": 0,
    "http_port": 0,
    "shutdown_grace_ms": 1_000,
    "progress_save_interval_ms": 20,
}


class PipeTransport(asyncio.Transport):
    """The broker's end of an in-memory connection, as the ``asyncio.Transport`` a ``Session`` uses.

    A pump task reads what the client wrote and feeds it to the session;
    ``pause_reading`` holds the next chunk until ``resume_reading``. The end
    of the stream, or a broken pipe, becomes ``connection_lost``.
    """

    def __init__(self, end: MockTransport) -> None:
        super().__init__()
        self._end = end
        self._session: Session | None = None
        self._reading = asyncio.Event()
        self._reading.set()
        self._closing = False
        self._pump: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"<PipeTransport {'closing' if self._closing else 'open'} {self._end!r}>"

    def serve(self, session: Session) -> None:
        """Start feeding ``session`` (after ``BrokerServer.accept`` made the connection)."""
        self._session = session
        self._pump = asyncio.get_running_loop().create_task(self._read(), name="tidings-pipe")

    async def _read(self) -> None:
        assert self._session is not None
        failure: Exception | None = None
        try:
            while True:
                data = await self._end.read()
                await self._reading.wait()  # paused meanwhile: hold the chunk until resumed
                if not data or self._closing:
                    break
                self._session.data_received(data)
        except ConnectionLost as exc:
            failure = exc
        finally:
            self._closing = True
            self._end.close()
            self._session.connection_lost(failure)

    # -- asyncio.Transport ------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writelines([data])

    def writelines(self, list_of_data: Iterable[Buffer]) -> None:
        if self._closing:
            return
        with contextlib.suppress(ConnectionLost):  # the client went away; the pump sees it too
            self._end.write(list_of_data)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._end.close()  # the client reads what was written, then the end of the stream
            self._reading.set()

    def abort(self) -> None:
        self._closing = True
        self._end.abort()
        self._reading.set()

    def is_closing(self) -> bool:
        return self._closing

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # unbounded: see the module docstring

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": "memory"}.get(name, default)


class InProcessBroker:
    """A ``BrokerServer`` on this event loop without a listener; ``connect`` is a client transport factory.

    ``settings`` are ``BrokerConfig`` fields, over ``DEFAULTS``.
    """

    def __init__(self, data_dir: Path, *, name: str = "memory", **settings: Any) -> None:
        self.name = name
        self.data_dir = data_dir
        self.config = BrokerConfig(data_dir=str(data_dir), **{**DEFAULTS, **settings}).validate()
        self.server: BrokerServer | None = None
        self.restarts = 0
        self._pipes: set[PipeTransport] = set()

    def __repr__(self) -> str:
        state = "running" if self.server is not None else "stopped"
        return f"<InProcessBroker {self.name!r} {state} data={self.data_dir} pipes={len(self._pipes)}>"

    @property
    def running(self) -> bool:
        return self.server is not None

    async def start(self) -> None:
        if self.server is not None:
            return
        server = BrokerServer(self.config)
        await server.start(listen=False)
        self.server = server

    async def stop(self) -> None:
        """Stop cleanly: clients are sent Close, commits and group progress are finished and saved."""
        server, self.server = self.server, None
        if server is not None:
            await server.stop()
        self._pipes.clear()

    async def restart(self, *, crash: bool = False) -> None:
        """Stop and start again on the same data; ``crash`` breaks every connection first, unannounced."""
        if crash:
            for pipe in list(self._pipes):
                pipe.abort()
            await asyncio.sleep(0)  # let the sessions see it before the server stops
        await self.stop()
        await self.start()
        self.restarts += 1

    async def connect(self) -> Transport:
        """A new connection (the client's ``TransportFactory``); ``ConnectFailed`` while stopped."""
        if self.server is None:
            raise ConnectFailed(
                f"cannot connect to memory://{self.name}: the in-process broker is not running"
            )
        client_end, server_end = MockTransport.pair()
        pipe = PipeTransport(server_end)
        try:
            session = self.server.accept(pipe)
        except ListenError as exc:
            raise ConnectFailed(f"cannot connect to memory://{self.name}: {exc}") from exc
        pipe.serve(session)
        self._pipes.add(pipe)
        self._pipes = {p for p in self._pipes if not p.is_closing()}
        return client_end
