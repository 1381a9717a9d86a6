"""Bounded buffers: a client that stops reading is paused, then disconnected; others go on."""

from __future__ import annotations

import asyncio

from tests.server.helpers import batch
from tidings.protocol import Earliest, Produce, ProduceResult, Subscribe, Subscribed
from tidings.server.session import READ_SIZE, Session, SessionLimits


async def test_a_stuck_consumer_is_disconnected(start_broker, connect):
    server = await start_broker(
        write_buffer_high=64 * 1024, write_buffer_low=16 * 1024, slow_consumer_timeout_ms=300
    )
    producer = await connect(server)
    stuck = await connect(server)
    await stuck.send(
        Subscribe(
            request_id=1, subscription_id=1, topic="firehose", group="g", start=Earliest(), credits=100_000
        )
    )
    await stuck.expect(Subscribed)
    stuck._task.cancel()  # stop reading: the kernel's buffers fill, then the broker's
    session_id = stuck.welcome.session_id
    payload = b"x" * 60_000
    for n in range(300):  # 18 MB: more than the loopback socket buffers hold
        await producer.send(Produce(request_id=n, topic="firehose", batches=(batch(payload),)))
        await producer.expect(ProduceResult, request_id=n)
        if session_id not in server.sessions:
            break
    for _ in range(100):
        if session_id not in server.sessions:
            break
        await asyncio.sleep(0.05)
    assert session_id not in server.sessions
    await producer.send(Produce(request_id=9999, topic="other", batches=(batch(b"still here"),)))
    assert (await producer.expect(ProduceResult, request_id=9999)).results[0].base_offset == 0


class FakeTransport:
    def __init__(self) -> None:
        self.reading = True
        self.closing = False
        self.written: list[bytes] = []

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name, default=None):
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high=None, low=None) -> None:
        pass

    def writelines(self, data) -> None:
        self.written.extend(bytes(d) for d in data)

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0


class Owner:
    def on_frame(self, session, frame) -> None:
        pass

    def pump(self) -> None:
        pass

    def session_lost(self, session) -> None:
        pass

    def writing_paused(self, session, paused) -> None:
        pass


def limits(**changes) -> SessionLimits:
    values = dict(
        max_frame_size=1 << 20,
        write_buffer_high=1000,
        write_buffer_low=100,
        slow_consumer_timeout_ms=50,
        max_inflight_produce_bytes=1000,
    )
    return SessionLimits(**{**values, **changes})


async def test_reading_pauses_while_produce_bytes_await_durability():
    session = Session(Owner(), "s", limits())
    transport = FakeTransport()
    session.connection_made(transport)
    session.produce_started(600)
    assert transport.reading
    session.produce_started(600)
    assert not transport.reading  # 1200 bytes in flight > 1000
    session.produce_finished(600)
    assert transport.reading


async def test_reading_pauses_while_the_client_does_not_read_and_it_is_cut_off():
    session = Session(Owner(), "s", limits())
    transport = FakeTransport()
    session.connection_made(transport)
    session.pause_writing()
    assert not transport.reading
    session.resume_writing()
    assert transport.reading
    session.pause_writing()
    await asyncio.sleep(0.1)
    assert transport.closing  # stuck past slow_consumer_timeout_ms


async def test_sessions_share_one_read_buffer_allocated_at_the_first_read(start_broker):
    server = await start_broker()
    first, second = server._new_session(), server._new_session()
    try:
        assert first._scratch is second._scratch  # 1,000 idle connections cost no 256 KiB each
        assert first._scratch._view is None  # nothing resident before a read needs it
        assert len(first.get_buffer(-1)) == READ_SIZE
        assert second.get_buffer(-1).obj is first.get_buffer(-1).obj
    finally:
        server.sessions.pop(first.id)
        server.sessions.pop(second.id)
