"""Scenario 6 through the whole broker: EIO on fsync (or on a write) under real sockets.

The broker runs in this process (``BrokerServer``) so that its partition
logs can be opened on a ``FaultyFileSystem``: the registry's
``PartitionLog`` is swapped, for this run only, for one that takes the
fault layer, which is the only change from a production broker. A client
publishes over a socket, the next fsync (or ``.log`` write) fails with EIO,
and the client keeps publishing.

Figures: Appended results after the failure (must be 0), the codes of the
refusals (``storage_failed`` for the batch whose fsync failed, then
refusals for the stopped partition), fsyncs of that log after the failure
(0: a failed fsync is never retried), and the acked events still readable.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.server.helpers import batch, delivered
from tidings.core import topics
from tidings.protocol import (
    Appended,
    Deliver,
    Earliest,
    Produce,
    ProduceResult,
    Rejected,
    Subscribe,
    Subscribed,
)
from tidings.server import BrokerConfig, BrokerServer
from tidings.storage import PartitionLog
from tidings.storage.faults import FaultyFileSystem
from tidings.testing.raw import RawClient


@contextlib.contextmanager
def logs_on(fs: FaultyFileSystem) -> Iterator[None]:
    """Open every partition log of brokers started meanwhile on ``fs``."""
    original = topics.PartitionLog
    topics.PartitionLog = functools.partial(PartitionLog, fs=fs)  # type: ignore[misc]
    try:
        yield
    finally:
        topics.PartitionLog = original  # type: ignore[misc]


async def _round(workdir: Path, index: int, *, on_write: bool) -> dict[str, Any]:
    fs = FaultyFileSystem()
    with logs_on(fs):
        return await _publish_through_a_failure(fs, workdir, index, on_write=on_write)


async def _publish_through_a_failure(
    fs: FaultyFileSystem, workdir: Path, index: int, *, on_write: bool
) -> dict[str, Any]:
    server = BrokerServer(BrokerConfig(port=0, http_port=0, data_dir=str(workdir / f"eio-{index}")))
    await server.start()
    try:
        client = await RawClient.connect(*server.address)
        acked: set[bytes] = set()
        codes: list[str] = []
        after = 0
        failed = False
        syncs_at_failure = 0
        for n in range(40):
            if n == 10:
                if on_write:
                    fs.fail_writes(suffix=".log")
                else:
                    fs.fail_syncs(suffix=".log")
            value = b"e%d" % n
            await client.send(Produce(request_id=n + 1, topic="eio", batches=(batch(value),)))
            (result,) = (await client.expect(ProduceResult, request_id=n + 1, timeout=10)).results
            if isinstance(result, Appended):
                acked.add(value)
                after += failed
            elif isinstance(result, Rejected):
                if not failed:
                    syncs_at_failure = fs.syncs
                failed = True
                codes.append(result.code)
        reader = await RawClient.connect(*server.address)
        await reader.send(
            Subscribe(
                request_id=1, subscription_id=1, topic="eio", group="audit", start=Earliest(), credits=100
            )
        )
        await reader.expect(Subscribed)
        seen: set[bytes] = set()
        with contextlib.suppress(TimeoutError):
            while len(seen) < len(acked):
                frame = await reader.expect(Deliver, timeout=5)
                seen.update(bytes(r.value or b"") for r in delivered(frame))
        await reader.close()
        await client.close()
        return {
            "acked_before": len(acked),
            "acks_after_failure": after,
            "first_refusal": codes[0] if codes else None,
            "refusal_codes": sorted(set(codes)),
            "log_fsyncs_after_failure": fs.syncs - syncs_at_failure if failed else 0,
            "acked_unreadable": len(acked - seen),
        }
    finally:
        await server.stop()


async def run(rounds: int, workdir: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"rounds": rounds, "acks_after_failure": 0, "acked_unreadable": 0}
    codes: set[str] = set()
    firsts: set[str | None] = set()
    retried = 0
    for index in range(rounds):
        result = await _round(workdir, index, on_write=bool(index % 2))
        out["acks_after_failure"] += result["acks_after_failure"]
        out["acked_unreadable"] += result["acked_unreadable"]
        retried += result["log_fsyncs_after_failure"]
        codes.update(result["refusal_codes"])
        firsts.add(result["first_refusal"])
    out["first_refusals"] = sorted(str(code) for code in firsts)
    out["refusal_codes"] = sorted(codes)
    out["fsyncs_after_failure"] = retried
    return out
