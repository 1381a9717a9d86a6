"""End-to-end benchmark: Tidings against NATS JetStream, Redis Streams and RabbitMQ, in one run.

Same machine, same run, same payloads, each peer with its best-practice
Python client (see bench/_peers.py for the exact settings, also written into
the results). Workloads, for 100 B and 1 KiB events:

* durable publish throughput (every publish acknowledged, many outstanding);
* consume throughput with a per-message ack, from a pre-filled topic;
* end-to-end latency p50/p99/p99.9 at a fixed publish rate.

Output: a table with absolute figures and the ratio Tidings / peer, JSON in
bench/results/e2e-*.json, and the generated section of docs/performance.md
(between the ``bench:e2e`` markers). ``--quick`` is a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report
from _peers import NatsPeer, Peer, RabbitPeer, RedisPeer, TidingsPeer

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(peer: Peer, sizes: list[int], count: int, rate: int, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {"name": peer.name, "settings": peer.settings, "cases": {}}
    for size in sizes:
        topic = f"bench.s{size}.{int(time.time() * 1000) % 100000}"
        payloads = [bytes([65 + i % 26]) * size for i in range(count)]
        started = time.perf_counter()
        await peer.publish(topic, payloads)
        publish_s = time.perf_counter() - started
        started = time.perf_counter()
        await peer.consume(topic, count)
        consume_s = time.perf_counter() - started
        samples = await peer.latency(topic + ".lat", rate, seconds, size)
        out["cases"][str(size)] = {
            "publish_per_s": count / publish_s,
            "consume_per_s": count / consume_s,
            "latency_rate": rate,
            "latency_samples": len(samples),
            "p50_ms": percentile(samples, 0.50) * 1000,
            "p99_ms": percentile(samples, 0.99) * 1000,
            "p999_ms": percentile(samples, 0.999) * 1000,
            "mean_ms": statistics.fmean(samples) * 1000,
        }
    return out


async def run_peer(peer: Peer, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    try:
        await peer.start(directory)
    except Exception as exc:  # a peer that is not there is reported, not fatal
        return {"name": peer.name, "settings": peer.settings, "unavailable": f"{type(exc).__name__}: {exc}"}
    try:
        return await measure(peer, args.sizes, args.count, args.rate, args.seconds)
    except Exception as exc:
        traceback.print_exc()
        return {"name": peer.name, "settings": peer.settings, "failed": f"{type(exc).__name__}: {exc}"}
    finally:
        await peer.stop()


def tables(results: list[dict[str, Any]], sizes: list[int]) -> list[report.Table]:
    ours = next((r for r in results if r["name"] == "tidings" and "cases" in r), None)
    out = []
    for size in sizes:
        table = report.Table(
            f"{size} B events",
            [
                "system",
                "publish/s",
                "x",
                "consume+ack/s",
                "x",
                f"p50 ms @{results[0].get('cases', {}).get(str(size), {}).get('latency_rate', '?')}/s",
                "p99 ms",
                "p99.9 ms",
            ],
        )
        for result in results:
            if "cases" not in result:
                table.add(
                    result["name"], result.get("unavailable") or result.get("failed"), "", "", "", "", "", ""
                )
                continue
            case = result["cases"][str(size)]
            mine = ours["cases"][str(size)] if ours else None
            table.add(
                result["name"],
                report.fmt_rate(case["publish_per_s"]),
                f"{mine['publish_per_s'] / case['publish_per_s']:.2f}" if mine else "-",
                report.fmt_rate(case["consume_per_s"]),
                f"{mine['consume_per_s'] / case['consume_per_s']:.2f}" if mine else "-",
                f"{case['p50_ms']:.2f}",
                f"{case['p99_ms']:.2f}",
                f"{case['p999_ms']:.2f}",
            )
        out.append(table)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, leaves the docs alone")
    parser.add_argument(
        "--peers", default="tidings,tidings-many,nats,nats-always,redis,redis-always,rabbitmq"
    )
    args = parser.parse_args()
    args.sizes = [100, 1024]
    args.count = 500 if args.quick else 20_000
    args.rate = 500 if args.quick else 5_000
    args.seconds = 1.0 if args.quick else 3.0
    factories = {
        "tidings": TidingsPeer,
        "tidings-many": lambda: TidingsPeer(batch_api=True),
        "nats": lambda: NatsPeer(sync_always=False),
        "nats-always": lambda: NatsPeer(sync_always=True),
        "redis": lambda: RedisPeer("everysec"),
        "redis-always": lambda: RedisPeer("always"),
        "rabbitmq": RabbitPeer,
    }
    console = report.console()
    results = []
    with tempfile.TemporaryDirectory(prefix="tidings-e2e-") as tmp:
        for name in args.peers.split(","):
            console.print(f"[bold]{name}[/bold] ...")
            peer = factories[name]()
            results.append(asyncio.run(run_peer(peer, Path(tmp) / name, args)))
    machine = report.machine_info(tempfile.gettempdir())
    for table in tables(results, args.sizes):
        table.print(console)
    payload = {
        "benchmark": "e2e",
        "date": report.now_iso(),
        "machine": machine,
        "command": report.command_line(),
        "quick": args.quick,
        "count": args.count,
        "latency_rate": args.rate,
        "latency_seconds": args.seconds,
        "peers": results,
    }
    name = "e2e-quick" if args.quick else "e2e"
    paths = report.write_json(payload, name)
    console.print(f"JSON: {paths[0]}")
    if not args.quick:
        body = "\n\n".join(
            [
                f"Run {payload['date']} on {report.machine_line(machine)}; {args.count:,} events per "
                f"throughput case, latency at {args.rate:,} events/s for {args.seconds:g} s. "
                "x = Tidings / peer (above 1: Tidings is faster).",
                *(table.markdown() for table in tables(results, args.sizes)),
                "Settings:\n\n" + "\n".join(f"* **{r['name']}**: {r['settings']}" for r in results),
            ]
        )
        report.update_doc(DOC, "e2e", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
