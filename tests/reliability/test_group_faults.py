"""Consumer groups under member and broker kills: nothing undelivered, poison dead-lettered."""

from __future__ import annotations

from tests.reliability import group_faults
from tests.reliability.sizes import CI


async def test_groups_survive_member_and_broker_kills(tmp_path):
    figures = await group_faults.run(CI["group_faults"], tmp_path, seed=7)
    assert figures["never_delivered"] == 0, figures
    assert figures["poison_missing_from_dlq"] == 0, figures
    assert figures["committed_backwards_live"] == 0, figures
