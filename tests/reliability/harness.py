"""The pieces every reliability scenario shares: a broker process to kill, sizes, figures.

A scenario is a plain async function ``run(size, workdir) -> dict`` that
measures and returns its figures (counts of violations, latencies). The
pytest modules call it at the CI size and assert the violations are 0;
``bench/reliability.py`` calls the same function at the full size and
publishes what it returns. So every published figure comes from the code
the tests run, never from a number typed by hand.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from tidings.testing.servers import ServerProcess, free_port, start_broker

HOST = "127.0.0.1"


def percentile(values: list[float], q: float) -> float:
    """The ``q``-quantile (0..1) by nearest rank: a figure that is one of the measured values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))
    return ordered[index]


def summary_ms(seconds: list[float]) -> dict[str, float]:
    """p50, p99 and max of durations given in seconds, in milliseconds, rounded to 0.1 ms."""
    return {
        "p50_ms": round(percentile(seconds, 0.50) * 1000, 1),
        "p99_ms": round(percentile(seconds, 0.99) * 1000, 1),
        "max_ms": round(max(seconds, default=0.0) * 1000, 1),
        "mean_ms": round(statistics.fmean(seconds) * 1000, 1) if seconds else 0.0,
    }


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, VmHWM (bytes) and the open file descriptors of process ``pid``."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "RssAnon", "VmHWM"):
                out[name] = int(rest.split()[0]) * 1024
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


@dataclass
class Broker:
    """A ``tidings broker`` subprocess that a scenario kills (SIGKILL, by pid) and restarts in place.

    The port and data directory stay the same across restarts, so clients
    reconnect to the same address and the broker recovers the same log.
    """

    directory: Path
    fsync: str = "always"
    extra_args: tuple[str, ...] = ("--no-http",)
    port: int = field(default_factory=free_port)
    process: ServerProcess | None = None
    restarts: list[float] = field(default_factory=list)
    """Seconds from spawning each restart to its ready line (recovery included)."""
    started: int = 0

    def start(self) -> Broker:
        began = time.monotonic()
        self.process = start_broker(
            self.directory, port=self.port, data=self.directory / "data", fsync=self.fsync,
            extra_args=self.extra_args, timeout=60.0,
        )  # fmt: skip
        if self.started:
            self.restarts.append(time.monotonic() - began)
        self.started += 1
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash."""
        if self.process is not None:
            self.process.kill()

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.alive():
            self.process.stop()

    def status(self) -> dict[str, int]:
        return proc_status(self.pid)
