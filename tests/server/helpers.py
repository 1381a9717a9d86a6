"""Shared helpers for the broker tests: batches, delivered records, a broker subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tidings.protocol import Ack, Deliver, PartitionRanges, coalesce
from tidings.records import BatchBuilder, iter_records
from tidings.records.builder import Record


def batch(
    *values: bytes,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
    producer: tuple[int, int] | None = None,
    sequence: int = -1,
) -> bytes:
    builder = BatchBuilder()
    for value in values:
        builder.add(value, key=key, headers=headers)
    if producer is None:
        return builder.build()
    return builder.build(producer_id=producer[0], producer_epoch=producer[1], base_sequence=sequence)


def delivered(frame: Deliver) -> list[Record]:
    """The records a Deliver frame delivers (those inside its spans), in order."""
    out: list[Record] = []
    for span in frame.spans:
        data = bytes(frame.batches[span.batch])
        out.extend(r for r in iter_records(data) if span.first <= r.offset <= span.last)
    return out


def ack_frame(subscription_id: int, topic: str, partition: int, offsets: list[int]) -> Ack:
    ranges = PartitionRanges(topic=topic, partition=partition, ranges=coalesce(offsets))
    return Ack(subscription_id=subscription_id, offsets=(ranges,))


class BrokerProcess:
    """``python -m tidings broker`` in a subprocess, for tests where a crash (kill -9) matters."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tidings",
                "broker",
                "--port",
                "0",
                "--http-port",
                "0",
                "--data",
                str(data_dir),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if not line.startswith("tidings broker listening on tidings://"):
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
            raise RuntimeError(f"broker did not start: {line!r} {err}")
        self.line = line
        address = line.rsplit("//", 1)[1]
        host, port = address.rsplit(":", 1)
        self.host, self.port = host, int(port)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
