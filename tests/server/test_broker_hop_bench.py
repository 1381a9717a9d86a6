"""``bench/broker_hop.py`` still drives the real broker: each forwarded request comes back as a reply."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_in_memory_request_reply_benchmark_runs_and_counts_the_broker_s_calls() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "broker_hop.py"), "20"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # it asserts every reply reaches the requester
    found = re.search(r"(\d+) Python calls, ([\d.]+) us", done.stdout)
    assert found is not None, done.stdout
    assert int(found.group(1)) > 50  # a session, the protocol and the core each run per frame
