"""The 1 GiB log of ``bench/storage.py``: memory and read while it grows, reopen after a clean
close and after ``kill -9`` of a process appending to it; and the profiles of the hot paths."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _report as report
from _profile import profile
from _report import MB, MIB, fmt_bytes
from _storage_cases import (
    RSS_GROWTH_LIMIT,
    Settings,
    append_single,
    batch_pool,
    fresh_dir,
    full_scan,
    log_files,
    raw_read,
    read_log,
)
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog

SCRIPT = Path(__file__).resolve().with_name("storage.py")  # runs the crash child
# The crash child is killed this far short of the recovery size: with the default 128 MiB
# segments and a size that is a multiple of them, the active segment is then almost full,
# the most a crash under fsync=never leaves to scan (no checkpoint since the last roll).
CRASH_SLACK = 8 * MIB


def big_log(root: str, settings: Settings) -> dict[str, Any]:
    """Append then read ``recovery_bytes`` watching RSS; close; time a clean reopen."""
    shape = settings.recovery_shape
    batches = batch_pool(*shape, settings.pool)
    directory = fresh_dir(root, "big")
    samples: list[int] = []
    rss_before = report.rss_bytes()
    log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse("never")))
    start = time.perf_counter()
    count = 0
    while log.size < settings.recovery_bytes:
        log.append(batches[count % len(batches)])
        count += 1
        if count % 1024 == 0:
            samples.append(report.rss_bytes())
    append_seconds = time.perf_counter() - start
    rss_after_append = report.rss_bytes()
    size, records, read_seconds = read_log(log, samples)
    rss_after_read = report.rss_bytes()
    raw_bytes, raw_seconds = raw_read(directory)
    log.close()
    os.sync()
    start = time.perf_counter()
    log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse("never")))
    reopen_seconds = time.perf_counter() - start
    outcome = log.recovery
    reopened_size = log.size
    log.close()
    shutil.rmtree(directory)
    peak = max([rss_before, rss_after_append, rss_after_read, *samples])
    return {
        "record_size": shape[0],
        "batch_records": shape[1],
        "log_bytes": reopened_size,
        "append_s": append_seconds,
        "append_mb_s": size / append_seconds / MB,
        "read": {
            "bytes": size,
            "records": records,
            "seconds": read_seconds,
            "mb_s": size / read_seconds / MB,
            "records_s": records / read_seconds,
            "raw_pread_mb_s": raw_bytes / raw_seconds / MB,
        },
        "memory": {
            "rss_before": rss_before,
            "rss_after_append": rss_after_append,
            "rss_after_read": rss_after_read,
            "rss_peak_during": peak,
            "growth": peak - rss_before,
            "limit": RSS_GROWTH_LIMIT,
        },
        "clean_reopen": {
            "seconds": reopen_seconds,
            "scanned_bytes": outcome.scanned_bytes,
            "truncated_bytes": outcome.truncated_bytes,
        },
    }


def crash_child(directory: str, size: int, policy: str, shape: tuple[int, int]) -> None:
    """Run in a child process: append until ``size`` bytes, say so, and keep appending until killed.

    After saying so it appends slowly (and stops after ``CRASH_SLACK`` more
    bytes), so the SIGKILL lands mid-append but before the next roll.
    """
    batches = batch_pool(*shape, 16)
    log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse(policy)))
    count = 0
    ready = -1
    while ready < 0 or log.size < ready + CRASH_SLACK:
        log.commit(log.append(batches[count % len(batches)]).last_offset)
        count += 1
        if ready < 0 and log.size >= size:
            print(f"ready {log.end_offset} {log.size}", flush=True)
            ready = log.size
        elif ready >= 0 and count % 8 == 0:
            time.sleep(0.001)
    time.sleep(3600)


def crash_recovery(root: str, settings: Settings) -> dict[str, Any]:
    """kill -9 a child process that is appending to a log of ``recovery_bytes``; time the reopen."""
    directory = fresh_dir(root, "crash")
    shape = settings.recovery_shape
    command = [
        sys.executable,
        str(SCRIPT),
        "--crash-child",
        directory,
        "--recovery-mib",
        str(max(settings.recovery_bytes - CRASH_SLACK, settings.recovery_bytes // 2) / MIB),
        "--crash-policy",
        settings.crash_policy,
        "--crash-shape",
        f"{shape[0]}x{shape[1]}",
    ]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    line = child.stdout.readline().split()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    if not line or line[0] != "ready":
        raise RuntimeError(f"the crash child failed before reaching {fmt_bytes(settings.recovery_bytes)}")
    on_disk = sum(os.path.getsize(path) for path in log_files(directory))
    os.sync()
    start = time.perf_counter()
    log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse(settings.crash_policy)))
    seconds = time.perf_counter() - start
    outcome = log.recovery
    result = {
        "policy": settings.crash_policy,
        "method": "SIGKILL of a child process while it appends (the page cache survives)",
        "end_offset_when_ready": int(line[1]),
        "bytes_on_disk": on_disk,
        "seconds": seconds,
        "scanned_bytes": outcome.scanned_bytes,
        "truncated_bytes": outcome.truncated_bytes,
        "end_offset": log.end_offset,
        "corruption": None if outcome.corruption is None else outcome.corruption.reason,
        "rebuilt_indexes": len(outcome.rebuilt_indexes),
    }
    log.close()
    shutil.rmtree(directory)
    return result


# -- profile -----------------------------------------------------------------------


def profiles(root: str, settings: Settings) -> list[dict[str, Any]]:
    out = []
    seconds = settings.profile_seconds
    budget = settings.budget
    for policy, shape in (("never", (100, 1)), ("never", (100, 1000)), ("always", (100, 100))):
        batches = batch_pool(*shape, settings.pool)
        directory = fresh_dir(root, "profile")
        log = PartitionLog(directory, LogConfig(fsync=FsyncPolicy.parse(policy)))
        label = f"append+commit, {policy}, {shape[1]} x {shape[0]} B"
        out.append(profile(label, lambda log=log, b=batches: append_single(log, b, budget, seconds)))
        if shape[1] in (1, 1000):
            out.append(
                profile(
                    f"read 1 MiB at a time, {shape[1]} x {shape[0]} B batches", lambda log=log: read_log(log)
                )
            )
        log.close()
        if shape[1] == 1:
            out.append(
                profile(
                    f"recovery scan (no checkpoint), {shape[1]} x {shape[0]} B batches",
                    lambda d=directory: full_scan(d, "never"),
                )
            )
        shutil.rmtree(directory)
    return out
