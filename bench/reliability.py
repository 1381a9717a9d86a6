"""The reliability suite at full size: crash, power loss, corruption, full disk, EIO, clock jumps, fuzzing.

Runs the scenarios of ``tests/reliability`` (the same functions the tests
run at the CI size) at the size given, prints a table, writes
``bench/results/reliability-<size>-<timestamp>.json`` (and ``-latest``),
and regenerates the section of docs/reliability.md between the
``bench:reliability-<size>`` markers. Every figure there comes from such a
run, with the command that reproduces it and when it ran. ``--only`` re-runs
some scenarios and keeps the others' rows from the last results.

    python bench/reliability.py                # the full size (make reliability)
    python bench/reliability.py --size ci      # the sizes the test suite uses
    python bench/reliability.py --only kill9 --only clock_jumps
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from tests.reliability import sizes  # noqa: E402

import _report as report  # noqa: E402
from _reliability_cases import CASES, Case  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=("full", "ci"), default="full", help="scenario sizes (default full)"
    )
    parser.add_argument(
        "--only", action="append", choices=[case.name for case in CASES], help="run only these"
    )
    parser.add_argument("--dir", help="parent of the temporary data dirs (default .tidings/reliability)")
    parser.add_argument("--results-dir", type=Path, default=report.RESULTS_DIR, help="where the JSON goes")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/reliability.md")
    parser.add_argument(
        "--docs-only", action="store_true", help="run nothing: regenerate the docs from the latest results"
    )
    return parser.parse_args(argv)


def command_for(case: Case, size: str) -> str:
    suffix = "" if size == "full" else " --size ci"
    return f"python bench/reliability.py --only {case.name}{suffix}"


def run_case(case: Case, size: int, parent: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{case.name}-", dir=parent))
    started = time.perf_counter()
    try:
        figures = case.execute(size, workdir)
        passed = case.verdict(figures)
        line = case.summary(figures)
        error = None
    except Exception as exc:
        figures, passed, line, error = (
            {},
            False,
            f"error: {type(exc).__name__}: {exc}",
            traceback.format_exc(),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "name": case.name,
        "item": case.issue_item,
        "title": case.title,
        "size": size,
        "passed": passed,
        "summary": line,
        "seconds": round(time.perf_counter() - started, 1),
        "figures": figures,
        "error": error,
        "test": case.test,
    }


def merged(rows: list[dict[str, Any]], latest: Path) -> list[dict[str, Any]]:
    """The last full set of rows with these (re-run) ones in their place: ``--only`` refreshes a figure."""
    if not latest.exists():
        return rows
    fresh = {row["name"]: row for row in rows}
    previous = json.loads(latest.read_text(encoding="utf-8"))
    kept = []
    for row in previous.get("cases", []):
        row.setdefault("timestamp", previous["timestamp"])  # rows older than per-row stamps
        kept.append(fresh.pop(row["name"], row))
    order = [case.name for case in CASES]
    return sorted(kept + list(fresh.values()), key=lambda row: order.index(row["name"]))


def doc_body(results: dict[str, Any]) -> str:
    """The table, each row's summary rendered afresh from its stored figures (the wording may change)."""
    size = results["size"]
    table = report.Table(
        f"Reliability, {size} size ({results['timestamp']})",
        ["#", "Scenario", "Size", "Result", "Figures", "Time", "Reproduce"],
    )
    for row in results["cases"]:
        case = next(c for c in CASES if c.name == row["name"])
        if row.get("figures") and not row.get("error"):
            row["summary"] = case.summary(row["figures"])
        table.add(
            row["item"],
            row["title"],
            f"{row['size']:,}",
            "PASS" if row["passed"] else "FAIL",
            row["summary"],
            f"{row['seconds']} s",
            f"`{command_for(case, size)}` ({row.get('timestamp', results['timestamp'])})",
        )
    table.note = (
        f"Machine: {report.machine_line(results['machine'])}. Last command: `{results['command']}` "
        "(each row says when it ran)."
    )
    return table.markdown()


def update_doc(path: Path, name: str, body: str) -> bool:
    """``report.update_doc``, with the generated-by line naming this script's own command."""
    if not report.update_doc(path, name, body):
        return False
    text = path.read_text(encoding="utf-8")
    text = text.replace(
        f"<!-- Generated by bench/{name}.py: do not edit by hand, re-run `make bench`. -->",
        "<!-- Generated by bench/reliability.py: do not edit by hand, re-run `make reliability`. -->",
    )
    path.write_text(text, encoding="utf-8")
    return True


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    table = sizes.FULL if args.size == "full" else sizes.CI
    parent = Path(args.dir) if args.dir else ROOT / ".tidings" / "reliability"
    parent.mkdir(parents=True, exist_ok=True)
    if args.docs_only:
        latest = json.loads((args.results_dir / f"reliability-{args.size}-latest.json").read_text("utf-8"))
        latest["cases"] = merged([], args.results_dir / f"reliability-{args.size}-latest.json")
        update_doc(DOC, f"reliability-{args.size}", doc_body(latest))
        return 0
    selected = [case for case in CASES if not args.only or case.name in args.only]
    console = report.console()
    rows = []
    for case in selected:
        if not table[case.name]:
            continue  # not at this size (the soak runs in the full run only)
        console.print(f"[bold]{case.title}[/bold] ({case.name}, size {table[case.name]:,}) ...")
        row = run_case(case, table[case.name], parent)
        console.print(("PASS " if row["passed"] else "FAIL ") + row["summary"] + f" ({row['seconds']} s)")
        if row["error"]:
            console.print(row["error"])
        rows.append(row)
    stamp = report.timestamp()
    for row in rows:
        row["timestamp"] = stamp
    results: dict[str, Any] = {
        "benchmark": "reliability",
        "size": args.size,
        "timestamp": stamp,
        "command": report.command_line(),
        "machine": report.machine_info(parent),
        "cases": merged(rows, args.results_dir / f"reliability-{args.size}-latest.json")
        if args.only
        else rows,
    }
    stamped, _ = report.write_json(results, f"reliability-{args.size}", args.results_dir)
    console.print(f"results: {stamped}")
    if not args.no_docs:
        if update_doc(DOC, f"reliability-{args.size}", doc_body(results)):
            console.print(f"updated {DOC}")
        else:
            console.print(f"{DOC} has no bench:reliability-{args.size} markers: not updated")
    return 0 if all(row["passed"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
