"""Oversized headers, slowloris, a connection flood and a consumer that never reads (scenario 8)."""

from __future__ import annotations

from tests.reliability import exhaustion
from tests.reliability.sizes import CI


async def test_abusers_do_not_starve_a_canary_nor_bloat_the_broker(tmp_path):
    figures = await exhaustion.run(CI["exhaustion"], tmp_path, samples=200)
    assert figures["broker_alive"], figures
    assert figures["broker_peak_rss_mib"] < 512, figures
    # 2x is the target of the full run (its figure is in docs/reliability.md). A CI machine shared
    # with other jobs gets slack: a millisecond baseline doubles from scheduling noise alone.
    assert figures["under_abuse_p99_ms"] <= max(4 * figures["baseline_p99_ms"], 25.0), figures
