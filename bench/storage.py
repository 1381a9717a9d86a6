"""Storage benchmark: how fast the partition log appends, reads and recovers, beside the machine's ceilings.

Run with ``make bench`` (about two minutes) or ``.venv/bin/python bench/storage.py --quick``
(a smoke run of a few seconds). This is a benchmark, not a test: it prints a
table, writes JSON to ``bench/results/`` and, on a full run, refreshes the
generated part of ``docs/performance.md``; targets are reported as PASS/FAIL
but only ``--strict`` turns a FAIL into a non-zero exit.

What is measured, and how:

* **Append** ``log.append(batch)`` then ``log.commit(last_offset)``, for 100 B
  and 1 KiB records in batches of 1, 100 and 1000, under each fsync policy;
  under ``always`` with one appender and with ``--threads`` appenders (group
  commit). Batches are built with ``tidings.records.build_batch`` before the
  clock starts (a pool of distinct batches, cycled), so the figures are the
  log's, not the encoder's. Each case runs ``--rounds`` times, interleaved
  with the other cases of its shape so that a slow spell of the shared disk
  falls on all of them; a round stops at ``--duration`` seconds or
  ``--budget-mib`` MiB, whichever comes first, and runs in a fresh directory
  after an ``os.sync()``, so no dirty pages of an earlier case are written
  back during it.
* **Ceilings, in the same run and with the same bytes**: ``os.write`` of the
  same batches into a plain file then one fsync (raw sequential write), and
  ``os.write`` + ``os.fdatasync`` per batch (raw write+fdatasync loop).
  "MB/s" is the rate of the loop; "incl. final fsync" adds the fsync that
  makes everything durable at the end. The ``never`` target compares the
  latter, for the log and for the raw file alike: a ``never`` log also
  fsyncs at each segment roll, so only "written and synced" is comparable.
* **Read**: ``log.read(offset, 1 MiB)`` from start to end of each ``never``
  log, next to ``os.pread`` of the same files in 1 MiB chunks. The data was
  just written, so both read from the page cache. Then the same log is
  reopened without its recovery checkpoint, which makes recovery check every
  batch: the worst-case scan rate.
* **Recovery of a 1 GiB log**: reopen after a clean close, and after
  ``kill -9`` of a child process that was appending (policy ``--crash-policy``),
  with ``log.recovery.scanned_bytes``.
* **Memory**: VmRSS before, during and after appending and reading the 1 GiB log.
* **Profile**: cProfile of the hot paths (append+commit with small and large
  batches, read, a full recovery scan): the functions that cost the most.

Targets comparing the log with a raw ceiling are judged on the median of the
rounds' ratios, each log round having run right after its raw round.

This file chooses what to run; ``_storage_cases.py`` (append, read),
``_storage_recovery.py`` (the 1 GiB log, the crash, the profiles) measure,
``_storage_verdicts.py`` judges and lays out the tables, and ``_report.py``
holds what any benchmark can reuse (machine facts, tables, JSON, docs markers).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import _report as report
from _report import MIB, fmt_bytes
from _storage_cases import Settings, append_shape
from _storage_recovery import big_log, crash_child, crash_recovery, profiles
from _storage_verdicts import doc_body, tables, targets
from tidings.storage import FsyncPolicy

# -- main --------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, a few seconds")
    parser.add_argument(
        "--duration", type=float, help="seconds per round of an append case, at most (default 0.6, quick 0.1)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per append case (default 5, quick 1)")
    parser.add_argument(
        "--budget-mib", type=float, help="MiB per round of an append case, at most (default 64, quick 4)"
    )
    parser.add_argument("--threads", type=int, default=4, help="concurrent appenders under fsync=always")
    parser.add_argument("--interval-ms", type=int, default=5, help="the interval:MS policy measured")
    parser.add_argument(
        "--recovery-mib", type=float, help="size of the recovery log (default 1024, quick 16)"
    )
    parser.add_argument(
        "--crash-policy", default="never", help="policy of the process killed (default never)"
    )
    parser.add_argument("--dir", help="parent of the temporary data dir (default .tidings/bench in the repo)")
    parser.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="where the JSON goes")
    parser.add_argument(
        "--docs",
        type=Path,
        help="page whose generated section to refresh "
        "(default docs/performance.md on a full run, none with --quick)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch the docs")
    parser.add_argument("--no-profile", action="store_true", help="skip the cProfile section")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--crash-child", help=argparse.SUPPRESS)
    parser.add_argument("--crash-shape", default="100x100", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.crash_child:
        size, records = (int(part) for part in args.crash_shape.split("x"))
        crash_child(args.crash_child, int(args.recovery_mib * MIB), args.crash_policy, (size, records))
        return 0
    quick = args.quick
    settings = Settings(
        quick=quick,
        duration=args.duration or (0.1 if quick else 0.6),
        budget=int((args.budget_mib or (4 if quick else 64)) * MIB),
        rounds=args.rounds or (1 if quick else 5),
        threads=args.threads,
        interval_ms=args.interval_ms,
        recovery_bytes=int((args.recovery_mib or (16 if quick else 1024)) * MIB),
        crash_policy=str(FsyncPolicy.parse(args.crash_policy)),
        profile_seconds=0.05 if quick else 1.0,
        profile=not args.no_profile,
    )
    parent = Path(args.dir) if args.dir else report.REPO_DIR / ".tidings" / "bench"
    parent.mkdir(parents=True, exist_ok=True)
    root = tempfile.mkdtemp(prefix="storage-", dir=parent)
    console = report.console()
    try:
        results = run(root, settings, console)
    finally:
        shutil.rmtree(root, ignore_errors=True)

    name = "storage-quick" if quick else "storage"
    results["file"] = f"{name}-{results['timestamp']}.json"
    rendered = tables(results)
    for table in rendered:
        table.print(console)
    stamped, latest = report.write_json(results, name, args.results_dir)
    console.print(f"JSON: {stamped} and {latest.name}")
    docs = args.docs or (None if quick else report.REPO_DIR / "docs" / "performance.md")
    if docs is not None and not args.no_docs:
        if report.update_doc(docs, "storage", doc_body(results, rendered)):
            console.print(f"refreshed the generated section of {docs}")
        else:
            console.print(f"[yellow]{docs} has no bench:storage markers: left alone[/yellow]")
    failed = [target for target in results["targets"] if not target["passed"]]
    return 1 if failed and args.strict else 0


def run(root: str, settings: Settings, console: Any) -> dict[str, Any]:
    results: dict[str, Any] = {
        "benchmark": "storage",
        "timestamp": report.timestamp(),
        "date": report.now_iso(),
        "command": report.command_line(),
        "quick": settings.quick,
        "settings": asdict(settings),
        "machine": report.machine_info(root),
        "append": [],
        "read": [],
    }
    for record_size in settings.record_sizes:
        for records in settings.batch_sizes:
            shape = (record_size, records)
            console.print(f"append: {records} x {record_size} B, {settings.rounds} round(s) ...")
            rows, read = append_shape(root, shape, settings)
            results["append"] += rows
            results["read"].append(read)
    console.print(f"1 log of {fmt_bytes(settings.recovery_bytes)}: append, read, close, reopen ...")
    results["big_log"] = big_log(root, settings)
    console.print(f"kill -9 while appending to {fmt_bytes(settings.recovery_bytes)}, reopen ...")
    results["crash"] = crash_recovery(root, settings)
    if settings.profile:
        console.print("profiling ...")
        results["profile"] = profiles(root, settings)
    results["targets"] = targets(results, settings)
    results["machine"]["load_average_at_end"] = report.load_average()
    return results


if __name__ == "__main__":
    sys.exit(main())
