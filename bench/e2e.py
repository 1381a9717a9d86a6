"""End-to-end benchmark: Tidings against NATS JetStream, Redis Streams and RabbitMQ, in one run.

Same machine, same run, same payloads, each peer with its best-practice
Python client (see bench/_peers.py for the exact settings, also written into
the results), every client on uvloop. Workloads, for 100 B and 1 KiB events:

* durable publish throughput with 1 and with 4 concurrent producers (every
  publish acknowledged, many outstanding), median of ``--runs`` runs;
* consume throughput with a per-message ack, from a pre-filled topic,
  median of ``--runs`` runs;
* end-to-end latency p50/p99/p99.9 at a fixed publish rate (5,000/s);

and, for Tidings alone:

* latency at 1k, 10k and 50k events/s and at saturation;
* consume with 3 groups reading the same events (fan-out) and with 4
  competing members of one group;
* request/reply through the broker against a direct HTTP call and NATS core
  request/reply between the same two processes (bench/_reqrep.py);
* a stored backlog: broker memory with a stalled consumer, restart time,
  start-by-time, publish throughput when full vs empty (bench/_state.py;
  1 M events by default, 10 M with ``--full``);

and the machine's ceilings, measured in the same run (bench/_ceilings.py).

Output: tables with absolute figures and the ratio Tidings / peer, JSON in
bench/results/e2e-*.json, PNG plots in docs/performance/, and the generated
section of docs/performance.md (between the ``bench:e2e`` markers).
``--quick`` is a smoke run that leaves the docs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _ceilings as ceilings
import _plots as plots
import _report as report
import _reqrep as reqrep
import _state as state
from _peers import NatsPeer, Peer, RabbitPeer, RedisPeer, TidingsPeer, quiet_heap

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
PLOTS = ROOT / "docs" / "performance"
RUN_SECONDS = 1.0
"""How long one measured publish run lasts, for every peer: a warm-up run sizes the event count."""
MAX_RUN_BYTES = 64 << 20
"""Payload bytes one run may hold in memory (the payloads are built before the clock starts)."""
CDF_POINTS = 200
ALL_PEERS = "tidings,tidings-many,nats,nats-always,redis,redis-always,rabbitmq"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def latency_summary(samples: list[float], rate: int | None) -> dict[str, Any]:
    ordered = sorted(samples)
    return {
        "rate": rate,
        "samples": len(samples),
        "p50_ms": percentile(ordered, 0.50) * 1000,
        "p99_ms": percentile(ordered, 0.99) * 1000,
        "p999_ms": percentile(ordered, 0.999) * 1000,
        "mean_ms": statistics.fmean(ordered) * 1000 if ordered else None,
        # the CDF at CDF_POINTS quantiles, for the plots (the samples themselves are too many to keep)
        "cdf_ms": [
            ordered[min(len(ordered) - 1, int(i / CDF_POINTS * len(ordered)))] * 1000
            for i in range(CDF_POINTS + 1)
        ],
    }


def new_topic(label: str) -> str:
    return f"bench.{label}.{time.time_ns() % 10**12}"


async def timed(work: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await work()
    return time.perf_counter() - started


async def throughput(peer: Peer, size: int, count: int, runs: int) -> dict[str, Any]:
    """Median over ``runs`` of: publish (1 producer), publish (4 producers), consume with acks.

    Every peer's runs last about the same time, not the same number of
    events: a warm-up run of ``count`` events (reported, not counted) gives
    the peer's publish rate, and each measured run publishes what that rate
    does in ``RUN_SECONDS``. A fixed count would measure a fast peer's first
    milliseconds (connection warm-up, first batches) and a slow one's
    steady state.
    """
    out: dict[str, list[float]] = {"publish": [], "publish_4": [], "consume": [], "events": []}
    warmup = await _run(peer, size, count)
    sized = int(warmup["publish"] * RUN_SECONDS) // 4 * 4
    count = max(1000, min(sized, MAX_RUN_BYTES // size // 4 * 4))
    for _ in range(runs):
        for key, value in (await _run(peer, size, count)).items():
            out[key].append(value)
    return {
        "publish_per_s": statistics.median(out["publish"]),
        "publish_4_per_s": statistics.median(out["publish_4"]),
        "consume_per_s": statistics.median(out["consume"]),
        "runs": {key: values for key, values in out.items()},
        "warmup": warmup,
    }


async def _run(peer: Peer, size: int, count: int) -> dict[str, float]:
    """One run: ``count`` events published by one producer then consumed, and by four producers."""
    payloads = [bytes([65 + i % 26]) * size for i in range(count)]
    topic = new_topic(f"s{size}")
    publish = count / await timed(lambda: peer.publish(topic, payloads))
    consume = count / await timed(lambda: peer.consume(topic, count))
    quarter = count // 4
    topic4 = new_topic(f"p{size}")
    chunks = [payloads[i * quarter : (i + 1) * quarter] for i in range(4)]
    seconds = await timed(lambda: asyncio.gather(*(peer.publish(topic4, chunk) for chunk in chunks)))
    return {"publish": publish, "publish_4": quarter * 4 / seconds, "consume": consume, "events": count}


async def measure(peer: Peer, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"name": peer.name, "settings": peer.settings, "cases": {}}
    for size in args.sizes:
        case: dict[str, Any] = await throughput(peer, size, args.warmup, args.runs)
        case["latency"] = await latency_runs(peer, args.rate, args.seconds, size, args.latency_runs)
        if isinstance(peer, TidingsPeer) and not peer.batch_api and args.more:
            case["more"] = await more_workloads(peer, size, args)
        out["cases"][str(size)] = case
    return out


async def latency_runs(peer: Peer, rate: int, seconds: float, size: int, runs: int) -> dict[str, Any]:
    """``runs`` fixed-rate runs, each on a new topic: the median of each percentile over the runs.

    One run's p99 rests on a few dozen samples and moves with whatever else
    the machine did in those seconds; the median of three runs is what the
    targets are judged on. The CDF (for the plots) is the run with the median p99.
    """
    summaries = []
    for _ in range(runs):
        quiet_heap()
        samples = await peer.latency(new_topic(f"lat{rate}"), rate, seconds, size)
        summaries.append(latency_summary(samples, rate))
    by_p99 = sorted(summaries, key=lambda summary: summary["p99_ms"])
    out = dict(by_p99[len(by_p99) // 2])
    for key in ("p50_ms", "p99_ms", "p999_ms", "mean_ms"):
        out[key] = statistics.median(summary[key] for summary in summaries)
    out["samples"] = sum(summary["samples"] for summary in summaries)
    out["runs"] = [{k: v for k, v in summary.items() if k != "cdf_ms"} for summary in summaries]
    return out


async def more_workloads(peer: TidingsPeer, size: int, args: argparse.Namespace) -> dict[str, Any]:
    """Tidings alone: latency at other rates and at saturation, fan-out and competing consumers."""
    more: dict[str, Any] = {"latency": {}}
    for rate in args.more_rates:
        summary = await latency_runs(peer, rate, args.more_seconds, size, args.latency_runs)
        more["latency"][str(rate)] = summary
    samples = await peer.latency_saturated(new_topic("sat"), args.count, size)
    more["latency"]["saturation"] = latency_summary(samples, None)
    payloads = [b"f" * size] * args.count
    topic = new_topic("fan")
    await peer.publish(topic, payloads)
    more["fanout_3_groups_per_s"] = (
        3 * args.count / await timed(lambda: peer.consume_groups(topic, args.count, 3))
    )
    topic = new_topic("members")
    await peer.publish(topic, payloads)
    more["members_4_per_s"] = args.count / await timed(lambda: peer.consume_members(topic, args.count, 4))
    return more


async def run_peer(peer: Peer, directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    try:
        await peer.start(directory)
    except Exception as exc:  # a peer that is not there is reported, not fatal
        return {"name": peer.name, "settings": peer.settings, "unavailable": f"{type(exc).__name__}: {exc}"}
    try:
        return await measure(peer, args)
    except Exception as exc:
        traceback.print_exc()
        return {"name": peer.name, "settings": peer.settings, "failed": f"{type(exc).__name__}: {exc}"}
    finally:
        await peer.stop()


# -- tables ---------------------------------------------------------------------------------


def _ratio(mine: float | None, theirs: float | None) -> str:
    return f"{mine / theirs:.2f}" if mine and theirs else "-"


def system_tables(results: list[dict[str, Any]], sizes: list[int], rate: int) -> list[report.Table]:
    ours = next((r for r in results if r["name"] == "tidings" and "cases" in r), None)
    ours_many = next((r for r in results if r["name"] == "tidings (publish_many)" and "cases" in r), None)
    out = []
    for size in sizes:
        table = report.Table(
            f"{size} B events",
            [
                "system",
                "publish/s",
                "x",
                "4 producers/s",
                "x",
                "consume+ack/s",
                "x",
                f"p50 ms @{rate:,}/s",
                "p99 ms",
                "p99.9 ms",
            ],
            note="x: Tidings / this system (the `tidings (publish_many)` row for publish, the `tidings` "
            "row for consume; above 1: Tidings is faster). Throughput: median of the runs.",
        )
        best_publish = ours_many or ours
        for result in results:
            if "cases" not in result:
                table.add(result["name"], result.get("unavailable") or result.get("failed"), *[""] * 8)
                continue
            case = result["cases"][str(size)]
            mine_pub = best_publish["cases"][str(size)] if best_publish else {}
            mine = ours["cases"][str(size)] if ours else {}
            latency = case["latency"]
            table.add(
                result["name"],
                report.fmt_rate(case["publish_per_s"]),
                _ratio(mine_pub.get("publish_per_s"), case["publish_per_s"]),
                report.fmt_rate(case["publish_4_per_s"]),
                _ratio(mine_pub.get("publish_4_per_s"), case["publish_4_per_s"]),
                report.fmt_rate(case["consume_per_s"]),
                _ratio(mine.get("consume_per_s"), case["consume_per_s"]),
                f"{latency['p50_ms']:.2f}",
                f"{latency['p99_ms']:.2f}",
                f"{latency['p999_ms']:.2f}",
            )
        out.append(table)
    return out


def more_tables(results: list[dict[str, Any]], sizes: list[int]) -> list[report.Table]:
    ours = next((r for r in results if r["name"] == "tidings" and "cases" in r), None)
    if ours is None or "more" not in next(iter(ours["cases"].values())):
        return []
    latency = report.Table(
        "Tidings end-to-end latency by rate (publish to handler, fsync before delivery)",
        ["event", "rate", "received", "p50 ms", "p99 ms", "p99.9 ms"],
        note="saturation: publishing as fast as one client takes events, 1,000 outstanding.",
    )
    consume = report.Table(
        "Tidings consume with per-message acks, more consumers",
        ["event", "1 group /s", "3 groups (fan-out), deliveries/s", "4 competing members /s"],
    )
    for size in sizes:
        case = ours["cases"][str(size)]
        more = case["more"]
        rows = [(f"{case['latency']['rate']:,}/s", case["latency"])] + [
            (f"{int(rate):,}/s" if rate != "saturation" else "saturation", summary)
            for rate, summary in more["latency"].items()
        ]
        rows.sort(key=lambda row: row[1]["rate"] or 10**9)
        for label, summary in rows:
            latency.add(
                f"{size} B",
                label,
                f"{summary['samples']:,}",
                f"{summary['p50_ms']:.2f}",
                f"{summary['p99_ms']:.2f}",
                f"{summary['p999_ms']:.2f}",
            )
        consume.add(
            f"{size} B",
            report.fmt_rate(case["consume_per_s"]),
            report.fmt_rate(more["fanout_3_groups_per_s"]),
            report.fmt_rate(more["members_4_per_s"]),
        )
    return [latency, consume]


def reqrep_table(result: dict[str, Any]) -> report.Table:
    table = report.Table(
        f"Request/reply between two Python processes ({result['size']} B, one at a time, "
        f"{result['count']:,} requests)",
        ["path", "p50 ms", "p99 ms", "p99.9 ms", "p50 / tidings"],
        note="tidings: client.request through the broker; http: httpx to starlette/uvicorn, kept-alive; "
        "nats-core: nc.request through nats-server (no JetStream).",
    )
    ours = result.get("tidings")
    for path in ("tidings", "http", "nats-core"):
        summary = result.get(path)
        if summary is None:
            table.add(path, "-", "-", "-", "-")
            continue
        table.add(
            path,
            f"{summary['p50_ms']:.3f}",
            f"{summary['p99_ms']:.3f}",
            f"{summary['p999_ms']:.3f}",
            _ratio(summary["p50_ms"], ours["p50_ms"]) if ours else "-",
        )
    return table


def state_table(result: dict[str, Any]) -> report.Table:
    table = report.Table(
        f"Broker with {result['stored_events']:,} stored events of {result['event_size']} B",
        ["measure", "value", "detail"],
    )
    table.add("fill (publish_many, fsync=always)", report.fmt_seconds(result["fill_s"]), "")
    table.add(
        "publish_many into the full topic / into an empty one",
        f"{result['full_vs_empty']:.2f}",
        f"median {report.fmt_rate(result['publish_full_per_s'])}/s vs "
        f"{report.fmt_rate(result['publish_empty_per_s'])}/s (an empty topic of the same broker), "
        f"{len(result['publish_full_runs'])} alternating rounds of {result['probe_events']:,} events; "
        f"the same topic before the fill: {report.fmt_rate(result['publish_before_fill_per_s'])}/s",
    )
    table.add(
        "broker RSS, stalled consumer",
        report.fmt_bytes(result["rss_stalled_bytes"]),
        f"peak {report.fmt_bytes(result['rss_peak_bytes'])}",
    )
    table.add(
        "start-by-time, subscribe to first event",
        report.fmt_seconds(result["start_by_time_s"]),
        "first event is the one published at that time"
        if result["start_by_time_found_marker"]
        else "WRONG first event",
    )
    table.add(
        "restart (spawn to ready)",
        report.fmt_seconds(result["restart_s"]),
        f"empty data directory: {report.fmt_seconds(result['start_empty_s'])}; first publish after: "
        f"{report.fmt_seconds(result['first_publish_after_restart_s'])}",
    )
    return table


def ceilings_table(result: dict[str, Any], sizes: list[int]) -> report.Table:
    table = report.Table(
        "Machine ceilings (same run)",
        ["measure", "value", *(f"as {size} B events/s" for size in sizes)],
        note="events/s: bytes/s over (event + 24 B record prefix); write+fdatasync bounds group commits, "
        "not events.",
    )
    sync = result["fdatasync"]
    table.add(
        "write 4 KiB + fdatasync loop",
        f"{report.fmt_rate(sync['syncs_per_s'])}/s ({sync['mean_ms']:.2f} ms each)",
        *["-" for _ in sizes],
    )
    table.add(
        "sequential write + fsync",
        f"{result['sequential_write']['bytes_per_s'] / report.MB:,.0f} MB/s",
        *(report.fmt_rate(result["events_per_s"][str(size)]["sequential_write"]) for size in sizes),
    )
    if "python" in result:
        table.add(
            "CPython loop (yardstick between runs)",
            f"{result['python']['loop_iterations_per_s'] / 1e6:.1f} M additions/s",
            *["-" for _ in sizes],
        )
    table.add(
        "loopback TCP, one stream",
        f"{result['loopback_tcp']['bytes_per_s'] / report.MB:,.0f} MB/s",
        *(report.fmt_rate(result["events_per_s"][str(size)]["loopback_tcp"]) for size in sizes),
    )
    return table


def targets_table(payload: dict[str, Any]) -> report.Table:
    """The issue's targets against this run's figures: PASS / FAIL, and by how much."""
    table = report.Table("Targets", ["target", "measured", "wanted", "verdict"])
    results = payload["peers"]
    by_name = {r["name"]: r for r in results if "cases" in r}
    ours, many = by_name.get("tidings"), by_name.get("tidings (publish_many)")
    peers = [r for r in by_name.values() if not r["name"].startswith("tidings")]

    def verdict(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    for size, factor in ((100, 10), (1024, 5)):
        if not peers or str(size) not in next(iter(by_name.values()))["cases"]:
            continue
        best = max(peers, key=lambda r: r["cases"][str(size)]["publish_per_s"])
        theirs = best["cases"][str(size)]["publish_per_s"]
        for row in (ours, many):
            if row is None:
                continue
            mine = row["cases"][str(size)]["publish_per_s"]
            table.add(
                f"durable publish {size} B, 1 producer ({row['name']}) vs best peer ({best['name']})",
                f"{mine / theirs:.2f}x ({report.fmt_rate(mine)}/s)",
                f">= {factor}x",
                verdict(mine / theirs >= factor),
            )
    if ours and peers:
        for size in payload["sizes"]:
            best = max(peers, key=lambda r: r["cases"][str(size)]["consume_per_s"])
            ratio = ours["cases"][str(size)]["consume_per_s"] / best["cases"][str(size)]["consume_per_s"]
            table.add(
                f"consume+ack {size} B vs best peer ({best['name']})",
                f"{ratio:.2f}x",
                ">= 3x",
                verdict(ratio >= 3),
            )
        for size in payload["sizes"]:
            mine = ours["cases"][str(size)]["latency"]["p99_ms"]
            lowest = min(r["cases"][str(size)]["latency"]["p99_ms"] for r in peers)
            table.add(
                f"p99 at {payload['latency_rate']:,}/s, {size} B",
                f"{mine:.2f} ms (lowest peer {lowest:.2f} ms)",
                "<= 3 ms and below every peer",
                verdict(mine <= 3 and mine < lowest),
            )
            more = ours["cases"][str(size)].get("more", {}).get("latency", {}).get("50000")
            if more:
                table.add(
                    f"p99 at 50,000/s, {size} B",
                    f"{more['p99_ms']:.2f} ms",
                    "<= 10 ms",
                    verdict(more["p99_ms"] <= 10),
                )
    stored = payload.get("state")
    if stored and "rss_stalled_bytes" in stored:
        n = f"{stored['stored_events'] / 1e6:.1f} M"
        table.add(
            f"broker RSS, {n} backlog + stalled consumer",
            report.fmt_bytes(stored["rss_stalled_bytes"]),
            "< 150 MiB",
            verdict(stored["rss_stalled_bytes"] < 150 * report.MIB),
        )
        table.add(
            f"restart with {n} events",
            report.fmt_seconds(stored["restart_s"]),
            "< 2 s",
            verdict(stored["restart_s"] < 2),
        )
        table.add(
            f"start-by-time in {n}",
            report.fmt_seconds(stored["start_by_time_s"]),
            "< 10 ms",
            verdict(stored["start_by_time_s"] < 0.010 and stored["start_by_time_found_marker"]),
        )
        table.add(
            f"publish throughput with {n} stored vs empty",
            f"{stored['full_vs_empty']:.2f}",
            ">= 0.90",
            verdict(stored["full_vs_empty"] >= 0.9),
        )
    rr = payload.get("reqrep")
    if rr and all(k in rr for k in ("tidings", "http", "nats-core")):
        mine, http, nc = rr["tidings"], rr["http"], rr["nats-core"]
        table.add(
            "request/reply p50 vs direct HTTP",
            f"{mine['p50_ms'] / http['p50_ms']:.2f}x",
            "<= 0.5x",
            verdict(mine["p50_ms"] <= 0.5 * http["p50_ms"]),
        )
        table.add(
            "request/reply p50 vs NATS core",
            f"{mine['p50_ms'] / nc['p50_ms']:.2f}x",
            "<= 1.0x",
            verdict(mine["p50_ms"] <= nc["p50_ms"]),
        )
        table.add(
            "request/reply p99 vs NATS core",
            f"{mine['p99_ms'] / nc['p99_ms']:.2f}x",
            "<= 1.0x",
            verdict(mine["p99_ms"] <= nc["p99_ms"]),
        )
    return table


# -- main -----------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, leaves the docs alone")
    parser.add_argument("--full", action="store_true", help="a 10 M-event stored backlog (default 1 M)")
    parser.add_argument("--runs", type=int, default=None, help="throughput runs per case (median; default 3)")
    parser.add_argument("--peers", default=ALL_PEERS, help="a subset makes a partial run (docs left alone)")
    parser.add_argument("--no-more", dest="more", action="store_false", help="skip Tidings-only workloads")
    parser.add_argument("--no-state", dest="state", action="store_false", help="skip the stored backlog")
    parser.add_argument("--no-reqrep", dest="reqrep", action="store_false", help="skip request/reply")
    parser.add_argument(
        "--no-docs", dest="docs", action="store_false", help="leave docs/performance.md and the plots alone"
    )
    args = parser.parse_args()
    args.docs = args.docs and set(args.peers.split(",")) == set(ALL_PEERS.split(","))
    args.sizes = [100, 1024]
    args.count = 1_000 if args.quick else 20_000
    args.warmup = 1_000 if args.quick else 5_000
    args.runs = args.runs or (1 if args.quick else 3)
    args.rate = 500 if args.quick else 5_000
    args.seconds = 0.5 if args.quick else 2.0
    args.latency_runs = 1 if args.quick else 3
    args.more_rates = [200, 1_000] if args.quick else [1_000, 10_000, 50_000]
    args.more_seconds = 0.5 if args.quick else 2.0
    args.state_events = 20_000 if args.quick else (10_000_000 if args.full else 1_000_000)
    args.reqrep_count = 200 if args.quick else 2_000
    return args


def run_all(args: argparse.Namespace, console: Any) -> dict[str, Any]:
    factories: dict[str, Callable[[], Peer]] = {
        "tidings": TidingsPeer,
        "tidings-many": lambda: TidingsPeer(batch_api=True),
        "nats": lambda: NatsPeer(sync_always=False),
        "nats-always": lambda: NatsPeer(sync_always=True),
        "redis": lambda: RedisPeer("everysec"),
        "redis-always": lambda: RedisPeer("always"),
        "rabbitmq": RabbitPeer,
    }
    payload: dict[str, Any] = {
        "benchmark": "e2e",
        "date": report.now_iso(),
        "command": report.command_line(),
        "quick": args.quick,
        "full": args.full,
        "sizes": args.sizes,
        "count": args.count,
        "warmup_events": args.warmup,
        "runs": args.runs,
        "latency_rate": args.rate,
        "latency_seconds": args.seconds,
        "latency_runs": args.latency_runs,
        "event_loop": f"uvloop {uvloop.__version__}",
    }
    work_dir = ROOT / ".tidings" / "bench"
    work_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="e2e-", dir=work_dir) as tmp:
        payload["machine"] = report.machine_info(tmp)  # its load average is the one at the start
        console.print("[bold]machine ceilings[/bold] ...")
        payload["ceilings"] = ceilings.measure(Path(tmp))
        results = []
        for name in args.peers.split(","):
            console.print(f"[bold]{name}[/bold] ...")
            results.append(uvloop.run(run_peer(factories[name](), Path(tmp) / name, args)))
        payload["peers"] = results
        if args.reqrep:
            console.print("[bold]request/reply[/bold] ...")
            try:
                payload["reqrep"] = uvloop.run(reqrep.measure(Path(tmp) / "reqrep", args.reqrep_count))
            except Exception as exc:
                traceback.print_exc()
                payload["reqrep"] = {"failed": f"{type(exc).__name__}: {exc}"}
        if args.state:
            console.print(f"[bold]stored backlog of {args.state_events:,} events[/bold] ...")
            try:
                payload["state"] = uvloop.run(state.measure(Path(tmp) / "state", args.state_events))
            except Exception as exc:
                traceback.print_exc()
                payload["state"] = {"failed": f"{type(exc).__name__}: {exc}"}
    payload["machine"]["load_average_at_end"] = report.load_average()
    return payload


def all_tables(payload: dict[str, Any], args: argparse.Namespace) -> list[report.Table]:
    tables = [targets_table(payload)]
    tables += system_tables(payload["peers"], args.sizes, args.rate)
    tables += more_tables(payload["peers"], args.sizes)
    if "tidings" in payload.get("reqrep", {}):
        tables.append(reqrep_table(payload["reqrep"]))
    if "restart_s" in payload.get("state", {}):
        tables.append(state_table(payload["state"]))
    tables.append(ceilings_table(payload["ceilings"], args.sizes))
    return tables


def main() -> int:
    args = parse_args()
    console = report.console()
    started = time.perf_counter()
    payload = run_all(args, console)
    payload["duration_s"] = time.perf_counter() - started
    tables = all_tables(payload, args)
    for table in tables:
        table.print(console)
    name = "e2e-quick" if args.quick else "e2e" if args.docs else "e2e-partial"
    paths = report.write_json(payload, name)
    console.print(f"JSON: {paths[0]} ({payload['duration_s']:.0f} s)")
    if args.quick or not args.docs:
        return 0
    images = plots.write(payload, PLOTS)
    body = "\n\n".join(
        [
            f"Run {payload['date']} (`{payload['command']}`, {payload['duration_s']:.0f} s) on "
            f"{report.machine_line(payload['machine'])}. Clients on {payload['event_loop']}. "
            f"Throughput: median of {args.runs} runs of about {RUN_SECONDS:g} s of publishing each "
            f"(events per run sized by a warm-up run of {args.warmup:,}; the JSON has every run); "
            f"latency: median of {args.latency_runs} runs of {args.seconds:g} s at each rate. "
            f"JSON: `{paths[0].relative_to(ROOT)}`.",
            *(table.markdown() for table in tables),
            "Settings:\n\n" + "\n".join(f"* **{r['name']}**: {r['settings']}" for r in payload["peers"]),
            "\n\n".join(f"![{title}](performance/{path.name})" for title, path in images),
        ]
    )
    report.update_doc(DOC, "e2e", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
