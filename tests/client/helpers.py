"""A scripted broker for client tests: the far end of a MockTransport, driven frame by frame.

The test plays the broker with a real protocol ``Connection(Role.SERVER)``, so
every frame the client writes is decoded and checked by the same state
machine the broker runs, and every frame the test sends is real bytes.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from tidings.client import Client, MockListener, MockTransport, TcpTransport, connect
from tidings.client.transport import StreamProtocol
from tidings.protocol import (
    NEED_DATA,
    AdminRequest,
    AdminResponse,
    Appended,
    Close,
    Connection,
    DescribeTopic,
    Frame,
    Hello,
    PartitionInfo,
    Produce,
    ProduceResult,
    Role,
    Subscribe,
    Subscribed,
    TopicDescription,
    Unsubscribe,
    Unsubscribed,
    Welcome,
)
from tidings.records import build_batch, iter_records, read_header, stamped_header

F = TypeVar("F", bound=Frame)


class ScriptedBroker:
    """One connection's broker side."""

    def __init__(self, transport: MockTransport, *, max_frame_size: int = 8 * 1024 * 1024) -> None:
        self.transport = transport
        self.conn = Connection(Role.SERVER, max_frame_size=max_frame_size)
        self.received: list[Frame] = []
        self._queue: list[Frame] = []
        self.hello: Hello | None = None

    async def receive(self, kind: type[F] | None = None, timeout: float = 2.0) -> Any:
        """The next frame the client sent (asserting its type if given)."""
        async with asyncio.timeout(timeout):
            while not self._queue:
                data = await self.transport.read()
                if not data:
                    raise EOFError("the client closed the connection")
                self.conn.receive_data(data)
                while (frame := self.conn.next_event()) is not NEED_DATA:
                    self._queue.append(frame)
                    self.received.append(frame)
        frame = self._queue.pop(0)
        if kind is not None:
            assert isinstance(frame, kind), f"expected {kind.__name__}, got {frame!r}"
        return frame

    async def nothing(self, wait: float = 0.05) -> None:
        """Assert the client sends nothing for ``wait`` seconds."""
        try:
            frame = await self.receive(timeout=wait)
        except TimeoutError:
            return
        raise AssertionError(f"expected silence, got {frame!r}")

    def send(self, *frames: Frame) -> None:
        for frame in frames:
            self.transport.write(self.conn.send(frame))

    async def handshake(self, producer_id: int | None = 7, producer_epoch: int = 0, **changes: Any) -> Hello:
        hello = await self.receive(Hello)
        self.hello = hello
        granted = hello.producer is not None and producer_id is not None
        self.send(
            Welcome(
                protocol_version=hello.protocol_version,
                broker_id="broker-1",
                broker_version="test",
                session_id=changes.pop("session_id", "session-1"),
                max_frame_size=self.conn.max_frame_size,
                producer_id=producer_id if granted else None,
                producer_epoch=producer_epoch if granted else None,
            )
        )
        return hello

    async def describe(self, topic: str, partitions: int = 1) -> None:
        """Answer the client's DescribeTopic for ``topic``."""
        request = await self.receive(AdminRequest)
        assert isinstance(request.body, DescribeTopic) and request.body.name == topic, request
        self.send(
            AdminResponse(
                request_id=request.request_id,
                body=TopicDescription(
                    name=topic,
                    partitions=tuple(
                        PartitionInfo(partition=p, start_offset=0, end_offset=0) for p in range(partitions)
                    ),
                ),
            )
        )

    async def produce(self, base_offset: int = 0, *, duplicate: bool = False) -> Produce:
        """Receive one Produce and append its batches at ``base_offset`` onwards."""
        produce = await self.receive(Produce)
        self.send(appended(produce, base_offset, duplicate=duplicate))
        return produce

    async def subscribed(self) -> Subscribe:
        subscribe = await self.receive(Subscribe)
        self.send(Subscribed(request_id=subscribe.request_id, subscription_id=subscribe.subscription_id))
        return subscribe

    def drop(self) -> None:
        self.transport.abort()


def appended(produce: Produce, base_offset: int = 0, *, duplicate: bool = False) -> ProduceResult:
    results = []
    offset = base_offset
    for batch in produce.batches:
        count = read_header(batch).record_count
        results.append(
            Appended(
                partition=produce.partition or 0,
                base_offset=offset,
                last_offset=offset + count - 1,
                append_time=1_700_000_000_000,
                duplicate=duplicate,
            )
        )
        offset += count
    return ProduceResult(request_id=produce.request_id, results=tuple(results))


def values(produce: Produce) -> list[bytes]:
    return [record.value for batch in produce.batches for record in iter_records(batch)]


async def open_client(listener: MockListener, **settings: Any) -> tuple[Client, ScriptedBroker]:
    """A client connected to a scripted broker (producer id 7, epoch 0)."""
    settings.setdefault("service", "tests")
    settings.setdefault("ping_interval", 3600.0)
    handshake = settings.pop("handshake", {})
    frame_size = settings.pop("broker_max_frame_size", 8 * 1024 * 1024)
    task = asyncio.create_task(connect(transport=listener.connect, **settings).open())
    broker = ScriptedBroker(await listener.accept(), max_frame_size=frame_size)
    await broker.handshake(**handshake)
    client = await task
    return client, broker


async def close(client: Client, broker: ScriptedBroker) -> list[Frame]:
    """Close the client, playing the broker's part (Unsubscribed, Close); returns what the client sent."""
    task = asyncio.create_task(client.close())
    seen = await play_close(broker)
    await task
    return seen


async def play_close(broker: ScriptedBroker) -> list[Frame]:
    """The broker's part of a client closing: answer Unsubscribes, then Close. Returns what came."""
    seen: list[Frame] = []
    while True:
        try:
            frame = await broker.receive(timeout=5)
        except EOFError:
            break
        seen.append(frame)
        if isinstance(frame, Unsubscribe):
            broker.send(Unsubscribed(subscription_id=frame.subscription_id, request_id=frame.request_id))
        elif isinstance(frame, Close):
            broker.send(Close(reason="bye"))
            break
    return seen


def stored(
    values: list[bytes],
    base_offset: int,
    *,
    append_time: int = 1_700_000_000_000,
    timestamp: int = 1_600_000_000_000,
) -> bytes:
    """A batch as the broker stores and serves it: built by a producer, stamped with offsets."""
    batch = build_batch(values, timestamp=timestamp)
    return stamped_header(batch, base_offset, append_time) + batch[64:]


async def eventually(predicate: Any, timeout: float = 2.0) -> None:
    """Wait until ``predicate()`` holds (the client works on its own tasks)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.001)


class TcpListener:
    """A TCP port the test plays the broker on, one ``ScriptedBroker`` per accepted connection.

    For what runs the real TCP transport: the CLI and the sync facade, in another thread or process.
    """

    def __init__(self) -> None:
        self._accepted: asyncio.Queue[TcpTransport] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> TcpListener:
        accepted = self._accepted

        class Accepted(StreamProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                super().connection_made(transport)
                accepted.put_nowait(TcpTransport(self))

        self.server = await asyncio.get_running_loop().create_server(Accepted, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"tidings://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self.server is not None
        self.server.close()

    async def accept(self, timeout: float = 5.0) -> ScriptedBroker:
        """The next connection, handshaken."""
        async with asyncio.timeout(timeout):
            transport = await self._accepted.get()
        broker = ScriptedBroker(transport)  # type: ignore[arg-type]
        await broker.handshake()
        return broker
