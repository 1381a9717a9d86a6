"""Byte streams to the broker: a TCP transport and an in-memory mock, behind one small interface.

The connection pump (``tidings.client.connection``) needs four things from a
stream, and nothing else: ``read`` some bytes (``b""`` at the end), ``write``
a list of buffers without copying them, ``drain`` when the kernel's buffer is
full, and ``close``. ``Transport`` names them. Two implementations ship:

* ``TcpTransport``: an asyncio protocol, with ``TCP_NODELAY`` so a small
  frame (an Ack, a Credit) leaves at once instead of waiting for Nagle's
  timer. TLS when asked. ``OSError`` never escapes: it becomes
  ``ConnectFailed`` or ``ConnectionLost`` here, at the boundary. It is also
  a ``PushTransport``: after the handshake the pump is handed each chunk
  from the loop's read callback instead of reading in a task.
* ``MockTransport``: two ends joined in memory, like a socketpair. Tests
  drive the far end with a protocol ``Connection(Role.SERVER)`` and script
  the broker frame by frame, with no socket and no broker (the idea of
  httpcore's mock backend). ``MockListener`` hands a fresh pair to each
  connect, so reconnects can be tested too.

A ``TransportFactory`` is what a ``Client`` calls to dial: any coroutine
function returning a ``Transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl as _ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol, cast, runtime_checkable

from tidings.client.config import BrokerAddress
from tidings.errors import ConnectFailed, ConnectionLost
from tidings.records import Buffer


class Transport(Protocol):
    """A connected byte stream. One reader and any number of writers, all on one event loop."""

    async def read(self) -> bytes:
        """The next bytes available, or ``b""`` once the peer has closed. Raises ``ConnectionLost``."""
        ...

    def write(self, buffers: Iterable[Buffer]) -> None:
        """Queue ``buffers`` for sending, in order, without copying them. Raises ``ConnectionLost``."""
        ...

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        ...

    def close(self) -> None:
        """Close now. Idempotent; bytes already written are still sent where possible."""
        ...


TransportFactory = Callable[[], Awaitable[Transport]]

EndCallback = Callable[[Exception | None], None]
"""Told once that a stream ended: None for a clean end, else the error that broke it."""


@runtime_checkable
class PushTransport(Transport, Protocol):
    """A transport that can hand what it receives to a callback, as it arrives.

    The connection pump reads the handshake with ``read`` and then calls
    ``deliver_to``: from then on each chunk goes straight from the event
    loop's read callback to ``on_data``, with no reader task to wake between
    the socket and the frame's future (a request's round trip crosses two
    clients and would pay that wake-up on each). ``on_end`` is called once,
    with None for a clean end of stream or the error that broke it.
    """

    def deliver_to(self, on_data: Callable[[bytes], None], on_end: EndCallback) -> None:
        """Hand every chunk from now on (and any not yet read) to ``on_data``; then ``on_end`` once."""
        ...


class StreamProtocol(asyncio.Protocol):
    """The asyncio side of a ``TcpTransport``: buffers until ``deliver_to``, then pushes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.ended = False
        self.error: Exception | None = None
        self.on_data: Callable[[bytes], None] | None = None
        self.on_end: EndCallback | None = None
        self._readable: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, same methods
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        if self.on_data is not None:
            self.on_data(data)
            return
        self.chunks.append(data)
        self._wake_reader()

    def eof_received(self) -> bool:
        self._end(None)
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(exc)
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)  # drain() sees the loss and raises

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _end(self, exc: Exception | None) -> None:
        if self.ended:
            return
        self.ended, self.error = True, exc
        if self.on_end is not None:
            self.on_end(exc)
        self._wake_reader()

    def _wake_reader(self) -> None:
        if self._readable is not None and not self._readable.done():
            self._readable.set_result(None)

    async def readable(self) -> None:
        self._readable = asyncio.get_running_loop().create_future()
        await self._readable

    async def writable(self) -> None:
        if self._writable is not None and not self._writable.done():
            await self._writable


class TcpTransport:
    """A TCP (or TLS) connection, read by callback once the handshake is done (``PushTransport``)."""

    def __init__(self, stream: StreamProtocol) -> None:
        assert stream.transport is not None
        self._stream = stream
        self._transport = stream.transport

    def __repr__(self) -> str:
        peer = self._transport.get_extra_info("peername")
        state = "closing" if self._transport.is_closing() else "open"
        return f"<TcpTransport {state} peer={peer}>"

    @classmethod
    async def open(
        cls, address: BrokerAddress, *, timeout: float = 5.0, tls: _ssl.SSLContext | None = None
    ) -> TcpTransport:
        """Connect to ``address``; ``ConnectFailed`` (with the OS's reason) if it cannot.

        ``tls`` is the context to speak TLS with; without one, ``tidings+tls``
        addresses get the default context (the system's CAs, host name checked).
        """
        context = tls if tls is not None else _ssl.create_default_context() if address.tls else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, stream = await loop.create_connection(
                    StreamProtocol, address.host, address.port, ssl=context
                )
        except TimeoutError as exc:
            raise ConnectFailed(f"cannot connect to {address.url}: no answer in {timeout:g} s") from exc
        except _ssl.SSLError as exc:  # a subclass of OSError: say it is about TLS, not the network
            raise ConnectFailed(f"cannot connect to {address.url}: TLS failed: {exc.reason or exc}") from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectFailed(f"cannot connect to {address.url}: {reason}") from exc
        return cls(stream)

    async def read(self) -> bytes:
        stream = self._stream
        while not stream.chunks:
            if stream.ended:
                if stream.error is not None:
                    raise ConnectionLost(f"connection to the broker broke: {stream.error}") from stream.error
                return b""
            await stream.readable()
        return stream.chunks.popleft()

    def deliver_to(self, on_data: Callable[[bytes], None], on_end: EndCallback) -> None:
        stream = self._stream
        while stream.chunks:
            on_data(stream.chunks.popleft())
        stream.on_data, stream.on_end = on_data, on_end
        if stream.ended:
            on_end(stream.error)

    def write(self, buffers: Iterable[Buffer]) -> None:
        if self._transport.is_closing():
            raise ConnectionLost("connection to the broker is closed")
        self._transport.writelines(buffers)

    async def drain(self) -> None:
        await self._stream.writable()
        if self._stream.ended and self._stream.error is not None:
            raise ConnectionLost(f"connection to the broker broke: {self._stream.error}")

    def close(self) -> None:
        self._transport.close()


def tls_context(
    setting: _ssl.SSLContext | bool | None,
    *,
    scheme_tls: bool,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> _ssl.SSLContext | None:
    """The client's TLS context from its settings (``ClientConfig.tls`` and the files), or ``None``.

    A context given is used as it is. Otherwise TLS is on when the URL's
    scheme is ``tidings+tls`` or ``setting`` is True: the broker's
    certificate is verified (against ``ca_file``, else the system's CAs) and
    its host name checked; a client certificate is loaded when given.
    """
    if isinstance(setting, _ssl.SSLContext):
        return setting
    if setting is False or not (setting or scheme_tls):
        return None
    try:
        context = _ssl.create_default_context(cafile=ca_file)
        if cert_file is not None:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, _ssl.SSLError) as exc:
        raise ConnectFailed(f"cannot set up TLS: {getattr(exc, 'strerror', None) or exc}") from exc
    return context


class MockTransport:
    """One end of an in-memory stream. ``MockTransport.pair()`` makes two joined ends.

    What one end writes, the other reads, as one chunk per ``write``. ``close``
    is seen by the peer as the end of the stream (a clean close). ``abort`` is
    a broken connection: both ends fail at once, as when a cable is pulled.
    ``written`` counts the bytes this end has written.
    """

    def __init__(self, name: str = "mock") -> None:
        self.name = name
        self.peer: MockTransport | None = None
        self.written = 0
        self.closed = False
        self._inbox: deque[bytes] = deque()
        self._eof = False
        self._broken = False
        self._ready = asyncio.Event()

    @classmethod
    def pair(cls) -> tuple[MockTransport, MockTransport]:
        """``(client_end, server_end)``."""
        client, server = cls("client"), cls("server")
        client.peer, server.peer = server, client
        return client, server

    def __repr__(self) -> str:
        state = "broken" if self._broken else "closed" if self.closed else "open"
        return f"<MockTransport {self.name} {state} written={self.written} unread={len(self._inbox)}>"

    async def read(self) -> bytes:
        while not self._inbox:
            if self._broken:
                raise ConnectionLost("connection to the broker broke (mock transport aborted)")
            if self._eof or self.closed:
                return b""
            self._ready.clear()
            await self._ready.wait()
        return self._inbox.popleft()

    def write(self, buffers: Iterable[Buffer]) -> None:
        if self.closed or self._broken or self.peer is None:
            raise ConnectionLost("connection to the broker is closed (mock transport)")
        data = b"".join(bytes(buf) for buf in buffers)
        self.written += len(data)
        if not self.peer.closed:
            self.peer._inbox.append(data)
            self.peer._ready.set()

    async def drain(self) -> None:
        await asyncio.sleep(0)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._ready.set()
        if self.peer is not None:
            self.peer._eof = True
            self.peer._ready.set()

    def abort(self) -> None:
        """Break the stream: both ends' reads raise ``ConnectionLost`` and their writes fail."""
        for end in (self, self.peer):
            if end is not None:
                end._broken = True
                end.closed = True
                end._inbox.clear()
                end._ready.set()


class MockListener:
    """A pretend broker address: ``connect`` is a ``TransportFactory``; ``accept`` returns the far end.

    Set ``refuse`` to a count to make that many next connects fail with
    ``ConnectFailed``, as if the broker were down.
    """

    def __init__(self) -> None:
        self._accepted: asyncio.Queue[MockTransport] = asyncio.Queue()
        self.connections: list[MockTransport] = []
        self.refuse = 0

    def __repr__(self) -> str:
        return f"<MockListener connections={len(self.connections)} refuse={self.refuse}>"

    async def connect(self) -> Transport:
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectFailed("cannot connect to the mock broker: refused")
        client, server = MockTransport.pair()
        self.connections.append(client)
        await self._accepted.put(server)
        return client

    async def accept(self, timeout: float = 5.0) -> MockTransport:
        """The server end of the next connection a client makes."""
        async with asyncio.timeout(timeout):
            return await self._accepted.get()

    def drop_all(self) -> None:
        """Abort every connection made so far."""
        for transport in self.connections:
            with contextlib.suppress(Exception):
                transport.abort()
