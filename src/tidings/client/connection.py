"""The client's connection pump: bytes between a transport and a protocol ``Connection``.

This is httpcore's shape. The pump owns one transport and one sans-I/O
``Connection(Role.CLIENT)``. It writes what ``Connection.send`` returns, feeds
what it reads to ``receive_data``, and routes each decoded frame:

* a response (it carries the ``request_id`` of a request this end sent) goes
  to the future that ``request()`` returned for it;
* everything else (Deliver, a broker-initiated Unsubscribed, a forwarded
  Request, Ping) goes to the owner's ``on_frame`` callback;
* Close or a fatal Error from the broker, the end of the stream, a broken
  socket or a protocol error ends the connection. The broker's Close goes to
  ``on_frame`` first, so the owner can flush its acks into the half-close.

It knows no protocol rules (the ``Connection`` enforces those) and no
client policy (retries, credits, batching belong to the owner). When it
ends, every pending request fails with ``ConnectionLost`` and ``ended`` is
resolved with the reason, which is how the owner learns it must reconnect.

Lifecycle (``LinkState``)::

    OPENING --Welcome--> OPEN --close()--> CLOSING --broker's Close/EOF--> CLOSED
       |                  |                                                 ^
       +--refused/EOF-----+--EOF, broken, broker Close, protocol error------+
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import time
from collections.abc import Callable

from tidings.client.transport import PushTransport, Transport
from tidings.errors import ConnectFailed, ConnectionLost, NotConnected, ProtocolError, TidingsError
from tidings.protocol import (
    NEED_DATA,
    Close,
    Connection,
    Error,
    Frame,
    Hello,
    Ping,
    Request,
    Role,
    State,
    Welcome,
)

log = logging.getLogger("tidings.client")

FrameSink = Callable[[Frame], None]


class LinkState(enum.Enum):
    OPENING = "opening"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class ClientConnection:
    """One transport and one protocol conversation, from Hello to close."""

    def __init__(self, transport: Transport, *, max_frame_size: int, on_frame: FrameSink) -> None:
        self.transport = transport
        self.protocol = Connection(Role.CLIENT, max_frame_size=max_frame_size)
        self.state = LinkState.OPENING
        self.last_received = time.monotonic()
        self._on_frame = on_frame
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task[None] | None = None
        self.ended: asyncio.Future[TidingsError] = asyncio.get_running_loop().create_future()
        """Resolved, never failed, with the reason once the connection is CLOSED."""

    def __repr__(self) -> str:
        welcome = self.protocol.welcome
        session = f" session={welcome.session_id}" if welcome else ""
        return (
            f"<ClientConnection {self.state.name}{session} pending={len(self._pending)} {self.transport!r}>"
        )

    @property
    def welcome(self) -> Welcome:
        if self.protocol.welcome is None:
            raise NotConnected("the handshake has not completed")
        return self.protocol.welcome

    @property
    def is_open(self) -> bool:
        return self.state is LinkState.OPEN

    @property
    def peer_max_frame_size(self) -> int:
        return self.protocol.peer_max_frame_size

    def next_id(self) -> int:
        """A request id unique on this connection."""
        return next(self._ids)

    # -- opening ----------------------------------------------------------------------------

    async def open(self, hello: Hello, *, timeout: float) -> Welcome:
        """Send Hello and wait for Welcome; then start reading. ``ConnectFailed`` or ``HandshakeRejected``."""
        try:
            async with asyncio.timeout(timeout):
                self.transport.write(self.protocol.send(hello))
                while self.protocol.welcome is None:
                    data = await self.transport.read()
                    if not data:
                        raise ConnectFailed("the broker closed the connection during the handshake")
                    self.protocol.receive_data(data)
                    while self.protocol.welcome is None and self.protocol.next_event() is not NEED_DATA:
                        pass  # nothing but Welcome (or a refusal, raised) can come first
        except TimeoutError as exc:
            self._finish(ConnectFailed(f"the broker did not answer Hello in {timeout:g} s"))
            raise ConnectFailed(f"the broker did not answer Hello in {timeout:g} s") from exc
        except (TidingsError, asyncio.CancelledError) as exc:
            self._finish(exc if isinstance(exc, TidingsError) else NotConnected("cancelled"))
            raise
        self.state = LinkState.OPEN
        self.last_received = time.monotonic()
        # frames that arrived with the Welcome, in the same read
        self._drain_frames()
        if isinstance(self.transport, PushTransport):
            self.transport.deliver_to(self._received, self._stream_ended)
        else:
            self._reader = asyncio.create_task(self._read_loop(), name="tidings-client-reader")
        return self.welcome

    # -- sending ----------------------------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Write ``frame`` now. ``ConnectionLost`` if the connection is not open."""
        if self.state is not LinkState.OPEN:
            raise ConnectionLost(f"cannot send {type(frame).__name__}: the connection is {self.state.value}")
        buffers = self.protocol.send(frame)
        try:
            self.transport.write(buffers)
        except ConnectionLost as exc:
            self._finish(exc)
            raise

    def request(self, frame: Frame) -> asyncio.Future[Frame]:
        """Send ``frame`` (which carries a fresh ``request_id``); the future gets the response frame.

        The response may be a request-scoped ``Error``: the caller translates
        it. The future fails with ``ConnectionLost`` if the connection ends first.
        """
        request_id: int = getattr(frame, "request_id")  # noqa: B009 - every request kind has one
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            self.send(frame)
        except BaseException:
            self._pending.pop(request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by the end this send caused; the caller gets the raise instead
            raise
        return future

    def forget(self, request_id: int) -> None:
        """Stop waiting for ``request_id`` (a timed-out request): a late answer is dropped."""
        self._pending.pop(request_id, None)

    async def drain(self) -> None:
        try:
            await self.transport.drain()
        except ConnectionLost as exc:
            self._finish(exc)
            raise

    # -- closing ----------------------------------------------------------------------------

    async def close(self, reason: str = "", *, timeout: float = 5.0) -> None:
        """Send Close, wait (up to ``timeout``) for the broker's Close, then close the transport."""
        if self.state is LinkState.OPEN:
            with contextlib.suppress(TidingsError):
                self.transport.write(self.protocol.send(Close(reason=reason)))
                self.state = LinkState.CLOSING
        if self.state is LinkState.CLOSING:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.ended), timeout)
        self._finish(NotConnected("the client closed the connection"))
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    def abort(self, reason: TidingsError) -> None:
        """End the connection now, without a Close: for a dead peer."""
        self._finish(reason)

    # -- receiving --------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        """Read in a task: for transports that cannot push (``MockTransport``)."""
        try:
            while self.state is not LinkState.CLOSED:
                data = await self.transport.read()
                if not data:
                    self._finish(ConnectionLost("the broker closed the connection"))
                    return
                self._received(data)
        except TidingsError as exc:
            self._finish(exc)

    def _received(self, data: bytes) -> None:
        """Bytes from the broker: decode and route every whole frame they complete."""
        if self.state is LinkState.CLOSED:
            return
        self.last_received = time.monotonic()
        try:
            self.protocol.receive_data(data)
            self._drain_frames()
        except ProtocolError as exc:
            if self.protocol.state is State.ERROR:
                with contextlib.suppress(Exception):
                    self.transport.write(self.protocol.send_error())
            self._finish(ConnectionLost(f"protocol error from the broker: {exc}"))
        except TidingsError as exc:
            self._finish(exc)
        except Exception as exc:  # a bug in a frame's handler: end this connection (the owner reconnects)
            log.exception("handling a frame from the broker failed")
            self._finish(ConnectionLost(f"internal error while handling a frame: {exc!r}"))

    def _stream_ended(self, error: Exception | None) -> None:
        if error is None:
            self._finish(ConnectionLost("the broker closed the connection"))
        else:
            self._finish(ConnectionLost(f"connection to the broker broke: {error}"))

    def _drain_frames(self) -> None:
        while self.state is not LinkState.CLOSED and (frame := self.protocol.next_event()) is not NEED_DATA:
            self._dispatch(frame)

    def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, Close):
            if self.state is LinkState.OPEN:  # answer the half-close, then we are done
                # The owner first sends what it still may (settlements): the broker's half-close
                # reads them, and acks lost here would be redeliveries after a clean restart.
                with contextlib.suppress(TidingsError):
                    self._on_frame(frame)
                with contextlib.suppress(Exception):
                    self.transport.write(self.protocol.send(Close(reason="broker closed")))
            why = f": {frame.reason}" if frame.reason else ""
            self._finish(ConnectionLost(f"the broker closed the connection{why}"))
            return
        if isinstance(frame, Error) and frame.fatal:
            self._finish(ConnectionLost(f"the broker ended the connection: {frame.code}: {frame.message}"))
            return
        request_id = getattr(frame, "request_id", None)
        if request_id is not None and not isinstance(frame, Request):
            future = self._pending.pop(request_id, None)
            if future is not None:
                if not future.done():
                    future.set_result(frame)
                return
            if not isinstance(frame, Error):
                log.debug("dropping a late %s for request %s", type(frame).__name__, request_id)
                return
        self._on_frame(frame)

    def _finish(self, reason: TidingsError) -> None:
        if self.state is LinkState.CLOSED:
            return
        self.state = LinkState.CLOSED
        with contextlib.suppress(Exception):
            self.transport.close()
        pending, self._pending = self._pending, {}
        failure = reason if isinstance(reason, ConnectionLost | NotConnected) else ConnectionLost(str(reason))
        for future in pending.values():
            if not future.done():
                future.set_exception(failure)
        if not self.ended.done():
            self.ended.set_result(reason)
        log.debug("connection ended: %s", reason)


async def keep_alive(conn: ClientConnection, interval: float) -> None:
    """Ping a quiet broker; give up on one silent for two intervals (it vanished without a FIN).

    Any frame read counts as a sign of life, so a busy connection is never pinged.
    """
    nonce = itertools.count(1)
    while conn.is_open:
        await asyncio.sleep(interval / 2)
        silent = time.monotonic() - conn.last_received
        if silent > 2 * interval:
            conn.abort(ConnectionLost(f"no word from the broker in {silent:.0f} s"))
            return
        if silent >= interval:
            with contextlib.suppress(TidingsError):
                conn.send(Ping(nonce=next(nonce)))
