"""Wall-clock jumps: no premature retention deletion, no mass redelivery (scenario 10)."""

from __future__ import annotations

from tests.reliability import clock_jumps
from tests.reliability.sizes import CI
from tidings.core.groups import GroupEngine, MemoryPartitionSource
from tidings.storage.log import monotonic_ms, wall_clock_ms


def test_clock_jumps_delete_nothing_early_and_redeliver_nothing_early(tmp_path):
    figures = clock_jumps.run(CI["clock_jumps"], tmp_path)
    retention, deadlines = figures["retention"], figures["ack_deadlines"]
    assert retention["premature_deletions"] == 0, figures
    assert retention["rounds_retention_fired"] == figures["rounds"], figures  # retention still works
    assert deadlines["premature_redeliveries"] == 0, figures
    assert deadlines["expired_after_real_deadline"] == deadlines["leased"], figures  # deadlines too
    interval = figures["interval_fsync"]
    assert interval["synced_within_the_interval"] == interval["backward_jumps"], figures
    # The baselines show what the fixes are for: the same jumps on the wall clock alone.
    assert figures["retention_without_monotonic_bound"]["premature_deletions"] > 0
    assert figures["ack_deadlines_on_the_wall_clock"]["premature_redeliveries"] > 0
    assert figures["interval_fsync_on_the_wall_clock"]["synced_within_the_interval"] == 0


def test_a_broker_built_on_the_wall_clock_times_its_leases_on_the_monotonic_clock():
    """Regression: the engine used the broker's wall clock for ack deadlines."""
    engine = GroupEngine(MemoryPartitionSource(), {}, clock=wall_clock_ms)
    assert engine._timer_clock is monotonic_ms
