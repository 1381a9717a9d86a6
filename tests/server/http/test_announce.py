"""Announced event types reach the flow map, through the client and through the tidings:// backend."""

from __future__ import annotations

import tidings
from tests.server.http.conftest import Api
from tidings.backends.base import Announcer, HandledEvent, PublishedEvent, open_backend
from tidings.protocol import HandledType, PublishedType

SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


async def test_backend_announce_shows_types_and_schemas_and_survives_a_restart(api: Api):
    assert api.server is not None
    backend = open_backend(api.server.url, service="checkout")
    assert isinstance(backend, Announcer)
    async with backend:
        await backend.announce(
            [PublishedEvent("orders", "OrderPlaced", 2, SCHEMA)],
            [HandledEvent("payments", "checkout", "PaymentCaptured")],
        )
        flow = await api.get("/api/flow")
    (service,) = flow["services"]
    assert service["name"] == "checkout"
    assert service["event_types"] == [
        {"topic": "orders", "type": "OrderPlaced", "version": 2, "schema": SCHEMA}
    ]
    assert service["handles"] == [{"topic": "payments", "group": "checkout", "type": "PaymentCaptured"}]
    assert service["publishes"] == ["orders"] and service["subscribes"] == ["payments:checkout"]

    await api.stop()
    await api.start()
    (service,) = (await api.get("/api/flow"))["services"]
    assert service["event_types"][0]["schema"] == SCHEMA


async def test_client_announce_replaces_the_previous_announcement(api: Api):
    assert api.server is not None
    async with tidings.connect(api.server.url, service="billing") as client:
        first = await client.announce([PublishedType(topic="invoices", type="InvoiceIssued")])
        assert (first.service, first.publishes, first.subscribes) == ("billing", 1, 0)
        await client.announce(subscribes=[HandledType(topic="orders.*", group="billing", type="OrderPlaced")])
        (service,) = (await api.get("/api/flow"))["services"]
    assert service["event_types"] == []
    assert service["handles"] == [{"topic": "orders.*", "group": "billing", "type": "OrderPlaced"}]
