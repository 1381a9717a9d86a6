"""``Connection``: the sans-I/O protocol endpoint that the broker's sessions and the client's pump drive.

The owner, an asyncio server session or a client connection, moves bytes
and nothing else::

    conn = Connection(Role.CLIENT)
    transport.writelines(conn.send(Hello(...)))     # send() returns buffers; the owner writes them
    ...
    conn.receive_data(chunk)                        # every read, as it comes
    while (frame := conn.next_event()) is not NEED_DATA:
        handle(frame)                               # Welcome, ProduceResult, Deliver, ...

The connection does no I/O, no awaiting and no callbacks, and it never reads
a clock. It holds the conversation's state (``tidings.protocol.state``), the
bounded receive buffer (``tidings.protocol.buffer``) and the handshake's
outcome. Every method either does its whole job or raises and changes
nothing, with one exception: a protocol error on receipt leaves the
connection in ERROR. The owner should then write ``send_error()`` and close
the transport.

End of stream is the owner's business. If the transport ends while
``state`` is not CLOSED, the peer vanished. ``buffered`` then tells whether
it vanished mid-frame.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from typing import Final, Literal

from tidings.errors import HandshakeRejected, ProtocolError
from tidings.protocol.buffer import ReceiveBuffer
from tidings.protocol.codec import DEFAULT_MAX_FRAME_SIZE, decode_frame, encode
from tidings.protocol.frames import (
    MIN_PROTOCOL_VERSION,
    PROTOCOL_VERSION,
    Error,
    Frame,
    Hello,
    Welcome,
    error_frame,
)
from tidings.protocol.state import UNCHANGING, Role, State, transition
from tidings.protocol.values import MAX_FRAME_SIZE_LIMIT, MIN_FRAME_SIZE
from tidings.records import Buffer

HANDSHAKE_MAX_FRAME_SIZE: Final = MIN_FRAME_SIZE
"""The frame limit, each way, until the handshake completes.

A client that has not authenticated cannot make the broker buffer more than
64 KiB, whatever limit the broker grants its sessions later.
"""


class Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = Sentinel.NEED_DATA
"""What ``next_event`` returns when no complete frame is buffered: feed more bytes."""

Event = Frame | Literal[Sentinel.NEED_DATA]


class Connection:
    """One end of a Tidings conversation, in the given role.

    ``max_frame_size`` is the largest frame this end accepts, and it is what
    Hello or Welcome must announce. The peer's announced limit bounds what
    ``send`` will build.
    """

    def __init__(self, role: Role, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> None:
        if not MIN_FRAME_SIZE <= max_frame_size <= MAX_FRAME_SIZE_LIMIT:
            raise ValueError(
                f"max_frame_size {max_frame_size} outside {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE_LIMIT}"
            )
        self.role: Final = role
        self.max_frame_size: Final = max_frame_size
        self.state = State.IDLE
        self._receivable = UNCHANGING[State.IDLE, role.peer]
        self._sendable = UNCHANGING[State.IDLE, role]
        self._peer_limit = HANDSHAKE_MAX_FRAME_SIZE
        self.hello: Hello | None = None
        """The client's Hello, once sent (client) or received (server)."""
        self.welcome: Welcome | None = None
        """The server's Welcome, once sent (server) or received (client). Set means the handshake is done."""
        self.error: ProtocolError | None = None
        """The protocol error that ended the conversation, if one did."""
        self._buffer = ReceiveBuffer(HANDSHAKE_MAX_FRAME_SIZE)

    def __repr__(self) -> str:
        session = f" session={self.welcome.session_id}" if self.welcome else ""
        return (
            f"<Connection {self.role.value} {self.state.name}{session} "
            f"buffered={len(self._buffer)} max_frame_size={self.max_frame_size}>"
        )

    # -- what the owner reads -------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._buffer)

    @property
    def peer_max_frame_size(self) -> int:
        """The largest frame the peer accepts: its announced limit once the handshake is done."""
        return self._peer_limit

    @property
    def protocol_version(self) -> int | None:
        """The version both ends speak. The server knows it from the Hello, the client from the Welcome."""
        if self.welcome is not None:
            return self.welcome.protocol_version
        if self.role is Role.SERVER and self.hello is not None:
            return min(self.hello.protocol_version, PROTOCOL_VERSION)
        return None

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: Buffer) -> None:
        """Hand over bytes read from the transport.

        Drain ``next_event`` until NEED_DATA before the next call, which is
        what keeps the buffer bounded. Raises ``FrameTooLarge`` as soon as a
        frame's length prefix is over the limit, and ``MalformedFrame`` for a
        length that cannot be a frame. After an error, data is dropped unread.
        """
        if self.state is State.ERROR:
            return
        self._buffer.feed(data)
        try:
            self._buffer.head_length()
        except ProtocolError as exc:
            self._fail(exc)
            raise

    def receive_into(self) -> memoryview | None:
        """Where the next read may go uncopied (the rest of a large frame), or None: use ``receive_data``.

        For an ``asyncio.BufferedProtocol``: read into this view, then call
        ``received_into`` with the count. A large Produce then goes from the
        socket to the frame's own buffer with no copy in between.
        """
        if self.state is State.ERROR:
            return None
        return self._buffer.writable()

    def received_into(self, nbytes: int) -> None:
        """``nbytes`` were read into the view ``receive_into`` returned."""
        self._buffer.wrote(nbytes)

    def next_event(self) -> Event:
        """The next frame the peer sent, or NEED_DATA.

        Raises a ``ProtocolError`` subclass if the bytes are not a valid
        frame, or if the frame breaks the rules of ``tidings.protocol.state``,
        and the state becomes ERROR. Raises ``HandshakeRejected`` when the
        server refuses the client's Hello, and the state becomes CLOSED.
        In ERROR, every call raises the error again.
        """
        if self.state is State.ERROR:
            assert self.error is not None
            raise self.error.with_traceback(None)  # the same error, without piling up tracebacks
        try:
            body = self._buffer.next_frame()
            if body is None:
                return NEED_DATA
            frame = decode_frame(body)
            if frame.kind in self._receivable:  # the busy path: an ordinary frame, allowed, state unchanged
                return frame
            new_state = transition(self.state, self.role.peer, frame)
            self._check_received(frame)
        except ProtocolError as exc:
            self._fail(exc)
            raise
        refused = self.role is Role.CLIENT and self.welcome is None and isinstance(frame, Error)
        self._advance(new_state, frame)
        if refused:
            assert isinstance(frame, Error)
            self.error = HandshakeRejected(
                f"the server refused the handshake: {frame.code}: {frame.message}", reason=frame.code
            )
            raise self.error
        return frame

    def events(self) -> Iterator[Frame]:
        """Every complete frame buffered, in order: ``next_event`` until NEED_DATA."""
        while (event := self.next_event()) is not NEED_DATA:
            yield event

    # -- sending --------------------------------------------------------------------------

    def send(self, frame: Frame) -> list[Buffer]:
        """The buffers to write for ``frame``. Write them in order: the header, then the batches, uncopied.

        Raises ``UnexpectedFrame`` if the rules forbid this frame now, and
        ``FrameTooLarge`` if it exceeds the peer's limit. Either way nothing
        changes, so a caller can split a Produce and try again. Raises
        ``ValueError`` if a Hello or Welcome misstates this connection's terms.
        """
        if frame.kind in self._sendable:  # the busy path, as in ``next_event``
            return encode(frame, max_frame_size=self._peer_limit)
        new_state = transition(self.state, self.role, frame)
        self._check_sent(frame)
        data = encode(frame, max_frame_size=self._peer_limit)
        self._advance(new_state, frame)
        return data

    def send_error(self) -> list[Buffer]:
        """Report the protocol error that put this connection in ERROR: write these bytes, then close."""
        if self.state is not State.ERROR or self.error is None:
            raise RuntimeError(f"send_error() needs a connection in ERROR, not {self.state.name}")
        return self.send(error_frame(self.error))

    # -- internals ------------------------------------------------------------------------

    def _enter(self, state: State) -> None:
        self.state = state
        self._receivable = UNCHANGING[state, self.role.peer]
        self._sendable = UNCHANGING[state, self.role]

    def _fail(self, exc: ProtocolError) -> None:
        self._enter(State.ERROR)
        self.error = exc
        self._buffer = ReceiveBuffer(HANDSHAKE_MAX_FRAME_SIZE)  # let go of whatever was buffered

    def _advance(self, new_state: State, frame: Frame) -> None:
        if new_state is not self.state:
            self._enter(new_state)
        if isinstance(frame, Hello):
            self.hello = frame
        elif isinstance(frame, Welcome):
            self.welcome = frame
            self._buffer.max_frame_size = self.max_frame_size
        if self.welcome is not None and self.hello is not None:
            announced = self.hello if self.role is Role.SERVER else self.welcome
            self._peer_limit = announced.max_frame_size

    def _check_received(self, frame: Frame) -> None:
        if isinstance(frame, Hello) and frame.protocol_version < MIN_PROTOCOL_VERSION:
            raise HandshakeRejected(
                f"client speaks protocol version {frame.protocol_version}; "
                f"this end speaks {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}"
            )
        if isinstance(frame, Welcome):
            assert self.hello is not None  # the transition table admits Welcome only after Hello
            if not MIN_PROTOCOL_VERSION <= frame.protocol_version <= self.hello.protocol_version:
                raise HandshakeRejected(
                    f"server chose protocol version {frame.protocol_version}; this client offered "
                    f"{self.hello.protocol_version} and speaks {MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}"
                )

    def _check_sent(self, frame: Frame) -> None:
        if isinstance(frame, Hello | Welcome) and frame.max_frame_size != self.max_frame_size:
            raise ValueError(
                f"{type(frame).__name__} announces max_frame_size {frame.max_frame_size}, "
                f"but this connection accepts {self.max_frame_size}"
            )
        if isinstance(frame, Welcome) and frame.protocol_version != self.protocol_version:
            raise ValueError(
                f"Welcome offers protocol version {frame.protocol_version}; the client's Hello "
                f"and this build agree on {self.protocol_version}"
            )
