"""``tidings bench``: run the benchmark suite of a source checkout (``make bench`` without make).

The benchmarks live in the repository's ``bench/`` directory, not in the
installed package: they drive peers (NATS, Redis, RabbitMQ) through their own
clients (the ``bench`` extra) and rewrite docs/performance.md, which only
makes sense in a checkout. So this command finds ``bench/`` (from the current
directory upwards, then next to the package's source) and runs its scripts
with this interpreter, passing the options on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

import tidings
from tidings.errors import TidingsError

SCRIPTS = {"storage": "storage.py", "e2e": "e2e.py"}


def find_bench_dir(start: Path | None = None) -> Path | None:
    """The ``bench/`` directory of the checkout around ``start`` (or the package), if any."""
    candidates = [start or Path.cwd(), Path(tidings.__file__).resolve().parent]
    for base in candidates:
        for directory in (base, *base.parents):
            if (directory / "bench" / "e2e.py").is_file() and (directory / "bench" / "storage.py").is_file():
                return directory / "bench"
    return None


def bench(
    only: Annotated[
        str | None, typer.Option(help="run one part: storage (the log engine) or e2e (against the peers)")
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="smoke run in seconds; leaves docs/performance.md alone")
    ] = False,
    full: Annotated[bool, typer.Option(help="e2e: a 10 M-event backlog instead of 1 M")] = False,
) -> None:
    """Run the benchmarks (bench/storage.py, bench/e2e.py) and refresh docs/performance.md."""
    directory = find_bench_dir()
    if directory is None:
        raise TidingsError(
            "no bench/ directory found: `tidings bench` runs the benchmarks of a source checkout "
            "(git clone, then `pip install -e '.[dev,bench]'` and run it there)"
        )
    if only is not None and only not in SCRIPTS:
        raise TidingsError(f"--only takes one of {', '.join(SCRIPTS)}, not {only!r}")
    for part, script in SCRIPTS.items():
        if only is not None and part != only:
            continue
        args = [sys.executable, str(directory / script)]
        if quick:
            args.append("--quick")
        if full and part == "e2e":
            args.append("--full")
        returncode = subprocess.call(args, cwd=directory.parent)
        if returncode != 0:
            raise TidingsError(f"bench/{script} exited with {returncode}")
