"""kill -9 during acked idempotent publishing: nothing acked is lost, reordered or stored twice."""

from __future__ import annotations

from tests.reliability import kill9
from tests.reliability.sizes import CI


async def test_kill_9_loses_reorders_and_duplicates_nothing_acked(tmp_path):
    figures = await kill9.run(CI["kill9"], tmp_path)
    assert figures["acked"] > 0
    assert (figures["lost"], figures["reordered"], figures["duplicates"]) == (0, 0, 0), figures
    assert figures["acked_at_other_offset"] == 0, figures
