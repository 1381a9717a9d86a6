"""The machine's own limits, measured in the same run as the systems: what no broker can beat.

* **write + fdatasync loop**: ``os.write`` of one 4 KiB block then
  ``os.fdatasync``, over and over: the most durable commits per second the
  disk gives one writer. A durable publish needs at least one of these per
  group commit, so this bounds commits, not events.
* **sequential write**: 1 MiB ``os.write`` calls into one file, then one
  ``fsync``: the bytes per second the disk takes when nobody waits.
* **Python speed** (a yardstick, not a ceiling): additions per second in a
  plain CPython loop, so that runs on different days can be told apart.
* **loopback TCP**: one thread ``sendall``\\ s 1 MiB chunks to another over
  127.0.0.1: the bytes per second between two processes on this machine.

Each figure is also given as events per second (bytes per second over the
bytes one event costs on disk or on the wire, record overhead included),
which is the number the brokers' rows can be read against.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

RECORD_OVERHEAD = 24  # record prefix; the 64-byte batch header is shared by a batch
DURATION = 1.0


def fdatasync_loop(directory: Path, seconds: float = DURATION) -> dict[str, Any]:
    block = os.urandom(4096)
    path = directory / "ceiling-fdatasync"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        count = 0
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            os.write(fd, block)
            os.fdatasync(fd)
            count += 1
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"syncs_per_s": count / elapsed, "mean_ms": elapsed / count * 1000}


def sequential_write(directory: Path, total: int = 256 << 20, seconds: float = 3.0) -> dict[str, Any]:
    chunk = os.urandom(1 << 20)
    path = directory / "ceiling-sequential"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        started = time.perf_counter()
        while written < total and time.perf_counter() - started < seconds:
            written += os.write(fd, chunk)
        os.fsync(fd)
        elapsed = time.perf_counter() - started
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return {"bytes_per_s": written / elapsed, "bytes": written}


def loopback_tcp(seconds: float = DURATION) -> dict[str, Any]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received = 0

    def sink() -> None:
        nonlocal received
        conn, _ = listener.accept()
        with conn:
            buffer = bytearray(1 << 20)
            while (n := conn.recv_into(buffer)) > 0:
                received += n

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    chunk = os.urandom(1 << 20)
    with socket.create_connection(("127.0.0.1", port)) as conn:
        started = time.perf_counter()
        deadline = started + seconds
        while time.perf_counter() < deadline:
            conn.sendall(chunk)
    thread.join(10)
    elapsed = time.perf_counter() - started
    listener.close()
    return {"bytes_per_s": received / elapsed}


def python_speed(iterations: int = 5_000_000, rounds: int = 3) -> dict[str, Any]:
    """How fast this interpreter runs plain bytecode now: a loop of additions, best of ``rounds``.

    Not a ceiling but a yardstick between runs: on a shared virtual machine
    the CPU a Python process gets varies from day to day (seen here: the
    same loop 2-3x slower one day than another), and every figure of a
    Python client or broker moves with it, while ratios within one run do not.
    """
    best = float("inf")
    for _ in range(rounds):
        total = 0
        started = time.perf_counter()
        for i in range(iterations):
            total += i
        best = min(best, time.perf_counter() - started)
    return {"loop_iterations_per_s": iterations / best, "iterations": iterations}


def measure(directory: Path | None = None, sizes: tuple[int, ...] = (100, 1024)) -> dict[str, Any]:
    """All three ceilings; ``directory`` on the filesystem the brokers write to."""
    with tempfile.TemporaryDirectory(prefix="tidings-ceilings-", dir=directory) as tmp:
        where = Path(tmp)
        out: dict[str, Any] = {
            "fdatasync": fdatasync_loop(where),
            "sequential_write": sequential_write(where),
            "loopback_tcp": loopback_tcp(),
            "python": python_speed(),
        }
    out["events_per_s"] = {
        str(size): {
            "sequential_write": out["sequential_write"]["bytes_per_s"] / (size + RECORD_OVERHEAD),
            "loopback_tcp": out["loopback_tcp"]["bytes_per_s"] / (size + RECORD_OVERHEAD),
        }
        for size in sizes
    }
    return out
