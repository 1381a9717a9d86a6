"""The reliability scenarios as the runner sees them: how to run each, judge it, and say it in one line.

The scenarios themselves live in ``tests/reliability`` (the pytest modules
run them at the CI size); this table only adds what a report needs. A
verdict here is the same condition the test asserts, so the docs and the
test suite cannot disagree about what passing means.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.reliability import (
    clock_jumps,
    disk_full_broker,
    eio_broker,
    exhaustion,
    fuzz,
    group_faults,
    kill9,
    late_ack,
    nats_failover,
    soak,
    storage_faults,
)

Figures = dict[str, Any]


@dataclass(frozen=True)
class Case:
    name: str  # the key in tests/reliability/sizes.py and --only
    issue_item: str
    title: str
    run: Callable[[int, Path], Any]  # returns figures, or a coroutine of them
    verdict: Callable[[Figures], bool]
    summary: Callable[[Figures], str]
    test: str  # the pytest node that runs it at the CI size

    def execute(self, size: int, workdir: Path) -> Figures:
        result = self.run(size, workdir)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        assert isinstance(result, dict)
        return result


def _zero(*values: Any) -> bool:
    return all(value == 0 for value in values)


def _kill9(f: Figures) -> str:
    r = f["recovery"]
    return (
        f"{f['kills']} kills, {f['acked']} acked: lost {f['lost']}, reordered {f['reordered']}, "
        f"duplicates {f['duplicates']}; restart to ready p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms"
    )


def _groups(f: Figures) -> str:
    return (
        f"{f['member_kills']} member kills, {f['broker_kills']} broker kills, {f['events']} events, "
        f"{f['poison_events']} poison: never delivered {f['never_delivered']}, poison not dead-lettered "
        f"{f['poison_missing_from_dlq']}, committed backwards (live) {f['committed_backwards_live']}; "
        f"after kill -9 the committed offset fell back {f['committed_fallbacks_after_kill9']} times "
        f"(at most {f['max_fallback_offsets']} offsets, redelivered)"
    )


def _power(f: Figures) -> str:
    interval = next(v for k, v in f.items() if k.startswith("interval:"))
    name = next(k for k in f if k.startswith("interval:"))
    return (
        f"{f['rounds']} cuts. always: {f['always']['acked']} acked, {f['always']['lost']} lost. "
        f"{name}: {interval['lost']} of {interval['acked']} acked lost, all within "
        f"{interval['worst_loss_window_ms']} ms of the cut "
        f"(documented: {interval['documented_window_ms']} ms)"
    )


def _power_ok(f: Figures) -> bool:
    interval = next(v for k, v in f.items() if k.startswith("interval:"))
    return f["always"]["lost"] == 0 and interval["worst_loss_window_ms"] <= interval["documented_window_ms"]


def _corruption(f: Figures) -> str:
    a, b, s = f["tail_checkpointed"], f["tail_synced_after_checkpoint"], f["sealed_random_flips"]
    return (
        f"tail, checkpointed: {a['flipped_bytes']} bytes flipped, {a['flips']['reported']} reported; "
        f"tail synced after the last checkpoint (the durable mark): {b['flipped_bytes']} flipped, "
        f"{b['flips']['reported']} reported, {b['flips']['tail_cut']} cut as a torn write "
        f"(with the mark lost before writeback, see Known limits: {b['mark_lost']['tail_cut']} cut); "
        f"unacknowledged tail: {b['torn_cuts']} torn writes, {b['torn']['tail_cut']} cut; "
        f"{s['flips']} random flips in {s['segments']} sealed segments: {s['outcome']['reported']} reported, "
        f"crashes {s['outcome']['crashes']}, bad batches served {s['outcome']['bad_batches_served']}, "
        f"silent deletions {s['outcome']['silent_deletions']}"
    )


def _corruption_ok(f: Figures) -> bool:
    tail = [f["tail_checkpointed"], f["tail_synced_after_checkpoint"]]
    cases = [c["flips"] for c in tail] + [f["sealed_random_flips"]["outcome"]]
    # An acknowledged tail batch is never cut: every flip of it is reported.
    reported = all(c["flips"]["reported"] == c["flipped_bytes"] and not c["flips"]["tail_cut"] for c in tail)
    torn = (
        f["tail_synced_after_checkpoint"]["torn"]["tail_cut"]
        == f["tail_synced_after_checkpoint"]["torn_cuts"]
    )
    return (
        reported
        and torn
        and all(_zero(c["crashes"], c["bad_batches_served"], c["silent_deletions"]) for c in cases)
    )


def _fuzz_ok(f: Figures) -> bool:
    return all(r.get("crashes", 0) == 0 for part in f.values() for r in part.values() if isinstance(r, dict))


def _fuzz(f: Figures) -> str:
    parts = [
        f"{kind} {name}: {r['inputs']:,} inputs, {r['crashes']} crashes"
        for kind, part in f.items()
        for name, r in part.items()
        if isinstance(r, dict)
    ]
    if "skipped" in f["atheris"]:
        parts.append(f"atheris: {f['atheris']['skipped']}")
    return "; ".join(parts)


def _disk_full_broker(f: Figures) -> str:
    if "skipped" in f:
        return f"skipped: {f['skipped']}"
    r = f["refusal_latency"]
    return (
        f"{f['tmpfs_mib']} MiB tmpfs: {f['acked_before_full']} x 64 KiB acked, then {f['refusals']} "
        f"refusals ({', '.join(f['refusal_codes'])}, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms): acks after "
        f"full {f['acks_after_full']}, acked but unreadable {f['acked_not_readable']}; grown in place, "
        f"{f['resumed_without_restart']}/10 publishes acked, broker restarts {f['broker_restarts']}"
    )


STORAGE = "tests/reliability/test_storage_faults.py::"


def _failover(f: Figures) -> str:
    return (
        f"shop on 3 JetStream nodes (R3, sync always): {f['kills']} SIGKILLs of the stream leader "
        f"({', '.join(f['nodes_killed'])}), each restarted; {f['approved_orders']} orders: lost {f['lost']}, "
        f"applied twice {f['applied_twice']}; longest pause seen by the services: publishing "
        f"{f['max_publish_pause_s']} s, handling {f['max_handle_pause_s']} s"
    )


CASES: list[Case] = [
    Case(
        "late_ack",
        "4",
        "Late acks after a redelivery",
        late_ack.run,
        lambda f: f["late_acks_accepted"] == 0 and f["untagged_acks_settle"],
        lambda f: f"{f['late_acks_sent']} late acks sent over sockets: {f['late_acks_accepted']} accepted",
        "tests/reliability/test_late_ack.py",
    ),
    Case(
        "group_faults",
        "4",
        "Consumer groups under member and broker kills",
        group_faults.run,
        lambda f: _zero(f["never_delivered"], f["poison_missing_from_dlq"], f["committed_backwards_live"]),
        _groups,
        "tests/reliability/test_group_faults.py",
    ),
    Case(
        "kill9",
        "1",
        "kill -9 during acked publishing (fsync=always)",
        kill9.run,
        lambda f: _zero(f["lost"], f["reordered"], f["duplicates"], f["acked_at_other_offset"]),
        _kill9,
        "tests/reliability/test_kill9.py",
    ),
    Case(
        "power_loss",
        "2",
        "Power loss (unsynced writes dropped)",
        storage_faults.power_loss,
        _power_ok,
        _power,
        STORAGE + "test_a_power_cut_loses_no_acked_batch_under_always_and_stays_in_the_window_under_interval",
    ),
    Case(
        "corruption_flips",
        "3",
        "Torn writes and bit flips",
        storage_faults.corruption,
        _corruption_ok,
        _corruption,
        STORAGE + "test_flips_and_tears_never_crash_serve_bad_batches_or_delete_silently",
    ),
    Case(
        "disk_full",
        "5",
        "Disk full (fault layer)",
        storage_faults.disk_full,
        lambda f: (
            _zero(f["acks_after_enospc"], f["reads_failed"]) and f["resumed_without_restart"] == f["rounds"]
        ),
        lambda f: (
            f"{f['rounds']} rounds, {f['refused_appends']} appends refused: acks after ENOSPC "
            f"{f['acks_after_enospc']}, reads failed {f['reads_failed']}, resumed without restart "
            f"{f['resumed_without_restart']}/{f['rounds']}"
        ),
        STORAGE + "test_a_full_disk_refuses_fast_keeps_reads_and_resumes_without_restart",
    ),
    Case(
        "disk_full_broker",
        "5",
        "Disk full (the broker on a tiny tmpfs)",
        disk_full_broker.run,
        lambda f: (
            "skipped" in f
            or (
                _zero(f["acks_after_full"], f["acked_not_readable"], f["broker_restarts"])
                and f["broker_alive_when_full"]
                and f["resumed_without_restart"] > 0
            )
        ),
        _disk_full_broker,
        "tests/reliability/test_disk_full_broker.py",
    ),
    Case(
        "eio",
        "6",
        "EIO on write or fsync",
        storage_faults.eio,
        lambda f: (
            _zero(f["acks_after_eio"], f["fsync_retries_after_failure"])
            and f["partitions_stopped"] == f["rounds"]
        ),
        lambda f: (
            f"{f['rounds']} failures: acks after EIO {f['acks_after_eio']}, partitions stopped "
            f"{f['partitions_stopped']}/{f['rounds']}, fsync retried after the failure "
            f"{f['fsync_retries_after_failure']}"
        ),
        STORAGE + "test_eio_stops_the_partition_with_no_ack_and_no_fsync_retry",
    ),
    Case(
        "eio_broker",
        "6",
        "EIO through the whole broker (sockets)",
        eio_broker.run,
        lambda f: _zero(f["acks_after_failure"], f["acked_unreadable"], f["fsyncs_after_failure"]),
        lambda f: (
            f"{f['rounds']} failures (fsync or write): acks after the failure {f['acks_after_failure']}, "
            f"refused with {', '.join(f['refusal_codes'])}, fsyncs after the failure "
            f"{f['fsyncs_after_failure']}, acked but unreadable {f['acked_unreadable']}"
        ),
        "tests/reliability/test_eio_broker.py",
    ),
    Case(
        "clock_jumps",
        "10",
        "Wall-clock jumps",
        clock_jumps.run,
        lambda f: _zero(f["retention"]["premature_deletions"], f["ack_deadlines"]["premature_redeliveries"]),
        lambda f: (
            f"{f['rounds']} jumps each: premature deletions {f['retention']['premature_deletions']} "
            f"(without the monotonic bound: "
            f"{f['retention_without_monotonic_bound']['premature_deletions']}), "
            f"premature redeliveries {f['ack_deadlines']['premature_redeliveries']} of "
            f"{f['ack_deadlines']['leased']} leased (timers on the wall clock: "
            f"{f['ack_deadlines_on_the_wall_clock']['premature_redeliveries']}); interval:50 fsync after a "
            f"backward jump: {f['interval_fsync']['synced_within_the_interval']}/"
            f"{f['interval_fsync']['backward_jumps']} synced in time (on the wall clock: "
            f"{f['interval_fsync_on_the_wall_clock']['synced_within_the_interval']})"
        ),
        "tests/reliability/test_clock_jumps.py",
    ),
    Case(
        "fuzz_codec",
        "7",
        "Fuzzing the parsers in-process (mutational and atheris)",
        lambda size, _: {"mutational": fuzz.in_process(size), "atheris": fuzz.atheris_run(size)},
        _fuzz_ok,
        _fuzz,
        "tests/reliability/test_fuzz.py",
    ),
    Case(
        "fuzz_socket",
        "7",
        "Mutated frames over real sockets",
        fuzz.over_sockets,
        lambda f: f["hangs"] == 0 and not f["broker_crashed"] and f["rss_growth_mib"] < 50,
        lambda f: (
            f"{f['frames']:,} frames: hangs {f['hangs']}, broker crashed {f['broker_crashed']}, "
            f"RSS {f['rss_start_mib']} -> {f['rss_end_mib']} MiB (+{f['rss_growth_mib']} MiB)"
        ),
        "tests/reliability/test_fuzz.py::test_a_broker_fed_mutated_frames_over_sockets_never_hangs_nor_crashes",
    ),
    Case(
        "exhaustion",
        "8",
        "Resource exhaustion next to a canary publisher",
        exhaustion.run,
        lambda f: f["broker_alive"] and f["p99_ratio"] <= 2 and f["broker_peak_rss_mib"] < 512,
        lambda f: (
            f"{f['abuse'].get('slowloris', 0)} slowloris, "
            f"{f['abuse'].get('flood', 0)} flood connection attempts, "
            f"{f['abuse'].get('oversized', 0)} oversized headers, "
            + (
                f"a never-reading consumer subscribed to a backlog of {f['backlog_events']:,} x 16 KiB "
                "(written before the baseline)"
                if "backlog_events" in f
                else f"a never-reading consumer fed {f['abuse'].get('firehose_events', 0):,} x 16 KiB"
            )
            + f": canary p99 {f['baseline_p99_ms']} -> "
            f"{f['under_abuse_p99_ms']} ms ({f['p99_ratio']}x; p50 {f['baseline_p50_ms']} -> "
            f"{f['under_abuse_p50_ms']} ms), broker peak RSS {f['broker_peak_rss_mib']} MiB"
            + (f" (at rest {f['broker_rest_rss_mib']} MiB)" if "broker_rest_rss_mib" in f else "")
        ),
        "tests/reliability/test_exhaustion.py",
    ),
    Case(
        "soak",
        "11",
        "Soak: the shop with random broker and service kills (minutes)",
        soak.run,
        lambda f: (
            f["failed"] == f["failed_runs_with_broker_kill"]
            and f["rss_growth_pct"] < 10
            and f["fds_last"] <= f["fds_first"] + 2
        ),
        lambda f: (
            f"{f['minutes']} min, {f['runs']} shop runs of {f['orders_per_run']} orders, "
            f"{f['broker_kills']} broker kills, {f['shop_kills']} service kills: "
            f"{f['passed']} checks passed, {f['failed']} failed "
            f"({f['failed_runs_with_broker_kill']} of them runs whose broker was killed); broker RSS "
            f"{f['rss_first_mib']} -> {f['rss_last_mib']} MiB ({f['rss_growth_pct']:+}%), "
            f"fds {f['fds_first']} -> {f['fds_last']}"
        ),
        "(full run only)",
    ),
    Case(
        "nats_failover",
        "HA",
        "NATS cluster: the stream leader SIGKILLed under the shop's traffic (issue 5)",
        nats_failover.run,
        lambda f: (
            _zero(f["lost"], f["applied_twice"])
            and f["max_publish_pause_s"] < 20
            and f["max_handle_pause_s"] < 20
        ),
        _failover,
        "tests/reliability/test_nats_failover.py",
    ),
]
