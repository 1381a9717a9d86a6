"""Coverage-guided fuzzing with atheris (libFuzzer), one target per process.

    python -m tests.reliability.atheris_fuzz codec -atheris_runs=1000000

Targets are those of ``tests.reliability.fuzz`` (same allowed outcomes);
the seed corpus is its valid inputs, written to a temporary directory.
The tidings modules are imported under ``atheris.instrument_imports`` so
libFuzzer sees their branches. A crash makes atheris print the input and
exit non-zero; ``fuzz.atheris_run`` runs this and reads the run count.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["tidings"]):
    from tests.reliability import fuzz


def main() -> None:
    name = sys.argv[1]
    target, corpus = fuzz.TARGETS[name]
    seeds = Path(tempfile.mkdtemp(prefix=f"atheris-{name}-"))
    for index, data in enumerate(corpus()):
        (seeds / f"seed-{index}").write_bytes(data)
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(seeds)], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
