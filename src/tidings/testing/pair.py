"""Two protocol connections, a client and a server, joined by an in-memory link.

This is how the protocol is tested and how the layers above it can be tested
without a socket. What one side ``send``s is fed, as bytes, to the other
side's ``receive_data``, and the frames it decodes are returned. Both ends
run the real state machine, so a test sees exactly what a peer over TCP
would: the same bytes, the same states, the same errors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from tidings.protocol.codec import DEFAULT_MAX_FRAME_SIZE
from tidings.protocol.connection import Connection
from tidings.protocol.frames import PROTOCOL_VERSION, Frame, Hello, Welcome
from tidings.protocol.state import Role


def default_hello(conn: Connection, **changes: Any) -> Hello:
    """A Hello that suits the client ``conn``, with any field overridden by ``changes``."""
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        service="tests",
        client_id="client-1",
        max_frame_size=conn.max_frame_size,
    )
    return msgspec.structs.replace(hello, **changes)


def default_welcome(conn: Connection, **changes: Any) -> Welcome:
    """A Welcome that suits the server ``conn`` after it received a Hello."""
    welcome = Welcome(
        protocol_version=conn.protocol_version or PROTOCOL_VERSION,
        broker_id="broker-1",
        broker_version="test",
        session_id="session-1",
        max_frame_size=conn.max_frame_size,
    )
    return msgspec.structs.replace(welcome, **changes)


class ConnectionPair:
    """A client ``Connection`` and a server ``Connection`` that talk through memory.

    ``chunk_size`` cuts every transfer into reads of that many bytes, which
    exercises reassembly. By default each transfer is one read.
    """

    def __init__(
        self,
        *,
        client_max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        server_max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        chunk_size: int | None = None,
    ) -> None:
        self.client = Connection(Role.CLIENT, max_frame_size=client_max_frame_size)
        self.server = Connection(Role.SERVER, max_frame_size=server_max_frame_size)
        self.chunk_size = chunk_size

    def __repr__(self) -> str:
        return f"<ConnectionPair {self.client!r} {self.server!r}>"

    def of(self, role: Role) -> Connection:
        return self.client if role is Role.CLIENT else self.server

    def send(self, role: Role, *frames: Frame) -> list[Frame]:
        """``role`` sends ``frames``; returns what the other side decoded from the bytes."""
        data = b"".join(bytes(buf) for frame in frames for buf in self.of(role).send(frame))
        return self.transfer(role.peer, data)

    def transfer(self, receiver: Role, data: bytes | Iterable[bytes]) -> list[Frame]:
        """Feed raw bytes to ``receiver`` (in ``chunk_size`` reads) and drain it after each read."""
        conn = self.of(receiver)
        chunks = [data] if isinstance(data, bytes) else list(data)
        received: list[Frame] = []
        for chunk in chunks:
            step = self.chunk_size or max(len(chunk), 1)
            for start in range(0, len(chunk), step):
                conn.receive_data(chunk[start : start + step])
                received.extend(conn.events())
        return received

    def handshake(self, hello: Hello | None = None, welcome: Welcome | None = None) -> tuple[Hello, Welcome]:
        """Run Hello and Welcome (defaults from ``default_hello`` and ``default_welcome``); both end OPEN."""
        hello = hello or default_hello(self.client)
        (received_hello,) = self.send(Role.CLIENT, hello)
        welcome = welcome or default_welcome(self.server)
        (received_welcome,) = self.send(Role.SERVER, welcome)
        assert isinstance(received_hello, Hello) and isinstance(received_welcome, Welcome)
        return received_hello, received_welcome
