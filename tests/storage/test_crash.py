"""SIGKILL at random moments never loses a batch that ``commit`` reported durable.

A child process (``appender.py``) opens the log with ``fsync=always`` and
appends from one to four threads, printing each batch's id and offsets only
after ``commit`` returned for it. The parent kills it with SIGKILL after a
random delay, reopens the directory and checks, byte for byte, that:

* every batch ever reported durable, in any round, is there at its offsets;
* everything the log holds is a whole batch some child appended, each
  thread's batches in its order with none missing in between, offsets
  contiguous, every CRC good, no bytes after the last batch;
* recovery found no corruption.

Every other child writes through ``FaultyFileSystem(lose_unsynced=True)``,
so its kill also loses every byte it had not synced, as a power cut would:
that checks the fsync discipline too (acknowledge only after the fsync,
checkpoint only what is synced), which a plain SIGKILL cannot, since the page
cache survives it.

The next child then appends to the same directory. Some rounds are killed
without waiting for the child to be ready, so kills land in its recovery
too; on alternate rounds the parent checks a copy, so the child itself
recovers from the raw state a kill left. Set ``TIDINGS_CRASH_SEED`` to replay
a run (the seed is printed).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

from tests.storage import appender
from tests.storage.appender import CRASH_CONFIG, assert_is_batch, id_of, read_batches, split_id
from tidings.records import read_header
from tidings.storage import PartitionLog
from tidings.storage.faults import FaultyFileSystem

ROUNDS = 26
APPENDER = Path(appender.__file__)

pytestmark = pytest.mark.slow


class Child:
    """One appender process and a thread draining its stdout."""

    def __init__(self, directory: Path, round_number: int, threads: int, power: bool) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(APPENDER), str(directory), str(round_number), str(threads)]
            + (["power"] if power else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode()
            if line == "ready\n":
                self.ready.set()
            else:
                self.lines.append(line)

    def kill(self) -> str:
        """SIGKILL this child (by its own pid), reap it; returns its stderr."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self._reader.join(timeout=30)
        assert self.process.stderr is not None
        return self.process.stderr.read().decode()

    def reported(self) -> dict[int, tuple[int, int]]:
        """Batch id -> (base, last offset) for every line the child finished writing."""
        durable = {}
        for line in self.lines:
            assert line.endswith("\n"), f"a torn report line: {line!r}"
            number, base, last = (int(field) for field in line.split())
            durable[number] = (base, last)
        return durable


def check_log(directory: Path, durable: dict[int, tuple[int, int]]) -> int:
    """Open ``directory`` and check it against everything reported durable; returns its end offset."""
    with PartitionLog(str(directory), CRASH_CONFIG) as log:
        assert log.corruption is None, log.corruption
        stored = read_batches(log)
        found: dict[int, tuple[int, int]] = {}
        streams: dict[tuple[int, int], list[int]] = defaultdict(list)
        for base, data in stored:
            batch = bytes(data)
            number = id_of(batch)
            assert number not in found, f"batch {number} stored twice"
            assert_is_batch(batch, number, base)
            found[number] = (base, read_header(batch).last_offset)
            round_number, thread, sequence = split_id(number)
            streams[round_number, thread].append(sequence)
        for stream, sequences in streams.items():
            assert sequences == list(range(len(sequences))), f"thread {stream}: a gap or a reordering"
        for number, offsets in durable.items():
            assert found.get(number) == offsets, f"durable batch {number} at {offsets} is lost"
        end = read_header(stored[-1][1]).next_offset if stored else 0
        assert log.end_offset == end
        on_disk = sum(path.stat().st_size for path in directory.glob("*.log"))
        assert on_disk == log.size, "bytes after the last batch"
        return end


def test_sigkill_at_random_moments_never_loses_a_committed_batch(tmp_path: Path) -> None:
    seed = int(os.environ.get("TIDINGS_CRASH_SEED", random.randrange(2**32)))
    print(f"TIDINGS_CRASH_SEED={seed}")
    rng = random.Random(seed)
    directory = tmp_path / "log"
    durable: dict[int, tuple[int, int]] = {}
    killed_while_appending = 0
    group_rounds = 0
    power_kills = 0
    ends = []
    for round_number in range(1, ROUNDS + 1):
        threads = 1 if round_number % 3 == 1 else rng.choice((2, 3, 4))
        early = round_number % 5 == 0  # may die importing, opening or recovering
        power = round_number % 2 == 0  # the kill also loses every unsynced byte
        child = Child(directory, round_number, threads, power)
        if not early and not child.ready.wait(timeout=30):
            pytest.fail(f"round {round_number}: the child never opened the log: {child.kill()}")
        time.sleep(rng.uniform(0.003, 0.2))
        errors = child.kill()
        assert child.process.returncode == -signal.SIGKILL, f"round {round_number} died by itself: {errors}"
        reported = child.reported()
        durable.update(reported)
        killed_while_appending += bool(reported)
        power_kills += power and bool(reported)
        writers = {split_id(number)[1] for number in reported}
        group_rounds += len(writers) > 1

        if round_number % 4 in (0, 1):  # check a copy: the next child recovers from what the kill left
            copy = tmp_path / "check"
            shutil.copytree(directory, copy)
            ends.append(check_log(copy, durable))
            shutil.rmtree(copy)
        else:
            ends.append(check_log(directory, durable))

    assert ends == sorted(ends), "the log went backwards"
    assert killed_while_appending >= ROUNDS // 2, "too few kills landed while appending"
    assert group_rounds >= 3, "too few rounds with concurrent committers"
    assert power_kills >= ROUNDS // 4, "too few power cuts while appending"
    assert len(durable) >= 100

    verify = subprocess.run(
        [sys.executable, "-c", "from tidings.cli.main import main; main()", "log", "verify", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.startswith("ok:"), verify.stdout


def test_the_power_cut_model_keeps_exactly_the_synced_bytes(tmp_path: Path) -> None:
    """What the crash test's power rounds rely on: unsynced bytes read back, then vanish."""
    fs = FaultyFileSystem(lose_unsynced=True)
    path = tmp_path / "file"
    handle = fs.open(str(path))
    handle.write_at([b"synced"], 0)
    handle.sync()
    handle.write_at([b"-lost", b"-too"], 6)
    handle.write_at([b"X"], 2)
    assert handle.read_at(100, 0) == b"syXced-lost-too"
    assert handle.size() == 15
    assert path.read_bytes() == b"synced"  # a kill now keeps this
    handle.truncate(11)
    assert handle.read_at(100, 0) == b"syXced-lost"
    handle.sync()
    assert path.read_bytes() == b"syXced-lost"
    handle.close()
