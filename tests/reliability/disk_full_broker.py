"""Scenario 5 on a real file system: a broker whose data directory is a tiny tmpfs that fills up.

The fault layer (``storage_faults.disk_full``) makes ENOSPC exact inside
one log; this is the whole broker on a real full disk: its data directory
is a fresh tmpfs of ``SIZE_MIB`` (mounting one needs root; otherwise the
scenario says it was skipped and why). A producer publishes 64 KiB events
until the broker refuses one with ``disk_full``, then tries ``rounds`` more.
A consumer then reads everything acked back. The tmpfs is grown in place
(``mount -o remount,size=...``) and the producer publishes again, to the
same broker process.

Figures: how fast a refusal comes back, acks after the first refusal that
cannot be read back (must be 0), acked events a reader cannot get (0), the
broker alive throughout, and whether writing resumed without a restart.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.reliability.harness import HOST, Broker, summary_ms
from tests.server.helpers import batch, delivered
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    Deliver,
    Earliest,
    Produce,
    ProduceResult,
    Rejected,
    Subscribe,
    Subscribed,
)
from tidings.testing.raw import RawClient

SIZE_MIB = 6
PAYLOAD = 64 * 1024


def _mount(point: Path, size_mib: int, *, remount: bool = False) -> str | None:
    """Mount (or grow) a tmpfs at ``point``; returns why it could not, or None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    options = f"remount,size={size_mib}m" if remount else f"size={size_mib}m"
    args = (
        ["mount", "-o", options, str(point)]
        if remount
        else ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)]
    )
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    return done.stderr.strip() or f"mount exited {done.returncode}" if done.returncode else None


async def _publish(client: RawClient, request_id: int, value: bytes) -> tuple[object, float]:
    began = time.perf_counter()
    await client.send(Produce(request_id=request_id, topic="full", batches=(batch(value),)))
    result = await client.expect(ProduceResult, request_id=request_id, timeout=30)
    return result.results[0], time.perf_counter() - began


async def run(rounds: int, workdir: Path) -> dict[str, Any]:
    point = workdir / "disk"
    point.mkdir(parents=True, exist_ok=True)
    why = _mount(point, SIZE_MIB)
    if why is not None:
        return {"skipped": why}
    broker = Broker(point, extra_args=("--no-http",))
    try:
        broker.start()
        client = await RawClient.connect(HOST, broker.port)
        await client.send(AdminRequest(request_id=1, body=CreateTopic(name="full")))
        await client.expect(AdminResponse, request_id=1)
        acked: dict[bytes, int] = {}
        refusals: list[float] = []
        codes: set[str] = set()
        message = ""
        acks_after_full = 0
        request = 10
        while len(refusals) < rounds and request < 10_000:
            request += 1
            value = b"%08d" % request + b"x" * (PAYLOAD - 8)
            result, seconds = await _publish(client, request, value)
            if isinstance(result, Appended):
                acked[value[:8]] = result.base_offset
                acks_after_full += bool(refusals)
            elif isinstance(result, Rejected):
                codes.add(result.code)
                message = message or result.message
                refusals.append(seconds)
        alive_when_full = broker.process is not None and broker.process.alive()
        reader = await RawClient.connect(HOST, broker.port)
        await reader.send(
            Subscribe(
                request_id=2, subscription_id=1, topic="full", group="audit", start=Earliest(),
                credits=len(acked) + 1,
            )
        )  # fmt: skip
        await reader.expect(Subscribed)
        seen: set[bytes] = set()
        with contextlib.suppress(TimeoutError):
            while len(seen) < len(acked):
                frame = await reader.expect(Deliver, timeout=10)
                seen.update(bytes(r.value or b"")[:8] for r in delivered(frame))
        await reader.close()
        grown = _mount(point, SIZE_MIB * 4, remount=True)
        resumed = 0
        for _ in range(10):
            request += 1
            result, _ = await _publish(client, request, b"%08d" % request + b"y" * (PAYLOAD - 8))
            resumed += isinstance(result, Appended)
        await client.close()
        return {
            "rounds": rounds,
            "tmpfs_mib": SIZE_MIB,
            "acked_before_full": len(acked) - acks_after_full,
            "refusals": len(refusals),
            "refusal_codes": sorted(codes),
            "refusal_message": message,
            "refusal_latency": summary_ms(refusals),
            "acks_after_full": acks_after_full,
            "acked_not_readable": len(set(acked) - seen),
            "broker_alive_when_full": alive_when_full,
            "grown": grown is None,
            "resumed_without_restart": resumed,
            "broker_restarts": broker.started - 1,
        }
    finally:
        broker.stop()
        subprocess.run(["umount", str(point)], capture_output=True, check=False)
