"""A consumer that never reads cannot make the broker's memory grow: it is throttled, then cut off.

The broker runs as its own process (``tidings broker``), so its memory can be
read from ``/proc/PID/status``: ``RssAnon``, the heap, without the log
segments' page cache. A raw socket subscribes with a huge credit (so credits
do not bound anything) and a tiny receive buffer, then never reads, while a
producer publishes far more than the configured ``max_send_buffer``. Once its
send buffer passes ``write_buffer_high`` the broker builds no more
deliveries for it (they stay on disk), and ``slow_consumer_timeout_ms``
later it is cut off with the reason.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import pytest

from tidings.protocol import (
    PROTOCOL_VERSION,
    Connection,
    Hello,
    Produce,
    ProduceResult,
    Role,
    Subscribe,
    Welcome,
)
from tidings.protocol.codec import DEFAULT_MAX_FRAME_SIZE
from tidings.protocol.values import Earliest
from tidings.testing.raw import RawClient
from tidings.testing.servers import start_broker

from .helpers import batch

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
MiB = 1024 * 1024
PUBLISHED = 96 * MiB
SEND_BUFFER = 2 * MiB


def rss_anon(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no RssAnon in /proc status")


def stuck_consumer(port: int) -> socket.socket:
    """A blocking socket that says Hello and subscribes with a million credits, and then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    conn = Connection(Role.CLIENT, max_frame_size=DEFAULT_MAX_FRAME_SIZE)
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        service="stuck",
        client_id="stuck-1",
        max_frame_size=DEFAULT_MAX_FRAME_SIZE,
    )
    sock.sendall(b"".join(bytes(b) for b in conn.send(hello)))
    conn.receive_data(sock.recv(65536))  # the Welcome: the last read this client ever does
    assert isinstance(conn.next_event(), Welcome)
    subscribe = Subscribe(
        request_id=1, subscription_id=1, topic="flood", group="stuck", credits=1_000_000, start=Earliest()
    )
    sock.sendall(b"".join(bytes(b) for b in conn.send(subscribe)))
    return sock


def disconnected(sock: socket.socket, timeout: float) -> bool:
    """Drain what the kernel holds; True once the broker's reset or FIN shows."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(1 << 20):
                return True
        except ConnectionResetError:
            return True
        except TimeoutError:
            continue
    return False


async def test_a_consumer_that_never_reads_is_cut_off_and_memory_stays_bounded(tmp_path):
    config = tmp_path / "broker.toml"
    config.write_text(
        f"write_buffer_high = {256 * 1024}\nwrite_buffer_low = {64 * 1024}\n"
        f"max_send_buffer = {SEND_BUFFER}\nslow_consumer_timeout_ms = 3000\n"
    )
    broker = start_broker(
        tmp_path, fsync="never", extra_args=("--config", str(config), "--log-level", "info")
    )
    try:
        producer = await RawClient.connect("127.0.0.1", broker.port)
        await producer.send(Produce(request_id=1, topic="flood", batches=(batch(b"warm-up"),)))
        await producer.expect(ProduceResult, request_id=1)
        consumer = await asyncio.to_thread(stuck_consumer, broker.port)
        baseline = rss_anon(broker.pid)
        value = b"x" * (64 * 1024)
        peak = baseline
        for request_id in range(2, 2 + PUBLISHED // (16 * len(value))):
            frame = Produce(request_id=request_id, topic="flood", batches=(batch(*[value] * 16),))
            await producer.send(frame)
            await producer.expect(ProduceResult, request_id=request_id, timeout=10)
            peak = max(peak, rss_anon(broker.pid))
        await producer.close()
        growth = peak - baseline
        print(
            f"\nbroker RssAnon: baseline {baseline / MiB:.1f} MiB, peak +{growth / MiB:.1f} MiB "
            f"while {PUBLISHED / MiB:.0f} MiB were published to a consumer that never reads"
        )
        for _ in range(100):  # the slow-consumer timeout (3 s) runs from when its buffer passed the mark
            if "did not read" in broker.output():
                break
            await asyncio.sleep(0.1)
        assert await asyncio.to_thread(disconnected, consumer, 10.0)
        consumer.close()
        assert growth < 32 * MiB  # a third of what was published; without the bound it holds it all
        assert "did not read" in broker.output() and "(slow consumer)" in broker.output()
    finally:
        broker.stop()
