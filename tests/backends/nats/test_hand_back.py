"""Handing unsettled messages back (a partition released, a subscription closed): in stream order.

JetStream redelivers NAKed messages in the order the NAKs reached it, not by sequence: a subscription
that NAKed its buffered messages after the late arrivals (newer ones), or in whatever order it held
them, gave the partition's next owner newer messages first.
"""

from __future__ import annotations

import asyncio

from tidings.backends import OutgoingMessage, open_backend
from tidings.backends.nats.subscription import NatsSubscription


async def test_handed_back_messages_come_again_in_stream_order(nats_server) -> None:
    async with open_backend(nats_server.url, service="hb", monitor_url=nats_server.monitor_url) as backend:
        await backend.create_topic("ledger.hand_back", partitions=1)
        await backend.publish_batch("ledger.hand_back", [OutgoingMessage(f"{n}".encode()) for n in range(6)])
        first = await backend.subscribe("ledger.hand_back", group="g", start="earliest", prefetch=6)
        assert isinstance(first, NatsSubscription)
        held = [await asyncio.wait_for(anext(first), 10) for _ in range(6)]
        assert [d.data for d in held] == [f"{n}".encode() for n in range(6)]
        await first._hand_back(held[3:][::-1] + held[:3][::-1])  # held in an order that is not the stream's
        await first.close()
        again = await backend.subscribe("ledger.hand_back", group="g", start="earliest", prefetch=6)
        redelivered = [await asyncio.wait_for(anext(again), 10) for _ in range(6)]
        assert [d.data for d in redelivered] == [f"{n}".encode() for n in range(6)]
        assert all(d.delivery_count >= 2 for d in redelivered)
        await again.close()
