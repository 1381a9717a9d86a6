"""Scenario 7: mutational fuzzing of the parsers, in-process and over real sockets.

atheris (libFuzzer for Python) is the tool of choice; when it cannot be
installed (it needs clang and libFuzzer), this module's own mutational
fuzzer does the same job without coverage feedback: it starts from a corpus
of valid inputs (every frame kind the client sends, real record batches,
a Hello) and applies the classic libFuzzer mutations (bit flips, interesting
bytes and integers, inserts, deletes, truncations, splices and copied
chunks). Hypothesis, with structure-aware strategies, runs in
``tests/protocol/test_fuzz.py`` (``TIDINGS_FUZZ_EXAMPLES`` scales it).

Targets and the only outcomes allowed:

* ``codec``: ``decode_frame`` on a frame body: a frame or ``MalformedFrame``;
* ``batch``: ``check_batch``, ``validate_records`` and ``iter_records``:
  records or ``InvalidBatchError``;
* ``handshake``: a fresh server ``Connection`` fed the bytes: frames or a
  ``ProtocolError``;
* ``socket``: a broker process fed a Hello then mutated frames by many
  connections at once: it must close or answer each connection within 5 s
  (no hang), stay alive (no crash) and grow its RSS by less than 50 MiB.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import re
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.reliability.harness import HOST, Broker
from tidings.errors import InvalidBatchError, ProtocolError
from tidings.protocol import (
    NEED_DATA,
    Ack,
    Connection,
    Credit,
    Earliest,
    Nack,
    Ping,
    Produce,
    Role,
    Subscribe,
    Term,
    decode_frame,
    delivery_ranges,
    encode_bytes,
)
from tidings.records import BatchBuilder, check_batch, iter_records, validate_records
from tidings.testing import ConnectionPair, default_hello

INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 64, 63, 65)


def _batch(count: int, size: int) -> bytes:
    builder = BatchBuilder()
    for n in range(count):
        builder.add(bytes([n % 251]) * size, key=b"k%d" % n if n % 2 else None, headers=[("h", b"v")])
    return builder.build()


def frame_corpus() -> list[bytes]:
    """Frame bodies (what follows the 4-byte length) of every client-to-broker kind, valid."""
    ranges = delivery_ranges([("orders", 0, 5, 1), ("orders", 0, 6, 2), ("t", 1, 9, 1)])
    frames = [
        default_hello(Connection(Role.CLIENT)),
        Produce(request_id=1, topic="orders", batches=(_batch(3, 20), _batch(1, 200))),
        Subscribe(request_id=2, subscription_id=1, topic="orders.*", group="g", start=Earliest(), credits=10),
        Ack(subscription_id=1, offsets=ranges),
        Nack(subscription_id=1, offsets=ranges, delay_ms=100, reason="boom"),
        Term(subscription_id=1, offsets=ranges, reason="poison"),
        Credit(subscription_id=1, credits=5),
        Ping(nonce=7),
    ]
    return [encode_bytes(frame)[4:] for frame in frames]


def batch_corpus() -> list[bytes]:
    return [_batch(1, 0), _batch(3, 20), _batch(20, 7), _batch(2, 1500)]


class Mutator:
    """libFuzzer's mutations, without coverage feedback; one ``random.Random`` for replay."""

    def __init__(self, corpus: list[bytes], seed: int) -> None:
        self.corpus = corpus
        self.rng = random.Random(seed)

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.corpus))
        for _ in range(rng.choice((1, 1, 1, 2, 3, 8))):
            self._mutate(data, rng)
        return bytes(data)

    def _mutate(self, data: bytearray, rng: random.Random) -> None:
        op = rng.randrange(9)
        if not data:
            data.extend(rng.randbytes(rng.randrange(1, 16)))
            return
        at = rng.randrange(len(data))
        if op == 0:
            data[at] ^= 1 << rng.randrange(8)
        elif op == 1:
            data[at] = rng.choice(INTERESTING_8)
        elif op == 2 and len(data) >= 4:
            at = rng.randrange(len(data) - 3)
            data[at : at + 4] = struct.pack("<I", rng.choice(INTERESTING_32))
        elif op == 3:
            data[at:at] = rng.randbytes(rng.randrange(1, 9))
        elif op == 4:
            del data[at : at + rng.randrange(1, 9)]
        elif op == 5:
            del data[at:]
        elif op == 6:
            other = rng.choice(self.corpus)
            start = rng.randrange(len(other))
            data[at:] = other[start:]
        elif op == 7:
            start = rng.randrange(len(data))
            chunk = data[start : start + rng.randrange(1, 32)]
            data[at:at] = chunk
        else:
            data[at] = rng.randrange(256)


def _codec(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_frame(memoryview(data))


def _batch_target(data: bytes) -> None:
    try:
        header = check_batch(data)
        validate_records(data, header)
        for _ in iter_records(data, 0, header):
            pass
    except InvalidBatchError:
        pass


def _handshake(data: bytes) -> None:
    conn = Connection(Role.SERVER)
    try:
        conn.receive_data(struct.pack("<I", len(data)) + data)
        while conn.next_event() is not NEED_DATA:
            pass
    except ProtocolError:
        pass


def _after_handshake(data: bytes) -> None:
    pair = ConnectionPair()
    pair.handshake()
    try:
        pair.server.receive_data(struct.pack("<I", len(data)) + data)
        while pair.server.next_event() is not NEED_DATA:
            pass
    except ProtocolError:
        pass


TARGETS: dict[str, tuple[Callable[[bytes], None], Callable[[], list[bytes]]]] = {
    "codec": (_codec, frame_corpus),
    "batch": (_batch_target, batch_corpus),
    "handshake": (_handshake, frame_corpus),
    "open_connection": (_after_handshake, frame_corpus),
}


def in_process(inputs: int, *, seed: int = 7) -> dict[str, Any]:
    """``inputs`` mutated inputs per target; any other exception is a crash (recorded, not raised)."""
    out: dict[str, Any] = {}
    for name, (target, corpus) in TARGETS.items():
        crashes: list[str] = []
        started = time.perf_counter()
        for index, data in zip(range(inputs), Mutator(corpus(), seed), strict=False):
            try:
                target(data)
            except Exception as exc:
                if len(crashes) < 5:
                    crashes.append(f"input {index}: {type(exc).__name__}: {exc} ({data[:64].hex()})")
                else:
                    crashes.append("")
        seconds = time.perf_counter() - started
        out[name] = {
            "inputs": inputs,
            "crashes": len(crashes),
            "examples": [c for c in crashes if c],
            "inputs_per_s": round(inputs / seconds),
        }
    return out


def atheris_run(inputs: int, *, seed: int = 7) -> dict[str, Any]:
    """Each target under atheris (coverage-guided) for ``inputs`` runs, in its own process."""
    if importlib.util.find_spec("atheris") is None:
        return {"skipped": "atheris is not installed (pip install atheris: the reliability extra)"}
    out: dict[str, Any] = {}
    root = Path(__file__).resolve().parents[2]
    for name in TARGETS:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "tests.reliability.atheris_fuzz", name,
             f"-atheris_runs={inputs}", f"-seed={seed}", "-print_final_stats=1"],
            cwd=root, capture_output=True, text=True, timeout=3600, check=False,
        )  # fmt: skip
        runs = re.search(r"Done (\d+) in", done.stderr)
        edges = re.findall(r"cov: (\d+)", done.stderr)
        out[name] = {
            "inputs": int(runs.group(1)) if runs else 0,
            "crashes": 0 if done.returncode == 0 else 1,
            "coverage_edges": int(edges[-1]) if edges else 0,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if done.returncode != 0:
            out[name]["output"] = done.stderr[-2000:]
    return out


async def _one_connection(port: int, hello: bytes, payload: bytes, timeout: float) -> bool:
    """Send a Hello then ``payload``, half-close; True if the broker answered and closed in time."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(hello + payload)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(timeout):
            while await reader.read(65536):
                pass
        return True
    except TimeoutError:
        return False
    except (ConnectionError, OSError):
        return True  # reset by the broker: closed, in time
    finally:
        writer.close()


async def over_sockets(frames: int, workdir: Path, *, seed: int = 8, concurrency: int = 16) -> dict[str, Any]:
    broker = Broker(workdir).start()
    try:
        hello = encode_bytes(default_hello(Connection(Role.CLIENT)))
        mutator = Mutator(frame_corpus()[1:], seed)
        rng = random.Random(seed)
        hangs = 0
        sent = 0
        start_rss = 0
        peak_rss = 0
        lock = asyncio.Lock()

        async def worker() -> None:
            nonlocal hangs, sent, peak_rss
            while True:
                async with lock:
                    if sent >= frames:
                        return
                    count = min(rng.randrange(1, 20), frames - sent)
                    sent += count
                    batch = [next(mutator) for _ in range(count)]
                # Mostly valid lengths (the body is what is mutated); sometimes a raw, lying length.
                payload = b"".join(
                    (struct.pack("<I", len(body)) if rng.random() < 0.9 else rng.randbytes(4)) + body
                    for body in batch
                )
                if not await _one_connection(broker.port, hello, payload, 5.0):
                    hangs += 1

        warm = min(2000, frames // 10)
        frames, target = warm, frames
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        start_rss = broker.status()["VmRSS"]
        frames = target
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - began
        status = broker.status()
        peak_rss = status["VmRSS"]
        alive = broker.process is not None and broker.process.alive()
        return {
            "frames": target,
            "frames_per_s": round((target - warm) / max(seconds, 1e-9)),
            "hangs": hangs,
            "broker_crashed": not alive,
            "rss_start_mib": round(start_rss / 2**20, 1),
            "rss_end_mib": round(peak_rss / 2**20, 1),
            "rss_growth_mib": round((peak_rss - start_rss) / 2**20, 1),
        }
    finally:
        broker.stop()
