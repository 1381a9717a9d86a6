"""Request/reply between two Python processes: through the Tidings broker, over direct HTTP, over NATS core.

One process (bench/_responder.py) answers on all three paths; this one
sends requests one at a time (each waits for its reply, as a service
handling a call does) and times each round trip. The three paths:

* **tidings**: ``client.request("rr", payload)`` through a private broker;
* **http**: an ``httpx.AsyncClient`` (one kept-alive connection) posting to
  a starlette endpoint under uvicorn, the direct call the broker replaces;
* **nats-core**: ``nc.request("rr", payload)`` through a private nats-server
  (core NATS, no JetStream: requests are not stored by anyone here).

And the publish-to-handler delay of a fire-and-forget event is the
``tidings`` row of the latency tables at the lowest rate (e2e.py).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import nats

import tidings
from _peers import quiet_heap
from tidings.testing import servers

HERE = Path(__file__).resolve().parent


def summary(samples: list[float]) -> dict[str, Any]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return {"count": len(ordered), "p50_ms": at(0.50), "p99_ms": at(0.99), "p999_ms": at(0.999)}


async def timed(call: Callable[[], Awaitable[Any]], count: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        await call()
    quiet_heap()  # as before a latency run: no full collection of this process's results in the samples
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


async def measure(directory: Path, count: int, size: int = 100) -> dict[str, Any]:
    broker = await asyncio.to_thread(servers.start_broker, directory / "broker")
    nats_server = await asyncio.to_thread(servers.start_nats, directory / "nats")
    http_port = servers.free_port()
    responder = subprocess.Popen(
        [sys.executable, str(HERE / "_responder.py"), broker.url, nats_server.url, str(http_port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    payload = b"r" * size
    results: dict[str, Any] = {"count": count, "size": size}
    try:
        assert responder.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(responder.stdout.readline), 30)
        if line.strip() != b"ready":
            raise RuntimeError(f"the responder did not start: {line!r}")
        warmup = max(50, count // 10)
        async with tidings.connect(url=broker.url, service="bench") as client:
            samples = await timed(lambda: client.request("rr", payload), count, warmup)
            results["tidings"] = summary(samples)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}") as http:
            samples = await timed(lambda: http.post("/rr", content=payload), count, warmup)
            results["http"] = summary(samples)
        nc = await nats.connect(nats_server.url)
        try:
            samples = await timed(lambda: nc.request("rr", payload, timeout=5), count, warmup)
            results["nats-core"] = summary(samples)
        finally:
            await nc.close()
    finally:
        if responder.stdin is not None:
            responder.stdin.close()
        try:
            responder.wait(10)
        except subprocess.TimeoutExpired:
            responder.kill()
            responder.wait()
        nats_server.stop()
        broker.stop()
    return results
