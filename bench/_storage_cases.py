"""The append and read cases of ``bench/storage.py``, each returning plain dicts.

The script (``storage.py``) decides what to run and in which order; the 1 GiB
log, the crash and the profiles are in ``_storage_recovery.py``, the verdicts
and tables in ``_storage_verdicts.py``. Methodology: the docstring of
``storage.py`` and docs/performance.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

import _report as report
from _report import MB, MIB
from tidings.records import build_batch
from tidings.storage import FsyncPolicy, LogConfig, OsFileSystem, PartitionLog
from tidings.storage.checkpoint import FILENAME as CHECKPOINT_FILE
from tidings.storage.fileio import File, OsFile

RSS_GROWTH_LIMIT = 32 * MIB  # the indexes of 1 GiB need a few MiB; records must not stay in RAM


@dataclass(frozen=True)
class Settings:
    quick: bool
    duration: float  # seconds per round of an append case, at most
    budget: int  # bytes per round of an append case, at most
    rounds: int  # interleaved rounds per append case
    threads: int
    interval_ms: int
    recovery_bytes: int
    crash_policy: str
    profile_seconds: float
    profile: bool
    record_sizes: tuple[int, ...] = (100, 1024)
    batch_sizes: tuple[int, ...] = (1, 100, 1000)
    recovery_shape: tuple[int, int] = (100, 100)  # record bytes, records per batch
    target_shape: tuple[int, int] = (100, 1000)
    pool: int = 16  # distinct pre-built batches per shape


# -- fixtures ----------------------------------------------------------------------


def batch_pool(record_size: int, records: int, count: int) -> list[bytes]:
    """``count`` distinct batches of ``records`` random values of ``record_size`` bytes each."""
    pool = []
    for _ in range(count):
        blob = os.urandom(record_size * records)
        values = [blob[i * record_size : (i + 1) * record_size] for i in range(records)]
        pool.append(build_batch(values))
    return pool


class SyncCounter:
    def __init__(self) -> None:
        self.log_syncs = 0  # fdatasync of a .log: one per group commit
        self.other_syncs = 0  # indexes and checkpoints


class CountingFile(OsFile):
    """The real file, counting its fdatasyncs; writes and reads are OsFile's own."""

    __slots__ = ("_counter",)

    def __init__(self, path: str, counter: SyncCounter) -> None:
        super().__init__(path)
        self._counter = counter

    def sync(self) -> None:
        if self.path.endswith(".log"):
            self._counter.log_syncs += 1
        else:
            self._counter.other_syncs += 1
        super().sync()


class CountingFileSystem(OsFileSystem):
    def __init__(self, counter: SyncCounter) -> None:
        self.counter = counter

    def open(self, path: str) -> File:
        return CountingFile(path, self.counter)


def fresh_dir(root: str, name: str) -> str:
    os.sync()  # start every case with no dirty pages from the one before
    return tempfile.mkdtemp(prefix=name + "-", dir=root)


def log_files(directory: str) -> list[str]:
    return sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(".log"))


# -- append ------------------------------------------------------------------------


def append_single(
    log: PartitionLog, batches: list[bytes], budget: int, duration: float
) -> tuple[int, int, float]:
    """One appender: append + commit per batch. Returns (batches, bytes, seconds)."""
    append, commit, clock = log.append, log.commit, time.perf_counter
    sizes = [len(batch) for batch in batches]
    count = len(batches)
    done = written = 0
    start = clock()
    deadline = start + duration
    while written < budget and clock() < deadline:
        slot = done % count
        commit(append(batches[slot]).last_offset)
        written += sizes[slot]
        done += 1
    return done, written, clock() - start


def append_threads(
    log: PartitionLog, batches: list[bytes], budget: int, duration: float, threads: int
) -> tuple[int, int, float]:
    """``threads`` appenders, each append + commit per batch, sharing the log (group commit)."""
    done = [0] * threads
    written = [0] * threads
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def work(slot: int) -> None:
        append, commit = log.append, log.commit
        count = len(batches)
        barrier.wait()
        try:
            while not stop.is_set():
                batch = batches[(slot + done[slot] * threads) % count]
                commit(append(batch).last_offset)
                done[slot] += 1
                written[slot] += len(batch)
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    workers = [threading.Thread(target=work, args=(slot,), daemon=True) for slot in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    while not stop.is_set() and time.perf_counter() - start < duration and sum(written) < budget:
        time.sleep(0.002)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return sum(done), sum(written), elapsed


def log_case(
    root: str,
    batches: list[bytes],
    shape: tuple[int, int],
    policy: str,
    settings: Settings,
    *,
    threads: int = 1,
    validate: bool = True,
) -> tuple[dict[str, Any], PartitionLog, str]:
    """Append to a fresh log until the budget or the duration runs out; the log stays open."""
    directory = fresh_dir(root, f"log-{policy.replace(':', '')}")
    counter = SyncCounter()
    config = LogConfig(fsync=FsyncPolicy.parse(policy), validate_records=validate)
    log = PartitionLog(directory, config, fs=CountingFileSystem(counter))
    counter.log_syncs = counter.other_syncs = 0
    if threads == 1:
        done, written, seconds = append_single(log, batches, settings.budget, settings.duration)
    else:
        done, written, seconds = append_threads(log, batches, settings.budget, settings.duration, threads)
    log_syncs = counter.log_syncs
    started = time.perf_counter()
    log.sync()
    final_sync = time.perf_counter() - started
    row = rate_row("log", shape, done, written, seconds, final_sync)
    row.update(policy=policy, threads=threads, validate=validate, log_fsyncs=log_syncs)
    row["appends_per_fsync"] = done / log_syncs if log_syncs else None
    return row, log, directory


def rate_row(
    kind: str, shape: tuple[int, int], batches: int, written: int, seconds: float, final_sync: float
) -> dict[str, Any]:
    record_size, records = shape
    return {
        "kind": kind,
        "record_size": record_size,
        "batch_records": records,
        "batches": batches,
        "records": batches * records,
        "bytes": written,
        "seconds": seconds,
        "final_sync_s": final_sync,
        "mb_s": written / seconds / MB,
        "mb_s_incl_final_sync": written / (seconds + final_sync) / MB,
        "records_s": batches * records / seconds,
        "batches_s": batches / seconds,
    }


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def raw_case(root: str, batches: list[bytes], shape: tuple[int, int], settings: Settings, *, sync_each: bool):
    """The machine's ceiling: the same bytes with os.write (and fdatasync per batch if ``sync_each``)."""
    directory = fresh_dir(root, "raw")
    fd = os.open(
        os.path.join(directory, "raw.bin"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644
    )
    try:
        sizes = [len(batch) for batch in batches]
        count = len(batches)
        done = written = 0
        clock = time.perf_counter
        start = clock()
        deadline = start + settings.duration
        while written < settings.budget and clock() < deadline:
            slot = done % count
            write_all(fd, batches[slot])
            if sync_each:
                os.fdatasync(fd)
            written += sizes[slot]
            done += 1
        seconds = clock() - start
        started = clock()
        os.fsync(fd)
        final_sync = clock() - started
    finally:
        os.close(fd)
        shutil.rmtree(directory)
    row = rate_row(
        "raw write+fdatasync" if sync_each else "raw write", shape, done, written, seconds, final_sync
    )
    row.update(policy="-", threads=1, validate=None, log_fsyncs=done if sync_each else 0)
    row["appends_per_fsync"] = 1.0 if sync_each else None
    return row


NEVER = {"policy": "never", "threads": 1, "validate": True}


def shape_cases(shape: tuple[int, int], settings: Settings) -> list[dict[str, Any]]:
    """The cases run for one batch shape, in the order of each round.

    Each log case that a target compares with a raw ceiling runs right after
    it, so that the two see the disk in the same mood.
    """
    cases: list[dict[str, Any]] = [
        {"raw": False},
        NEVER,
        {"raw": True},
        {"policy": "always", "threads": 1, "validate": True},
        {"policy": "always", "threads": settings.threads, "validate": True},
        {"policy": f"interval:{settings.interval_ms}", "threads": 1, "validate": True},
    ]
    if shape == settings.target_shape:  # what record validation costs, for the reading
        cases += [{"policy": policy, "threads": 1, "validate": False} for policy in ("never", "always")]
    return cases


def append_shape(root: str, shape: tuple[int, int], settings: Settings) -> tuple[list[dict[str, Any]], dict]:
    """Every case of one shape, in ``rounds`` interleaved rounds, so a slow spell of the disk
    (other work on the machine) falls on all cases alike; the rounds are summed per case."""
    batches = batch_pool(*shape, settings.pool)
    cases = shape_cases(shape, settings)
    rounds: list[list[dict[str, Any]]] = [[] for _ in cases]
    read: dict[str, Any] = {}
    for number in range(settings.rounds):
        for case, done in zip(cases, rounds, strict=True):
            if "raw" in case:
                done.append(raw_case(root, batches, shape, settings, sync_each=case["raw"]))
                continue
            row, log, directory = log_case(
                root,
                batches,
                shape,
                case["policy"],
                settings,
                threads=case["threads"],
                validate=case["validate"],
            )
            done.append(row)
            if number == settings.rounds - 1 and case == NEVER:  # the last never log: read it
                read = read_row(shape, log, directory, scan=True)
            else:
                log.close()
            shutil.rmtree(directory)
    return [merge_rounds(done) for done in rounds], read


def merge_rounds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One row for a case: the rounds' bytes and seconds summed, and each round's MB/s kept."""
    first = rows[0]
    total = {key: sum(row[key] for row in rows) for key in ("batches", "bytes", "seconds", "final_sync_s")}
    shape = (first["record_size"], first["batch_records"])
    merged = rate_row(
        first["kind"], shape, total["batches"], total["bytes"], total["seconds"], total["final_sync_s"]
    )
    syncs = sum(row["log_fsyncs"] for row in rows)
    merged.update(
        policy=first["policy"],
        threads=first["threads"],
        validate=first["validate"],
        log_fsyncs=syncs,
        appends_per_fsync=total["batches"] / syncs if syncs else None,
        rounds_mb_s=[row["mb_s"] for row in rows],
        rounds_batches=[row["batches"] for row in rows],
        rounds_mb_s_incl_final_sync=[row["mb_s_incl_final_sync"] for row in rows],
    )
    return merged


# -- read and scan -----------------------------------------------------------------


def read_log(log: PartitionLog, sample_rss: list[int] | None = None) -> tuple[int, int, float]:
    """Read the whole log with read(offset, 1 MiB). Returns (bytes, records, seconds)."""
    offset, end = log.start_offset, log.end_offset
    total = records = reads = 0
    start = time.perf_counter()
    while offset < end:
        result = log.read(offset, MIB)
        total += len(result.data)
        records += result.record_count
        offset = result.next_offset
        reads += 1
        if sample_rss is not None and reads % 64 == 0:
            sample_rss.append(report.rss_bytes())
    return total, records, time.perf_counter() - start


def raw_read(directory: str) -> tuple[int, float]:
    """os.pread of the log's .log files in 1 MiB chunks: the read ceiling."""
    total = 0
    start = time.perf_counter()
    for path in log_files(directory):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            position = 0
            while chunk := os.pread(fd, MIB, position):
                position += len(chunk)
        finally:
            os.close(fd)
        total += position
    return total, time.perf_counter() - start


def full_scan(directory: str, policy: str) -> tuple[float, int]:
    """Reopen without the recovery checkpoint: every batch is checked. Returns (seconds, scanned)."""
    os.remove(os.path.join(directory, CHECKPOINT_FILE))
    start = time.perf_counter()
    log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse(policy)))
    seconds = time.perf_counter() - start
    scanned = log.recovery.scanned_bytes
    log.close()
    return seconds, scanned


def read_row(shape: tuple[int, int], log: PartitionLog, directory: str, *, scan: bool) -> dict[str, Any]:
    size, records, seconds = read_log(log)
    raw_bytes, raw_seconds = raw_read(directory)
    log.close()
    row: dict[str, Any] = {
        "record_size": shape[0],
        "batch_records": shape[1],
        "bytes": size,
        "records": records,
        "seconds": seconds,
        "mb_s": size / seconds / MB,
        "records_s": records / seconds,
        "raw_pread_mb_s": raw_bytes / raw_seconds / MB,
    }
    if scan:
        scan_seconds, scanned = full_scan(directory, "never")
        row.update(scan_s=scan_seconds, scanned_bytes=scanned, scan_mb_s=scanned / scan_seconds / MB)
        # The most a crash under fsync=never leaves to check: a whole active segment.
        row["worst_crash_scan_s"] = LogConfig().max_segment_bytes / (row["scan_mb_s"] * MB)
    return row
