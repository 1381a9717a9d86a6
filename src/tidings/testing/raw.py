"""``RawClient``: a minimal client for tests, a protocol ``Connection`` over asyncio streams.

It speaks frames, not events: a test sends exactly the frame it means
(including ones the real SDK would never send) and sees exactly what the
broker answers. No retries, no batching, no reconnects. A reader task
decodes everything the broker sends into a list; ``expect`` takes the first
frame that matches, leaving the rest for later.

    client = await RawClient.connect(host, port, producer=ProducerClaim())
    await client.send(Produce(request_id=1, topic="orders", batches=(batch,)))
    result = await client.expect(ProduceResult, request_id=1)

``write_raw`` puts arbitrary bytes on the socket, for malformed-frame tests.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from tidings.errors import ProtocolError
from tidings.protocol import (
    NEED_DATA,
    PROTOCOL_VERSION,
    Connection,
    Frame,
    Hello,
    ProducerClaim,
    Role,
    Welcome,
)
from tidings.protocol.codec import DEFAULT_MAX_FRAME_SIZE

F = TypeVar("F", bound=Frame)


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: Connection) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = conn
        self.frames: list[Frame] = []
        self.closed = asyncio.Event()
        """Set when the broker closed the connection (EOF) or sent bytes this client could not decode."""
        self.error: ProtocolError | None = None
        self._arrived = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())
        self.welcome: Welcome | None = None

    def __repr__(self) -> str:
        return f"<RawClient {self.conn!r} queued={len(self.frames)} closed={self.closed.is_set()}>"

    @classmethod
    async def open(cls, host: str, port: int, *, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE) -> RawClient:
        """Connect without a handshake."""
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, Connection(Role.CLIENT, max_frame_size=max_frame_size))

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        service: str = "tests",
        client_id: str = "raw-client",
        producer: ProducerClaim | None = None,
        auth_token: str | None = None,
        max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
        timeout: float = 5.0,
    ) -> RawClient:
        """Connect and complete the handshake; ``welcome`` holds the broker's terms."""
        client = await cls.open(host, port, max_frame_size=max_frame_size)
        await client.send(
            Hello(
                protocol_version=PROTOCOL_VERSION,
                service=service,
                client_id=client_id,
                max_frame_size=max_frame_size,
                auth_token=auth_token,
                producer=producer,
            )
        )
        try:
            client.welcome = await client.expect(Welcome, timeout=timeout)
        except BaseException:
            await client.close()
            raise
        return client

    async def send(self, frame: Frame) -> None:
        if self.writer.is_closing():
            raise ConnectionError(f"cannot send {type(frame).__name__}: the connection is closed")
        try:
            self.writer.writelines(self.conn.send(frame))
        except RuntimeError as exc:  # uvloop: the transport closed under us
            raise ConnectionError(str(exc)) from exc
        await self.writer.drain()

    async def write_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def expect(self, kind: type[F], *, timeout: float = 5.0, **fields: Any) -> F:
        """The first received ``kind`` frame whose fields equal ``fields``, waiting up to ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, frame in enumerate(self.frames):
                if isinstance(frame, kind) and all(getattr(frame, k) == v for k, v in fields.items()):
                    del self.frames[index]
                    return frame
            if self.error is not None:
                raise self.error
            if self.closed.is_set():
                raise ConnectionError(f"connection closed while waiting for {kind.__name__} {fields}")
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no {kind.__name__} {fields} within {timeout} s; received {self.frames}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def none_of(self, kind: type[Frame], *, within: float) -> None:
        """Assert that no frame of ``kind`` arrives within ``within`` seconds."""
        await asyncio.sleep(within)
        found = [frame for frame in self.frames if isinstance(frame, kind)]
        if found:
            raise AssertionError(f"unexpected {kind.__name__}: {found}")

    async def wait_closed(self, timeout: float = 5.0) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()

    async def _read(self) -> None:
        try:
            while True:
                data = await self.reader.read(1 << 16)
                if not data:
                    break
                self.conn.receive_data(data)
                while (frame := self.conn.next_event()) is not NEED_DATA:
                    self.frames.append(frame)
                self._arrived.set()
        except ProtocolError as exc:
            self.error = exc
        except (ConnectionError, OSError):
            pass
        finally:
            self.closed.set()
            self._arrived.set()
