"""``tidings log``: look inside a partition log directory on disk (an operator's tool)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.errors import LogCorruptedError, StorageError
from tidings.records import iter_batches, iter_records
from tidings.storage import PartitionLog

app = typer.Typer(help="Inspect and verify a partition log directory.", no_args_is_help=True)
out = Console()

LogDirectory = Annotated[Path, typer.Argument(help="A partition log directory.")]


def _open(directory: Path) -> PartitionLog:
    """Open an existing log directory; never create one, nor a log in another directory."""
    if not directory.is_dir():
        problem = "is not a directory" if directory.exists() else "does not exist"
        raise StorageError(f"log directory {directory} {problem}")
    if not any(directory.glob("*.log")):
        raise StorageError(f"{directory} holds no partition log (no .log segment files)")
    return PartitionLog(str(directory))


@app.command()
def info(directory: LogDirectory) -> None:
    """Offsets, segments and recovery figures of the log in DIRECTORY."""
    with _open(directory) as log:
        table = Table("segment", "offsets", "bytes", "newest append (ms)")
        for segment in log.segments:
            table.add_row(
                f"{segment.base_offset:020d}",
                f"{segment.base_offset}..{segment.next_offset}",
                f"{segment.size:,}",
                str(segment.max_append_time),
            )
        out.print(table)
        out.print(
            f"offsets {log.start_offset}..{log.end_offset}, {log.size:,} bytes; "
            f"recovery scanned {log.recovery.scanned_bytes:,} bytes, "
            f"cut {log.recovery.truncated_bytes:,} torn bytes"
        )
        if log.corruption is not None:
            report = log.corruption
            out.print(
                f"[red]damaged[/red] at offset {report.offset}: "
                f"{escape(report.path)} position {report.position}"
            )
            raise typer.Exit(2)


@app.command()
def verify(directory: LogDirectory) -> None:
    """Read every batch and check its CRCs; exit 2 at the first damaged one."""
    with _open(directory) as log:
        offset, batches, records = log.start_offset, 0, 0
        while offset < log.high_watermark:
            try:
                result = log.read(offset, 4 << 20)
            except LogCorruptedError as exc:
                out.print(
                    f"[red]damaged[/red] at offset {exc.offset}: {escape(exc.path)} position {exc.position} "
                    f"(after {batches:,} good batches, {records:,} records)"
                )
                raise typer.Exit(2) from exc
            for position, header in iter_batches(result.data):
                batches += 1
                records += sum(1 for _ in iter_records(result.data, position, header))
            offset = result.next_offset
        out.print(f"ok: {batches:,} batches, {records:,} records, offsets {log.start_offset}..{offset}")
