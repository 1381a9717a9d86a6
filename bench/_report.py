"""Shared plumbing for the benchmarks in bench/: machine facts, units, tables, JSON, docs.

A benchmark script measures; this module only reports. Every benchmark
writes the same three things:

* a readable table on stdout (rich);
* ``bench/results/<name>-<timestamp>.json`` and ``<name>-latest.json``, the
  figures with the machine they came from;
* optionally, the generated part of a docs page, between two markers
  (``<!-- bench:<name>:begin -->`` and ``<!-- bench:<name>:end -->``), so a
  figure in the docs is always one a run printed and never one typed by hand.

Tables are described once (``Table``: a title, column names, rows of
already-formatted cells) and rendered both as rich tables and as Markdown.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import resource
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"

MB = 1_000_000  # throughput is in decimal MB/s, like disk datasheets
MIB = 1 << 20
GIB = 1 << 30


# -- machine -----------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_total() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def filesystem_of(path: str | os.PathLike[str]) -> dict[str, str]:
    """The mount holding ``path``: mount point, device and filesystem type (from /proc/mounts)."""
    target = os.path.realpath(path)
    best = {"mount": "?", "device": "?", "type": "?", "options": ""}
    try:
        with open("/proc/mounts", encoding="utf-8") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return best
    length = -1
    for device, escaped, kind, options, *_ in mounts:
        mount = escaped.replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > length:
            length = len(mount)
            best = {"mount": mount, "device": device, "type": kind, "options": options}
    return best


def machine_info(data_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, kernel, the data dir's filesystem, Python."""
    usage = os.statvfs(data_dir)
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "kernel": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "data_dir": str(data_dir),
        "filesystem": filesystem_of(data_dir),
        "free_bytes": usage.f_bavail * usage.f_frsize,
        "hostname": platform.node(),
        "load_average_at_start": load_average(),
    }


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: anything else running skews a benchmark, so record it."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None


def machine_line(machine: dict[str, Any]) -> str:
    memory = machine.get("memory_bytes")
    fs = machine["filesystem"]
    parts = [
        f"{machine['cpu']}, {machine['cores']} cores",
        f"{memory / GIB:.0f} GiB RAM" if memory else "RAM ?",
        machine["kernel"],
        f"{fs['type']} on {fs['device']} (data dir {machine['data_dir']})",
        machine["python"],
    ]
    for moment in ("start", "end"):
        load = machine.get(f"load_average_at_{moment}")
        if load:
            parts.append(f"load average at {moment} {load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f}")
    return "; ".join(parts)


# -- process -----------------------------------------------------------------------


def rss_bytes() -> int:
    """The current resident set size (VmRSS), or the peak from getrusage if /proc is missing."""
    try:
        with open("/proc/self/status", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- units -------------------------------------------------------------------------


def fmt_rate(value: float | None, unit: str = "") -> str:
    """3 significant figures, thousands separated: 1,234,000 / 123 / 12.3 / 1.23."""
    if value is None:
        return "-"
    if value >= 1000:
        text = f"{value:,.0f}"
    elif value >= 100:
        text = f"{value:.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return text + unit


def fmt_bytes(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value:.0f} B"


def fmt_seconds(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 1:
        return f"{value:.2f} s"
    if value >= 0.001:
        return f"{value * 1000:.1f} ms"
    return f"{value * 1_000_000:.0f} µs"


# -- tables ------------------------------------------------------------------------


@dataclass
class Table:
    """A titled table of formatted cells, rendered to the terminal and to Markdown."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def add(self, *cells: object) -> None:
        self.rows.append([str(cell) for cell in cells])

    def markdown(self) -> str:
        lines = [f"**{self.title}**", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in self.rows)
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def print(self, console: Console) -> None:
        table = RichTable(title=self.title, title_justify="left", caption=self.note or None)
        for number, name in enumerate(self.columns):
            if number == 0:
                table.add_column(name, justify="left", no_wrap=True)
            else:
                table.add_column(name, justify="right")
        for row in self.rows:
            table.add_row(*(_colour(cell) for cell in row))
        console.print(table)


def _colour(cell: str) -> str:
    if cell.startswith("PASS"):
        return f"[green]{cell}[/green]"
    if cell.startswith("FAIL"):
        return f"[bold red]{cell}[/bold red]"
    return cell


def console() -> Console:
    return Console(width=max(160, Console().width))


# -- output ------------------------------------------------------------------------


def timestamp() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def write_json(results: dict[str, Any], name: str, directory: Path = RESULTS_DIR) -> tuple[Path, Path]:
    """Write ``<name>-<timestamp>.json`` and ``<name>-latest.json`` atomically; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results, indent=2, sort_keys=False) + "\n"
    stamped = directory / f"{name}-{results.get('timestamp') or timestamp()}.json"
    latest = directory / f"{name}-latest.json"
    for path in (stamped, latest):
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, path)
    return stamped, latest


def markers(name: str) -> tuple[str, str]:
    return f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"


def update_doc(path: Path, name: str, body: str) -> bool:
    """Replace the text between the ``name`` markers of ``path`` with ``body``.

    Returns False (and changes nothing) when the file or its markers are
    missing: the prose around the markers is written by hand, the figures
    between them only by a benchmark run.
    """
    begin, end = markers(name)
    if not path.exists():
        return False
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        return False
    generated = (
        f"{begin}\n<!-- Generated by bench/{name}.py: do not edit by hand, re-run `make bench`. -->\n\n"
        f"{body.strip()}\n\n{end}"
    )
    path.write_text(pattern.sub(lambda _: generated, text, count=1), encoding="utf-8")
    return True


def command_line() -> str:
    return " ".join([Path(sys.executable).name, *sys.argv])
