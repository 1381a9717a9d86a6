"""The verdicts and the tables of ``bench/storage.py``: targets judged, rows formatted."""

from __future__ import annotations

import statistics
from typing import Any

import _report as report
from _report import Table, fmt_bytes, fmt_rate, fmt_seconds
from _storage_cases import RSS_GROWTH_LIMIT, Settings

TARGET_RATIO = 0.70
REOPEN_LIMIT_S = 1.0


# -- targets -----------------------------------------------------------------------


def find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(row for row in rows if all(row.get(key) == value for key, value in match.items()))


def targets(results: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    rows = results["append"]
    record_size, records = settings.target_shape
    shape = {"record_size": record_size, "batch_records": records}
    never = find(rows, kind="log", policy="never", threads=1, validate=True, **shape)
    raw = find(rows, kind="raw write", **shape)
    always = find(rows, kind="log", policy="always", threads=1, validate=True, **shape)
    raw_sync = find(rows, kind="raw write+fdatasync", **shape)
    label = f"{records} x {record_size} B"
    big, crash = results["big_log"], results["crash"]
    memory = big["memory"]
    sequential = ratio_target(
        f"append {label}, fsync=never, vs raw sequential write + final fsync",
        never,
        raw,
        "mb_s_incl_final_sync",
    )
    sequential["page_cache"] = ratio_target("page cache only", never, raw, "mb_s")
    return [
        sequential,
        ratio_target(
            f"append {label}, fsync=always, 1 appender, vs raw write+fdatasync loop", always, raw_sync, "mb_s"
        ),
        limit_target(
            f"reopen a {fmt_bytes(big['log_bytes'])} log after a clean close",
            big["clean_reopen"]["seconds"],
            REOPEN_LIMIT_S,
            fmt_seconds,
        ),
        limit_target(
            f"reopen a {fmt_bytes(crash['bytes_on_disk'])} log after kill -9 (fsync={crash['policy']})",
            crash["seconds"],
            REOPEN_LIMIT_S,
            fmt_seconds,
        ),
        limit_target(
            f"memory flat: RSS growth while {fmt_bytes(big['log_bytes'])} is appended and read",
            memory["growth"],
            RSS_GROWTH_LIMIT,
            fmt_bytes,
        ),
    ]


def ratio_target(name: str, log: dict[str, Any], raw: dict[str, Any], key: str) -> dict[str, Any]:
    """Judge on the median of the rounds' ratios: each round of the log case ran right after the
    same round of the raw case, so a slow spell of the disk hits both sides of a ratio alike."""
    value, reference = log[key], raw[key]
    paired = [mine / theirs for mine, theirs in zip(log[f"rounds_{key}"], raw[f"rounds_{key}"], strict=True)]
    ratio = statistics.median(paired)
    return {
        "target": name,
        "value": value,
        "reference": reference,
        "ratio": ratio,
        "ratio_of_totals": value / reference,
        "round_ratios": paired,
        "limit": TARGET_RATIO,
        "passed": ratio >= TARGET_RATIO,
        "shown": f"{fmt_rate(value)} MB/s",
        "wanted": f">= {TARGET_RATIO:.0%} of {fmt_rate(reference)} MB/s",
    }


def limit_target(name: str, value: float, limit: float, fmt: Any) -> dict[str, Any]:
    return {
        "target": name,
        "value": value,
        "limit": limit,
        "ratio": value / limit,
        "passed": value < limit,
        "shown": fmt(value),
        "wanted": f"< {fmt(limit)}",
    }


# -- tables ------------------------------------------------------------------------


def tables(results: dict[str, Any]) -> list[Table]:
    verdicts = Table("Targets", ["target", "measured", "wanted", "ratio", "verdict"])
    for target in results["targets"]:
        verdict = "PASS" if target["passed"] else "FAIL"
        verdicts.add(target["target"], target["shown"], target["wanted"], f"{target['ratio']:.2f}", verdict)
    first, second = results["targets"][0], results["targets"][1]
    cache = first["page_cache"]
    verdicts.note = (
        "ratio: for rates, the median over the rounds of log / raw, each log round run right after its raw "
        f"round (ratios of the totals: {first['ratio_of_totals']:.2f} and {second['ratio_of_totals']:.2f}); "
        "for times and memory, measured / limit. Without the final fsync (page cache only) the first "
        f"target's figures are {fmt_rate(cache['value'])} of {fmt_rate(cache['reference'])} MB/s, "
        f"ratio {cache['ratio']:.2f}."
    )

    append = Table(
        "Append (append + commit per batch)",
        [
            "case",
            "record",
            "batch",
            "appenders",
            "MB/s",
            "rounds MB/s",
            "records/s",
            "batches/s",
            "incl. final fsync MB/s",
            "appends per fdatasync",
        ],
        note="raw rows: os.write of the same batch bytes (+ fdatasync per batch). MB/s = 10^6 bytes/s over "
        "all rounds; rounds: the slowest and fastest round. Under never, the fdatasyncs are the rolls'.",
    )
    for row in results["append"]:
        case = row["kind"] if row["kind"] != "log" else f"log fsync={row['policy']}"
        if row["kind"] == "log" and not row["validate"]:
            case += " (validate_records off)"
        per_sync = row.get("appends_per_fsync")
        append.add(
            case,
            fmt_bytes(row["record_size"]),
            row["batch_records"],
            row["threads"],
            fmt_rate(row["mb_s"]),
            "-".join(fmt_rate(f(row["rounds_mb_s"])) for f in (min, max)),
            fmt_rate(row["records_s"]),
            fmt_rate(row["batches_s"]),
            fmt_rate(row["mb_s_incl_final_sync"]),
            "-" if per_sync is None else fmt_rate(per_sync),
        )

    read = Table(
        "Read (log.read(offset, 1 MiB) from start to end, page cache) and full recovery scan",
        [
            "log",
            "record",
            "batch",
            "read MB/s",
            "records/s",
            "raw pread MB/s",
            "read / raw",
            "full scan MB/s",
            "128 MiB scan",
        ],
        note="full scan: reopen with the recovery checkpoint removed, so every batch is checked. "
        "128 MiB scan: a whole default segment at that rate, the most a crash under fsync=never "
        "leaves to check (an estimate from the measured rate).",
    )
    big = results["big_log"]
    for row in [
        *results["read"],
        {
            **big["read"],
            "record_size": big["record_size"],
            "batch_records": big["batch_records"],
            "big": True,
        },
    ]:
        read.add(
            fmt_bytes(row["bytes"]),
            fmt_bytes(row["record_size"]),
            row["batch_records"],
            fmt_rate(row["mb_s"]),
            fmt_rate(row["records_s"]),
            fmt_rate(row["raw_pread_mb_s"]),
            f"{row['mb_s'] / row['raw_pread_mb_s']:.2f}",
            fmt_rate(row["scan_mb_s"]) if "scan_mb_s" in row else "-",
            fmt_seconds(row["worst_crash_scan_s"]) if "worst_crash_scan_s" in row else "-",
        )

    crash = results["crash"]
    memory = big["memory"]
    recovery = Table(
        f"Recovery and memory ({fmt_bytes(big['log_bytes'])} log of {big['batch_records']} x "
        f"{big['record_size']} B batches)",
        ["measure", "value", "detail"],
    )
    recovery.add(
        "reopen after clean close",
        fmt_seconds(big["clean_reopen"]["seconds"]),
        f"scanned {fmt_bytes(big['clean_reopen']['scanned_bytes'])}",
    )
    recovery.add(
        f"reopen after kill -9 (fsync={crash['policy']})",
        fmt_seconds(crash["seconds"]),
        f"scanned {fmt_bytes(crash['scanned_bytes'])}, torn tail cut: {fmt_bytes(crash['truncated_bytes'])}, "
        f"{fmt_bytes(crash['bytes_on_disk'])} on disk",
    )
    recovery.add("RSS before", fmt_bytes(memory["rss_before"]), "batches built, log not open")
    recovery.add("RSS after append", fmt_bytes(memory["rss_after_append"]), "")
    recovery.add("RSS after read", fmt_bytes(memory["rss_after_read"]), "")
    recovery.add(
        "RSS growth (peak during - before)",
        fmt_bytes(memory["growth"]),
        f"limit {fmt_bytes(memory['limit'])}",
    )

    out = [verdicts, append, read, recovery]
    for entry in results.get("profile", []):
        table = Table(
            f"Profile: {entry['label']} (cProfile, {fmt_seconds(entry['total_s'])} profiled)",
            ["function", "calls", "own time", "share"],
        )
        for item in entry["top"][:6]:
            table.add(
                item["function"], f"{item['calls']:,}", fmt_seconds(item["own_s"]), f"{item['own_share']:.0%}"
            )
        out.append(table)
    return out


def doc_body(results: dict[str, Any], rendered: list[Table]) -> str:
    settings = results["settings"]
    head = [
        f"Run of {results['date']} (`{results['command']}`), JSON: `bench/results/{results['file']}`.",
        "",
        f"Machine: {report.machine_line(results['machine'])}.",
        "",
        f"Each append case runs {settings['rounds']} interleaved round(s), each stopping after "
        f"{settings['duration']:g} s or {fmt_bytes(settings['budget'])}, whichever comes first; "
        f"concurrent appenders: {settings['threads']} threads; "
        f"interval policy: interval:{settings['interval_ms']}.",
    ]
    return "\n".join(head) + "\n\n" + "\n\n".join(table.markdown() for table in rendered)
