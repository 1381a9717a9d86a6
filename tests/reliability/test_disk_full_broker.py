"""The whole broker on a real, tiny tmpfs that fills up and then grows (scenario 5)."""

from __future__ import annotations

import pytest

from tests.reliability import disk_full_broker
from tests.reliability.sizes import CI


async def test_a_full_disk_refuses_fast_keeps_reads_and_resumes_in_the_same_process(tmp_path):
    figures = await disk_full_broker.run(CI["disk_full_broker"], tmp_path)
    if "skipped" in figures:
        pytest.skip(f"{figures['skipped']}: storage_faults.disk_full covers the log through the fault layer")
    assert figures["refusal_codes"] == ["disk_full"], figures
    assert figures["refusal_latency"]["p99_ms"] < 100, figures  # refused at once, not after a timeout
    assert (figures["acks_after_full"], figures["acked_not_readable"]) == (0, 0), figures
    assert figures["broker_alive_when_full"] and figures["broker_restarts"] == 0, figures
    assert figures["resumed_without_restart"] == 10, figures
