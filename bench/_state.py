"""The broker with a large stored backlog: memory, restart, start-by-time, throughput when full.

One private broker (``fsync=always``) is filled with ``events`` events of
100 B through the ordinary client (``publish_many``), then:

* **throughput when full**: once the backlog is stored, three rounds of
  ``publish_many`` of the same number of events into the full topic and
  into a new, empty topic of the same broker, alternating; the ratio of
  the medians is the "within 10% of an empty topic" target. Alternating in
  one broker process at one time keeps the machine's slow spells and the
  process's own state off one side of the ratio. The same publish into the
  topic while it was still empty, before the fill, is kept for reference;
* **memory with a stalled consumer**: a group subscribes from the earliest
  offset, takes its first deliveries and never acknowledges them; the
  broker's VmRSS (and its peak, VmHWM) is read from /proc a second later;
* **start-by-time**: a new group subscribes at the time the middle of the
  backlog was published; the figure is subscribe-to-first-message, and the
  first message must be the first one published at or after that time;
* **restart**: the broker is stopped (SIGTERM) and started on the same data;
  the figure is spawn-to-ready (the ready line is printed once the logs are
  open and the port listens), next to the same for an empty data directory,
  so the interpreter's own start-up can be told apart from recovery.

The default backlog is 1 M events (seconds to fill); ``--full`` uses 10 M,
the size the targets are stated for. Each result says which size it had.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import tidings
from tidings.testing import servers

CHUNK = 10_000
TOPIC = "state.backlog"
ROUNDS = 3
"""Alternating rounds of publishing into the full topic and into an empty one."""


def _proc_status(pid: int) -> dict[str, int]:
    out = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as handle:
        for line in handle:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
    return out


async def _publish(client: Any, count: int, payload: bytes, topic: str = TOPIC) -> float:
    started = time.perf_counter()
    items = [payload] * CHUNK
    for start in range(0, count, CHUNK):
        await client.publish_many(topic, items[: min(CHUNK, count - start)])
    return count / (time.perf_counter() - started)


async def _timed_start(directory: Path, data: Path) -> tuple[servers.ServerProcess, float]:
    started = time.perf_counter()
    broker = await asyncio.to_thread(servers.start_broker, directory, data=data, timeout=120)
    return broker, time.perf_counter() - started


async def measure(directory: Path, events: int, probe: int = 200_000) -> dict[str, Any]:
    payload = b"s" * 100
    data = directory / "data"
    out: dict[str, Any] = {"events": events, "event_size": 100, "probe_events": probe}
    empty_broker, empty_start = await _timed_start(directory / "empty", directory / "empty-data")
    empty_broker.stop()
    out["start_empty_s"] = empty_start
    broker, _ = await _timed_start(directory, data)
    try:
        async with tidings.connect(url=broker.url, service="bench") as client:
            await client.publish(TOPIC, payload)
            out["publish_before_fill_per_s"] = await _publish(client, probe, payload)
            fill_started = time.perf_counter()
            half = max(0, events // 2 - probe)
            await _publish(client, half, payload)
            await asyncio.sleep(0.05)  # a clear gap in producer time around the middle
            middle = dt.datetime.now(dt.UTC)
            await asyncio.sleep(0.05)
            marker = b"middle" + payload[6:]
            await client.publish(TOPIC, marker)
            await _publish(client, max(0, events - half - probe - 1), payload)
            out["fill_s"] = time.perf_counter() - fill_started
            full, empty = [], []
            for round_ in range(ROUNDS):  # which goes first alternates too
                for side in ("empty", "full") if round_ % 2 == 0 else ("full", "empty"):
                    if side == "empty":  # created (by a first publish) before the clock starts
                        await client.publish(f"{TOPIC}.empty{round_}", payload)
                        empty.append(await _publish(client, probe, payload, topic=f"{TOPIC}.empty{round_}"))
                    else:
                        full.append(await _publish(client, probe, payload))
            out["publish_full_runs"], out["publish_empty_runs"] = full, empty
            out["publish_full_per_s"] = statistics.median(full)
            out["publish_empty_per_s"] = statistics.median(empty)
            out["full_vs_empty"] = out["publish_full_per_s"] / out["publish_empty_per_s"]
            out["stored_events"] = events + ROUNDS * probe + 1

            stalled = await client.subscribe(TOPIC, group=f"stalled-{uuid.uuid4().hex[:6]}", start="earliest")
            first = await asyncio.wait_for(stalled.__anext__(), 30)
            del first  # taken, never acknowledged
            await asyncio.sleep(1.0)
            status = _proc_status(broker.pid)
            out["rss_stalled_bytes"] = status.get("VmRSS")
            out["rss_peak_bytes"] = status.get("VmHWM")

            started = time.perf_counter()
            by_time = await client.subscribe(TOPIC, group=f"time-{uuid.uuid4().hex[:6]}", start=middle)
            message = await asyncio.wait_for(by_time.__anext__(), 30)
            out["start_by_time_s"] = time.perf_counter() - started
            out["start_by_time_found_marker"] = message.data == marker
            await by_time.close()
            await stalled.close()
    finally:
        broker.stop()
    broker, restart = await _timed_start(directory, data)
    try:
        out["restart_s"] = restart
        async with tidings.connect(url=broker.url, service="bench") as client:
            started = time.perf_counter()
            await client.publish(TOPIC, payload)
            out["first_publish_after_restart_s"] = time.perf_counter() - started
    finally:
        broker.stop()
    return out
