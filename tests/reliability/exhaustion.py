"""Scenario 8: resource exhaustion while a well-behaved canary client publishes.

A canary publishes one small event at a time (``fsync=always``, acked) and
measures each round trip: first alone (the baseline), then while four
abusers run at once against the same broker process:

* **oversized length headers**: connections whose first frame claims 4 GiB;
* **slowloris**: connections that dribble a Hello one byte at a time;
* **connection flood**: connections opened and held idle (past the
  per-IP limit, 1,000, in the full run: the broker refuses the rest);
* **a consumer that never reads**: it subscribes with a million credits to
  a topic holding a backlog of 16 KiB events, and never reads its socket.

The backlog (``backlog_events``: 5,000 events, 78 MiB, in the full run,
more than ``max_send_buffer``) is written *before* the baseline is taken,
so both phases see the same disk work. An earlier version filled the topic
with a producer during the abuse phase only; that producer is legitimate
traffic, and its 16 KiB appends and fdatasyncs on the same disk alone
lifted the canary's p99 (outside any broker: a 100-byte fdatasync's p99
went from 1.3-3.5 ms to 14-16 ms next to such a writer on this machine's
ext4). The ratio then measured disk sharing, not what the abusers cost.
What the consumer tests is unchanged: the broker has far more to deliver
to it than it may hold, and must not build it all in memory.

Figures: canary p50/p99 alone and under abuse (the target: p99 under abuse
<= 2x its baseline), the broker's RSS at rest and its peak (target
< 512 MiB), read from /proc. The canary's latency includes its fsync, so
it is the latency a real publisher sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
import sys
import time
from pathlib import Path
from typing import Any

from tests.reliability.harness import HOST, Broker, percentile
from tests.server.helpers import batch
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    Connection,
    CreateTopic,
    Earliest,
    Produce,
    ProduceResult,
    Role,
    Subscribe,
    Subscribed,
    encode_bytes,
)
from tidings.testing import default_hello
from tidings.testing.raw import RawClient


class Canary:
    """One connection, opened before any abuse: a client already connected when the attack starts.

    (Every client here comes from 127.0.0.1, so a canary that reconnected
    would meet the per-IP connection limit the flood is there to hit.)
    """

    def __init__(self, client: RawClient) -> None:
        self.client = client
        self.sent = 0

    async def measure(self, samples: int) -> list[float]:
        out: list[float] = []
        for _ in range(samples):
            self.sent += 1
            n = self.sent
            began = time.perf_counter()
            await self.client.send(Produce(request_id=n, topic="canary", batches=(batch(b"c%d" % n),)))
            await self.client.expect(ProduceResult, request_id=n, timeout=30)
            out.append(time.perf_counter() - began)
            await asyncio.sleep(0.002)
        return out


async def _hold(writers: list[asyncio.StreamWriter], port: int, first: bytes) -> None:
    with contextlib.suppress(OSError, ConnectionError):
        _, writer = await asyncio.open_connection(HOST, port)
        writers.append(writer)
        if first:
            writer.write(first)
            await writer.drain()


async def abuse(port: int, stop: asyncio.Event, scale: int, counts: dict[str, int]) -> None:
    writers: list[asyncio.StreamWriter] = []
    hello = encode_bytes(default_hello(Connection(Role.CLIENT)))

    async def oversized() -> None:
        while not stop.is_set():
            await _hold(writers, port, struct.pack("<I", 0xFFFFFFFF) + b"\x01" * 16)
            counts["oversized"] += 1
            await asyncio.sleep(0.05)

    async def slowloris() -> None:
        slow: list[asyncio.StreamWriter] = []
        for _ in range(scale):
            with contextlib.suppress(OSError, ConnectionError):
                _, writer = await asyncio.open_connection(HOST, port)
                slow.append(writer)
        counts["slowloris"] = len(slow)
        position = 0
        while not stop.is_set() and position < len(hello):
            for writer in slow:
                with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                    writer.write(hello[position : position + 1])
            position += 1
            await asyncio.sleep(0.2)
        writers.extend(slow)

    async def flood() -> None:
        for _ in range(scale * 5):
            if stop.is_set():
                return
            await _hold(writers, port, b"")
            counts["flood"] += 1

    async def never_reads() -> None:
        consumer = await RawClient.connect(HOST, port)
        await consumer.send(
            Subscribe(
                request_id=1, subscription_id=1, topic="firehose", group="sloth", start=Earliest(),
                credits=1_000_000,
            )
        )  # fmt: skip
        await consumer.expect(Subscribed)
        consumer._task.cancel()  # stop reading its socket, for good
        counts["never_reads"] = 1
        await stop.wait()
        consumer.writer.transport.abort()

    tasks = [asyncio.create_task(job()) for job in (oversized, slowloris, flood, never_reads)]
    await stop.wait()
    for task in tasks:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    for writer in writers:
        writer.transport.abort()


async def _abuse_for(port: int, scale: int, seconds: float) -> dict[str, int]:
    stop = asyncio.Event()
    counts = {"oversized": 0, "slowloris": 0, "flood": 0, "never_reads": 0}
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await abuse(port, stop, scale, counts)
    return counts


def backlog_events(scale: int) -> int:
    """The never-read topic's backlog: 25 events per unit of scale, at least 2,000 (31 MiB)."""
    return max(25 * scale, 2_000)


async def fill_backlog(port: int, events: int) -> None:
    """Write ``events`` 16 KiB events to the firehose topic, 16 to a batch, each batch acked (durable)."""
    producer = await RawClient.connect(HOST, port)
    payload = b"x" * 16384
    for n, first in enumerate(range(0, events, 16), start=1):
        count = min(16, events - first)
        await producer.send(Produce(request_id=n, topic="firehose", batches=(batch(*[payload] * count),)))
        await producer.expect(ProduceResult, request_id=n, timeout=30)
        producer.frames.clear()
    await producer.close()


async def run(scale: int, workdir: Path, *, samples: int = 400) -> dict[str, Any]:
    """The abusers run in a process of their own, so they slow the broker, not the canary's loop."""
    broker = Broker(workdir).start()
    try:
        admin = await RawClient.connect(HOST, broker.port)
        for n, topic in enumerate(("canary", "firehose")):
            await admin.send(AdminRequest(request_id=n + 1, body=CreateTopic(name=topic)))
            await admin.expect(AdminResponse, request_id=n + 1)
        await admin.close()
        backlog = backlog_events(scale)
        await fill_backlog(broker.port, backlog)  # before the baseline: both phases see the same disk
        canary = Canary(await RawClient.connect(HOST, broker.port))
        await canary.measure(50)  # warm up
        at_rest = broker.status()["VmRSS"]
        began = time.perf_counter()
        baseline = await canary.measure(samples)
        seconds = max(5.0, (time.perf_counter() - began) * 3 + 2)
        abuser = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.reliability.exhaustion", str(broker.port), str(scale), str(seconds),
            stdout=asyncio.subprocess.PIPE, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        await asyncio.sleep(1.5)  # let the abuse build up
        peak = broker.status()["VmRSS"]
        loaded: list[float] = []
        while len(loaded) < samples:
            loaded += await canary.measure(50)
            peak = max(peak, broker.status()["VmRSS"])
        out, _ = await abuser.communicate()
        await canary.client.close()
        counts = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
        base_p99, load_p99 = percentile(baseline, 0.99), percentile(loaded, 0.99)
        return {
            "scale": scale,
            "abuse": counts,
            "backlog_events": backlog,
            "baseline_p50_ms": round(percentile(baseline, 0.5) * 1000, 2),
            "baseline_p99_ms": round(base_p99 * 1000, 2),
            "under_abuse_p50_ms": round(percentile(loaded, 0.5) * 1000, 2),
            "under_abuse_p99_ms": round(load_p99 * 1000, 2),
            "p99_ratio": round(load_p99 / base_p99, 2) if base_p99 else 0.0,
            "broker_rest_rss_mib": round(at_rest / 2**20, 1),
            "broker_peak_rss_mib": round(peak / 2**20, 1),
            "broker_alive": broker.process is not None and broker.process.alive(),
        }
    finally:
        broker.stop()


if __name__ == "__main__":
    port, scale, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(_abuse_for(port, scale, seconds))))
