"""One client connection: a pump between a socket and a ``Connection``, with bounded buffers.

A ``Session`` is an ``asyncio.BufferedProtocol``. It moves bytes and
nothing else: every read goes to the ``Connection`` and every decoded frame to
its owner (``SessionOwner.on_frame``, the broker server, which asks the
core); every frame the owner sends goes through ``Connection.send`` and
``transport.writelines``, uncopied. It knows no frame kinds beyond the
lifecycle ones it must write itself (the fatal Error of a protocol failure,
and Close).

Bounds, so that one client can never make the broker hold unbounded memory:

* **Incoming frames**: ``Connection`` refuses a length prefix over
  ``max_frame_size`` before buffering the frame; the session then writes the
  fatal Error (``send_error``) and closes this connection only.
* **Outgoing bytes**: the transport's write buffer has a high-water mark
  (``write_buffer_high``). Above it, asyncio calls ``pause_writing``: the
  session stops *reading* from that client (a client that does not read
  its deliveries gets no more of its own requests served), tells its owner
  (``writing_paused``: the broker then builds no deliveries for it until
  ``resume_writing``, so they wait on disk, not in memory), and starts a
  timer. If the buffer is still above the low-water mark after
  ``slow_consumer_timeout_ms``, the client is disconnected with a reason;
  its unacked messages go back to its group. Deliveries are bounded by the
  subscription's credits, but a client may grant many: so the buffer also
  has a hard bound, ``max_send_buffer``, past which the client is cut off at
  once (replies and pings are still written while deliveries are held).
  The broker's memory per connection is never more than that (plus one
  frame), whatever the client does.
* **Connections**: before reading a byte, the session calls ``admit`` (the
  server's connection limits); a refused connection gets a fatal Error
  naming the limit, then is closed.
* **Produce in flight**: bytes of batches written but not yet durable are
  counted per session; above ``max_inflight_produce_bytes`` reading pauses
  until group commits catch up, so a fast producer waits in TCP's window,
  not in broker memory.

Liveness (``check_liveness``, called by the server every few seconds): a
connection that sends no Hello within ``handshake_timeout_ms`` of connecting
is refused, however many bytes it dribbled meanwhile (slowloris); a
client quiet for ``heartbeat_interval_ms`` is sent a Ping (which it must
answer); one silent for ``idle_timeout_ms`` vanished without a FIN (a dead
host, a cut cable) and is dropped, so its unacked messages go back to its
groups in seconds rather than after TCP's keep-alive hours.

Reads. While a large frame is arriving (a Produce of big batches), the
transport reads straight into that frame's own buffer
(``Connection.receive_into``), so a megabyte batch is not copied between
the socket and the log's ``pwritev``. Other reads go to a scratch buffer
reused for every read and then to ``Connection.receive_data``, which keeps
what it needs (one copy, as a plain ``Protocol``'s ``bytes`` would cost).
The scratch is the server's, one for all its sessions (``ReadScratch``):
a read is copied out of it before ``buffer_updated`` returns, and the
sessions of one server share one event loop, so no two reads overlap. A
scratch per session (256 KiB, zero-filled, so resident) cost a flood of
1,000 idle connections 250 MiB of RSS before any of them sent a byte.

Lifecycle: HANDSHAKE (until Welcome) -> OPEN -> CLOSING (a Close was sent or
received; pending produce results are still flushed) -> CLOSED.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from tidings.errors import FrameTooLarge, HandshakeRejected, ProtocolError, TidingsError
from tidings.protocol import NEED_DATA, Close, Connection, Frame, Ping, Role, State, error_frame
from tidings.server.tls import subjects

log = logging.getLogger(__name__)


class SessionState(enum.Enum):
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_frame_size: int
    write_buffer_high: int
    write_buffer_low: int
    slow_consumer_timeout_ms: int
    max_inflight_produce_bytes: int
    handshake_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 15_000
    idle_timeout_ms: int = 45_000
    max_send_buffer: int = 64 * 1024 * 1024


Admission = Callable[["Session"], TidingsError | None]
"""Counts a new connection, or says why it is refused (a connection limit)."""


class SessionOwner(Protocol):
    def on_frame(self, session: Session, frame: Frame) -> None: ...

    def pump(self) -> None:
        """Called after each read's frames are handled: flush what they caused."""

    def session_lost(self, session: Session) -> None: ...

    def writing_paused(self, session: Session, paused: bool) -> None:
        """The transport's write buffer went over its high-water mark (True), or back under the low one."""


READ_SIZE = 256 * 1024
"""The scratch buffer for reads that are not part of a large frame."""


class ReadScratch:
    """The read buffer the sessions of one event loop share (see the module: why that is safe)."""

    __slots__ = ("_size", "_view")

    def __init__(self, size: int = READ_SIZE) -> None:
        self._view: memoryview | None = None
        self._size = size

    @property
    def view(self) -> memoryview:
        """Allocated at the first read, not when the server starts: an idle server holds none of it."""
        if self._view is None:
            self._view = memoryview(bytearray(self._size))
        return self._view


class Session(asyncio.BufferedProtocol):
    def __init__(
        self,
        owner: SessionOwner,
        session_id: str,
        limits: SessionLimits,
        *,
        admit: Admission | None = None,
        scratch: ReadScratch | None = None,
    ) -> None:
        self.owner = owner
        self._admit = admit
        self.id = session_id
        self.limits = limits
        self.conn = Connection(Role.SERVER, max_frame_size=limits.max_frame_size)
        self.state = SessionState.HANDSHAKE
        self.peer = "?"
        self.ip = "?"
        self.subjects: tuple[str, ...] = ()
        """The names of the client's verified TLS certificate, if it presented one."""
        self.admitted = False
        self.transport: asyncio.Transport | None = None
        self.pending: set[asyncio.Future[None]] = set()
        """Produce results waiting for durability; flushed before the session closes."""
        self.inflight_bytes = 0
        self._pauses: set[str] = set()
        self._stuck_timer: asyncio.TimerHandle | None = None
        self._connected_at = self._last_received = self._last_ping = 0.0
        self._pings = 0
        self._scratch = scratch if scratch is not None else ReadScratch()
        """Shared with the server's other sessions; a session made alone gets its own."""
        self._direct = False
        """The last ``get_buffer`` handed out the frame's own buffer, not the scratch."""

    def __repr__(self) -> str:
        return (
            f"<Session {self.id} {self.state.value} peer={self.peer} pauses={sorted(self._pauses)} "
            f"inflight={self.inflight_bytes}>"
        )

    # -- asyncio.Protocol ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass, but the same API
        transport = self.transport
        transport.set_write_buffer_limits(
            high=self.limits.write_buffer_high, low=self.limits.write_buffer_low
        )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # find peers that vanished
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self.ip = str(peer[0]) if isinstance(peer, tuple) else self.peer
        self.subjects = subjects(transport.get_extra_info("peercert"))
        self._connected_at = self._last_received = asyncio.get_running_loop().time()
        refusal = None if self._admit is None else self._admit(self)
        if refusal is not None:
            log.info("%r: refused: %s", self, refusal)
            self.refuse(refusal)

    def get_buffer(self, sizehint: int) -> memoryview:
        view = self.conn.receive_into()
        self._direct = view is not None
        return self._scratch.view if view is None else view

    def buffer_updated(self, nbytes: int) -> None:
        if self._direct:
            self._direct = False
            self._received(None, nbytes)
        else:
            self._received(self._scratch.view[:nbytes], nbytes)

    def data_received(self, data: bytes) -> None:
        """Bytes from a transport that does not use ``get_buffer`` (the in-process pipe)."""
        self._received(data, len(data))

    def _received(self, data: memoryview | bytes | None, nbytes: int) -> None:
        """Hand a read to the connection (``None``: it went straight into the frame), then the frames out."""
        if self.state is SessionState.CLOSED:
            return
        self._last_received = asyncio.get_running_loop().time()
        try:
            if data is None:
                self.conn.received_into(nbytes)
            else:
                self.conn.receive_data(data)
            while (frame := self.conn.next_event()) is not NEED_DATA:
                self.owner.on_frame(self, frame)
                if self.transport is None or self.transport.is_closing():
                    break
        except ProtocolError as exc:
            self._protocol_failed(exc)
        finally:
            self.owner.pump()

    def eof_received(self) -> bool:
        return False  # the peer will send nothing more: close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        self._cancel_stuck_timer()
        self.owner.session_lost(self)

    def pause_writing(self) -> None:
        self._pause("writing")
        if self._stuck_timer is None:
            delay = self.limits.slow_consumer_timeout_ms / 1000
            self._stuck_timer = asyncio.get_running_loop().call_later(delay, self._stuck)
        self.owner.writing_paused(self, True)

    def resume_writing(self) -> None:
        self._cancel_stuck_timer()
        self._resume("writing")
        if self.state is not SessionState.CLOSED:
            self.owner.writing_paused(self, False)

    @property
    def writable(self) -> bool:
        """Whether the transport's write buffer is under its high-water mark (not paused writing)."""
        return "writing" not in self._pauses

    # -- what the owner calls ------------------------------------------------------

    def send(self, frame: Frame) -> None:
        """Write a frame; dropped when the session is closed or the protocol forbids it now."""
        if self.transport is None or self.state is SessionState.CLOSED or self.transport.is_closing():
            return
        try:
            buffers = self.conn.send(frame)
        except FrameTooLarge as exc:
            self.close(f"cannot send a {type(frame).__name__} to this client: {exc}")
            return
        except ProtocolError as exc:  # e.g. a delivery racing the client's Close
            log.debug("%r: %s not sent: %s", self, type(frame).__name__, exc)
            return
        self.transport.writelines(buffers)
        queued = self.transport.get_write_buffer_size()
        if queued > self.limits.max_send_buffer and self.state is not SessionState.CLOSING:
            self.close(
                f"the client left {queued} bytes unread, over max_send_buffer "
                f"({self.limits.max_send_buffer}) (slow consumer)",
                abort=True,
            )

    def opened(self) -> None:
        self.state = SessionState.OPEN

    def check_liveness(self, now: float) -> None:
        """Refuse a silent handshake, ping a quiet client, drop one that stopped answering."""
        limits = self.limits
        if self.state is SessionState.HANDSHAKE:
            if now - self._connected_at >= limits.handshake_timeout_ms / 1000:
                seconds = limits.handshake_timeout_ms / 1000
                self.refuse(HandshakeRejected(f"no Hello within {seconds:g} s of connecting"))
            return
        if self.state is not SessionState.OPEN:
            return
        idle = now - self._last_received
        if idle >= limits.idle_timeout_ms / 1000:
            self.close(f"nothing received from the client for {idle:.1f} s (not even a Pong)", abort=True)
        elif idle >= (interval := limits.heartbeat_interval_ms / 1000) and now - self._last_ping >= interval:
            self._last_ping = now
            self._pings += 1
            self.send(Ping(nonce=self._pings))

    def refuse(self, exc: TidingsError) -> None:
        """Refuse the handshake with a fatal Error carrying the exception's code, then close."""
        self.send(error_frame(exc))
        self._close_transport()

    def close(self, reason: str, *, abort: bool = False) -> None:
        """Send Close (when the protocol still allows it) and close the transport once written."""
        if self.state is SessionState.CLOSED:
            return
        log.info("%r: closing: %s", self, reason)
        if self.conn.state in (State.OPEN, State.CLIENT_CLOSED):
            self.send(Close(reason=reason))
        self.state = SessionState.CLOSING
        self._close_transport(abort=abort)

    def drain(self, reason: str) -> None:
        """Broker shutdown: send Close but keep reading, so the client can flush its last acks."""
        if self.state is SessionState.CLOSED:
            return
        if self.conn.state in (State.OPEN, State.CLIENT_CLOSED):
            self.send(Close(reason=reason))
        self.state = SessionState.CLOSING

    def closing(self) -> None:
        """The client sent Close: stop reading; ``close`` follows once pending results are sent."""
        self.state = SessionState.CLOSING
        self._pause("closing")

    def produce_started(self, size: int) -> None:
        self.inflight_bytes += size
        if self.inflight_bytes > self.limits.max_inflight_produce_bytes:
            self._pause("produce")

    def produce_finished(self, size: int) -> None:
        self.inflight_bytes -= size
        if self.inflight_bytes <= self.limits.max_inflight_produce_bytes:
            self._resume("produce")

    # -- internals -----------------------------------------------------------------

    def _protocol_failed(self, exc: ProtocolError) -> None:
        log.info("%r: protocol error, closing the connection: %s", self, exc)
        if self.transport is not None and self.conn.state is State.ERROR and not self.transport.is_closing():
            self.transport.writelines(self.conn.send_error())
        self.state = SessionState.CLOSING
        self._close_transport()

    def _stuck(self) -> None:
        self._stuck_timer = None
        queued = self.transport.get_write_buffer_size() if self.transport is not None else 0
        timeout = self.limits.slow_consumer_timeout_ms / 1000
        self.close(
            f"the client did not read {queued} queued bytes for {timeout:g} s (slow consumer)", abort=True
        )

    def _cancel_stuck_timer(self) -> None:
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
            self._stuck_timer = None

    def _pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _close_transport(self, *, abort: bool = False) -> None:
        if self.transport is None:
            return
        if abort:
            self.transport.abort()  # a stuck client would never take the queued bytes
        elif not self.transport.is_closing():
            self.transport.close()
