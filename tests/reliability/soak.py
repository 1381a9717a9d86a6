"""Scenario 11: a soak of the shop example against one broker, with random broker and service kills.

For ``minutes``, the shop (``python -m examples.shop.run``: checkout,
payment over request/reply, inventory, shipping, recommendations, then a
replay that must rebuild the same table) runs again and again against one
``tidings broker`` process. Each run places ``ORDERS`` orders and its own
check says whether every group handled every approved order. Between and
during runs the chaos loop, at random:

* SIGKILLs the broker and restarts it on the same port and data (the
  services reconnect and the run goes on);
* SIGKILLs the shop process itself (every service at once, mid-run): the
  next run starts fresh services on the same databases and groups.

Figures: runs, their checks (a run whose process was killed has no check),
broker and service kills, and the broker's RSS and open file descriptors
after the first run and at the end (targets: RSS growth < 10%, descriptors
steady). The full run only (``make reliability``): 30 minutes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.reliability.harness import Broker

ORDERS = 200
ROOT = Path(__file__).resolve().parents[2]


def run(minutes: int, workdir: Path, *, seed: int = 11) -> dict[str, Any]:
    rng = random.Random(seed)
    broker = Broker(workdir / "broker").start()
    deadline = time.monotonic() + minutes * 60
    counts = {"runs": 0, "passed": 0, "failed": 0, "shop_kills": 0, "broker_kills": 0}
    failed_runs_with_broker_kill = 0
    failures: list[dict[str, Any]] = []  # why each failed run failed: its log's last words
    previous = "none"
    first_status: dict[str, int] | None = None
    try:
        while time.monotonic() < deadline:
            counts["runs"] += 1
            log = (workdir / f"shop-{counts['runs']}.log").open("wb")
            shop = subprocess.Popen(
                [sys.executable, "-m", "examples.shop.run", "--broker", f"tidings://127.0.0.1:{broker.port}",
                 "--data", str(workdir / "shop"), "--orders", str(ORDERS)],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            chaos = rng.random() if first_status is not None else 1.0
            killed_broker = killed_shop = False
            if chaos < 0.3:  # kill the broker mid-run
                time.sleep(rng.uniform(0.5, 4.0))
                if shop.poll() is None:
                    broker.kill()
                    broker.start()
                    killed_broker = True
                    counts["broker_kills"] += 1
            elif chaos < 0.5:  # kill the services mid-run
                time.sleep(rng.uniform(0.5, 4.0))
                if shop.poll() is None:
                    os.kill(shop.pid, signal.SIGKILL)
                    killed_shop = True
                    counts["shop_kills"] += 1
            try:
                code = shop.wait(timeout=300)
            except subprocess.TimeoutExpired:
                os.kill(shop.pid, signal.SIGKILL)
                code = shop.wait()
            log.close()
            if not killed_shop:
                if code == 0:
                    counts["passed"] += 1
                else:
                    counts["failed"] += 1
                    failed_runs_with_broker_kill += killed_broker
                    text = (workdir / f"shop-{counts['runs']}.log").read_bytes().decode(errors="replace")
                    failures.append(
                        {
                            "run": counts["runs"],
                            "broker_killed": killed_broker,
                            "after": previous,
                            "exit": code,
                            "tail": " ".join(text.replace("\r", "\n").split())[-400:],
                        }
                    )
            previous = "broker kill" if killed_broker else "service kill" if killed_shop else "clean"
            if first_status is None:
                first_status = broker.status()
        last = broker.status()
        assert first_status is not None
        return {
            "minutes": minutes,
            "orders_per_run": ORDERS,
            **counts,
            "failed_runs_with_broker_kill": failed_runs_with_broker_kill,
            "rss_first_mib": round(first_status["VmRSS"] / 2**20, 1),
            "rss_last_mib": round(last["VmRSS"] / 2**20, 1),
            "rss_growth_pct": round((last["VmRSS"] / first_status["VmRSS"] - 1) * 100, 1),
            "fds_first": first_status["fds"],
            "fds_last": last["fds"],
            "broker_restarts_note": "RSS after a broker kill is that of the new process",
            "failures": failures,
        }
    finally:
        broker.stop()
