"""The broker's own work per request/reply: the real BrokerServer, two sessions on in-memory transports.

Run as ``python bench/broker_hop.py [REQUESTS]``. A requester session sends
``Request`` frames for topic ``rr``; a responder session, subscribed to it,
answers each forwarded request with a ``Reply``; every frame goes through
``Session`` (read buffer, protocol ``Connection``), the core (permissions,
routing, outbox) and back out, exactly as from a socket, but no socket is
written: what ``bench/e2e.py``'s request/reply row adds to the two clients
and the kernel is this, and here it is measured alone, without the noise of
three processes sharing two cores.

It prints the Python calls per request and reply (counted by cProfile: a
figure that does not move with the machine's speed) and the time per
request and reply, the best of several rounds, less the time this script
spends building and reading the frames.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import time
from typing import Any

import uvloop

from tidings.protocol import PROTOCOL_VERSION, Hello, Latest, Reply, Request, Subscribe
from tidings.protocol.codec import decode_frame, encode_bytes
from tidings.records import BatchBuilder
from tidings.server import BrokerConfig, BrokerServer
from tidings.server.session import Session

ROUNDS = 7


class MemoryTransport:
    """What a ``Session`` needs of an ``asyncio.Transport``: the frames it writes are kept, in order."""

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def writelines(self, data: list[Any]) -> None:
        self.written.append(b"".join(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


def feed(session: Session, data: bytes) -> None:
    """Hand ``data`` to the session as uvloop's ``BufferedProtocol`` path does."""
    view = session.get_buffer(len(data))
    view[: len(data)] = data
    session.buffer_updated(len(data))


def open_session(server: BrokerServer, service: str) -> tuple[Session, MemoryTransport]:
    transport = MemoryTransport()
    session = server.accept(transport)  # type: ignore[arg-type]
    hello = Hello(
        protocol_version=PROTOCOL_VERSION, service=service, client_id=service, max_frame_size=1 << 20
    )
    feed(session, encode_bytes(hello))
    transport.written.clear()  # the Welcome
    return session, transport


async def measure(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="broker-hop-") as data_dir:
        server = BrokerServer(BrokerConfig(port=0, http_port=0, data_dir=data_dir))
        await server.start(listen=False)
        try:
            requester, to_requester = open_session(server, "requester")
            responder, to_responder = open_session(server, "responder")
            feed(
                responder,
                encode_bytes(
                    Subscribe(request_id=1, subscription_id=1, topic="rr", group="g", start=Latest())
                ),
            )
            to_responder.written.clear()
            builder = BatchBuilder()
            builder.add(b"r" * 100)
            batch = builder.build()
            next_id = iter(range(1, 1 << 62))

            def frames() -> list[bytes]:
                return [
                    encode_bytes(Request(request_id=next(next_id), topic="rr", timeout_ms=5_000, batch=batch))
                    for _ in range(count)
                ]

            def round_trips(requests: list[bytes]) -> None:
                for request in requests:
                    feed(requester, request)
                    forwarded = decode_frame(memoryview(to_responder.written.pop())[4:])
                    assert isinstance(forwarded, Request)
                    feed(responder, encode_bytes(Reply(request_id=forwarded.request_id, batch=batch)))
                    answer = decode_frame(memoryview(to_requester.written.pop())[4:])
                    assert isinstance(answer, Reply), answer

            round_trips(frames())  # warm up
            requests = frames()
            started = time.perf_counter()  # this script's own share: the decodes and encodes above
            for request in requests:
                decode_frame(memoryview(request)[4:])
                decode_frame(memoryview(request)[4:])
                encode_bytes(Reply(request_id=1, batch=batch))
            own = time.perf_counter() - started
            best = float("inf")
            for _ in range(ROUNDS):
                requests = frames()
                started = time.perf_counter()
                round_trips(requests)
                best = min(best, time.perf_counter() - started)
            requests = frames()
            profiler = cProfile.Profile()
            profiler.enable()
            round_trips(requests)
            profiler.disable()
            own_calls = cProfile.Profile()
            own_calls.enable()
            for request in requests:
                decode_frame(memoryview(request)[4:])
                decode_frame(memoryview(request)[4:])
                encode_bytes(Reply(request_id=1, batch=batch))
            own_calls.disable()
        finally:
            await server.stop()
    calls = _calls(profiler) - _calls(own_calls)
    return {
        "requests": count,
        "calls_per_request": calls / count,
        "us_per_request": (best - own) / count * 1e6,
    }


def _calls(profiler: cProfile.Profile) -> int:
    stats = pstats.Stats(profiler)
    return sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000
    result = uvloop.run(measure(count))
    print(
        f"broker, per request and reply ({result['requests']:.0f} requests, in memory): "
        f"{result['calls_per_request']:.0f} Python calls, {result['us_per_request']:.1f} us"
    )


if __name__ == "__main__":
    main()
