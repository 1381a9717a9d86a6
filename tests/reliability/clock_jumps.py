"""Scenario 10: the wall clock jumps (NTP step, VM resume) while retention and ack deadlines run.

Both the storage engine and the group engine take injected clocks, so the
jumps are exact and instant (no faketime needed): a wall clock that jumps
by up to +-1 day, and a monotonic clock that only moves with real (here:
simulated) time.

* Retention (``max_age_ms`` 60 s): segments are sealed at known monotonic
  times; the wall clock then jumps forward. A deletion of a segment whose
  real (monotonic) age is below the limit is premature. The same run without
  the monotonic bound (``monotonic`` unset, which is what an injected wall
  clock alone gets) is reported as the baseline: what the bug did.
* Ack deadlines (30 s): ``n`` messages are leased, the wall clock jumps
  forward by hours, the engine ticks: every message redelivered before its
  real deadline passed is a premature redelivery. The baseline runs the
  timers on the wall clock, as the engine did before.
* ``interval:MS`` fsync: after a backward jump, data must still be synced
  once MS ms have really passed (on the wall clock alone it waited for the
  clock to catch up).

Figures: premature deletions, premature redeliveries (both must be 0 with
the monotonic clocks), and whether retention and deadlines still fire once
real time has passed.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

from tests.storage.appender import batch_for
from tidings.core.groups import GroupEngine, MemberInfo, MemoryPartitionSource
from tidings.protocol.values import Earliest, GroupMode
from tidings.storage import FsyncPolicy, LogConfig, PartitionLog, RetentionPolicy

EPOCH = 1_700_000_000_000
MAX_AGE_MS = 60_000
DEADLINE_MS = 30_000
DAY_MS = 86_400_000


class Clocks:
    """A wall clock that can jump and a monotonic one that cannot."""

    def __init__(self) -> None:
        self.wall_ms = EPOCH
        self.mono_ms = 10_000

    def wall(self) -> int:
        return self.wall_ms

    def mono(self) -> int:
        return self.mono_ms

    def elapse(self, ms: int) -> None:
        self.wall_ms += ms
        self.mono_ms += ms

    def jump(self, ms: int) -> None:
        self.wall_ms += ms


def _retention_round(directory: Path, rng: random.Random, *, bounded: bool) -> tuple[int, int, bool]:
    """One round; returns (segments sealed, premature deletions, deleted once really old)."""
    clocks = Clocks()
    config = LogConfig(
        fsync=FsyncPolicy.parse("never"),
        retention=RetentionPolicy(max_age_ms=MAX_AGE_MS),
        max_segment_bytes=4096,
    )
    monotonic = clocks.mono if bounded else None
    with PartitionLog(str(directory), config, clock=clocks.wall, monotonic=monotonic) as log:
        sealed_at: dict[int, int] = {}  # segment base -> monotonic ms of its last append
        last_mono = clocks.mono_ms
        for number in range(rng.randrange(20, 60)):
            clocks.elapse(rng.randrange(0, 500))
            before = {info.base_offset for info in log.segments}
            log.append(batch_for(number))
            for info in log.segments[:-1]:
                if info.base_offset in before and info.base_offset not in sealed_at:
                    sealed_at[info.base_offset] = last_mono
            last_mono = clocks.mono_ms
        clocks.jump(rng.choice((1, -1)) * rng.randrange(MAX_AGE_MS, DAY_MS))
        clocks.elapse(rng.randrange(0, MAX_AGE_MS // 2))
        premature = 0
        for info in log.apply_retention():
            if clocks.mono_ms - sealed_at.get(info.base_offset, clocks.mono_ms) <= MAX_AGE_MS:
                premature += 1
        clocks.jump(-clocks.wall_ms + EPOCH + DAY_MS)  # the clock is corrected (forward of everything)
        clocks.elapse(MAX_AGE_MS + 1)  # and real time passes: now everything sealed is really old
        log.apply_retention()
        fired = len(log.segments) == 1
    shutil.rmtree(directory)
    return len(sealed_at), premature, fired


def _deadline_round(rng: random.Random, count: int, *, monotonic: bool) -> tuple[int, int]:
    """One round; returns (premature redeliveries, redeliveries once the real deadline passed)."""
    clocks = Clocks()
    source = MemoryPartitionSource(clock=clocks.wall)
    source.create_topic("t", 1)
    engine = GroupEngine(source, {}, clock=clocks.wall, timer_clock=clocks.mono if monotonic else clocks.wall)
    engine.topic_created("t")
    for _ in range(count):
        source.append("t", 0, [b"x"])
    engine.records_available("t", 0)
    engine.subscribe(
        MemberInfo("s", "c", "svc"), 1, "t", "g", mode=GroupMode.PARTITIONED, start=Earliest(),
        credits=count, ack_deadline_ms=DEADLINE_MS, max_deliveries=None,
    )  # fmt: skip
    leased = sum(len(list(d.offsets())) for d in engine.take_deliveries())
    assert leased == count, leased
    clocks.jump(rng.choice((1, -1)) * rng.randrange(DEADLINE_MS, DAY_MS))
    clocks.elapse(rng.randrange(0, DEADLINE_MS // 2))
    engine.tick()
    premature = engine.group_stats("g").expired  # leases the engine took back
    clocks.elapse(DEADLINE_MS)
    engine.tick()
    later = engine.group_stats("g").expired - premature
    return premature, later


def _interval_round(directory: Path, rng: random.Random, *, monotonic: bool) -> bool:
    """After a backward jump, is ``interval:50`` data still synced once 50 ms have really passed?"""
    clocks = Clocks()
    config = LogConfig(fsync=FsyncPolicy.parse("interval:50"))
    with PartitionLog(
        str(directory), config, clock=clocks.wall, monotonic=clocks.mono if monotonic else None
    ) as log:
        log.append(batch_for(1))
        log.tick()
        clocks.jump(-rng.randrange(1_000, DAY_MS))
        clocks.elapse(51)
        log.tick()
        synced = log.durable_offset == log.end_offset
    shutil.rmtree(directory)
    return synced


def run(rounds: int, workdir: Path, *, seed: int = 10) -> dict[str, Any]:
    rng = random.Random(seed)
    out: dict[str, Any] = {"rounds": rounds}
    for bounded in (True, False):
        sealed = premature = fired = 0
        for index in range(rounds):
            s, p, f = _retention_round(workdir / f"retention-{bounded}-{index}", rng, bounded=bounded)
            sealed, premature, fired = sealed + s, premature + p, fired + f
        key = "retention" if bounded else "retention_without_monotonic_bound"
        out[key] = {"segments": sealed, "premature_deletions": premature, "rounds_retention_fired": fired}
    for monotonic in (True, False):
        premature_redeliveries = late = leased = 0
        for _ in range(rounds):
            count = rng.randrange(1, 50)
            p, redelivered = _deadline_round(rng, count, monotonic=monotonic)
            premature_redeliveries, late, leased = (
                premature_redeliveries + p,
                late + redelivered,
                leased + count,
            )
        synced = sum(
            _interval_round(workdir / f"interval-{monotonic}-{index}", rng, monotonic=monotonic)
            for index in range(rounds)
        )
        interval_key = "interval_fsync" if monotonic else "interval_fsync_on_the_wall_clock"
        out[interval_key] = {"backward_jumps": rounds, "synced_within_the_interval": synced}
        key = "ack_deadlines" if monotonic else "ack_deadlines_on_the_wall_clock"
        out[key] = {
            "leased": leased,
            "premature_redeliveries": premature_redeliveries,
            "expired_after_real_deadline": late,
        }
    return out
