"""The topology registry, pure: who publishes and subscribes, rates, announced types, age-out, persistence."""

from __future__ import annotations

import pytest

from tidings.core.topology import EventType, Handles, TopologyRegistry, TopologyStore


class Clock:
    def __init__(self, now: int = 1_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def test_records_publishers_subscribers_instances_and_rates():
    clock = Clock()
    registry = TopologyRegistry(clock=clock)
    registry.connected("s1", "checkout", "checkout-1")
    registry.connected("s2", "shipping", "shipping-1")
    registry.connected("s3", "shipping", "shipping-2")
    registry.published("checkout", "orders", records=30, size=3000)
    registry.subscribed("shipping", "orders", "shipping")
    clock.now += 500
    registry.delivered("shipping", "orders", "shipping", count=10, size=900)

    checkout, shipping = registry.services["checkout"], registry.services["shipping"]
    assert set(checkout.publishes) == {"orders"}
    assert checkout.publishes["orders"].rate.rate(clock.now) == pytest.approx(3.0)  # 30 in a 10 s window
    assert set(shipping.subscribes) == {("orders", "shipping")}
    assert shipping.subscribes["orders", "shipping"].rate.total == 10
    assert sorted(i.client_id for i in shipping.instances.values()) == ["shipping-1", "shipping-2"]
    assert registry.topics["orders"].records.total == 30 and registry.topics["orders"].bytes.total == 3000
    assert registry.service_of("s2") == "shipping"

    registry.disconnected("s2")
    assert [i.client_id for i in shipping.instances.values()] == ["shipping-2"]
    assert registry.service_of("s2") is None
    registry.disconnected("s2")  # idempotent


def test_announced_types_replace_the_previous_announcement():
    registry = TopologyRegistry(clock=Clock())
    schema = '{"type": "object"}'
    registry.announced(
        "checkout",
        [EventType("orders", "OrderPlaced", 2, schema), EventType("orders", "OrderCancelled")],
        [Handles("payments", "checkout", "PaymentDone")],
    )
    service = registry.services["checkout"]
    assert service.event_types["orders", "OrderPlaced"] == EventType("orders", "OrderPlaced", 2, schema)
    assert set(service.publishes) == {"orders"} and set(service.subscribes) == {("payments", "checkout")}
    registry.announced("checkout", [EventType("orders", "OrderPlaced", 3)], [])
    assert list(service.event_types) == [("orders", "OrderPlaced")]
    assert service.event_types["orders", "OrderPlaced"].version == 3 and service.handles == {}


def test_silent_services_and_edges_age_out_connected_ones_stay():
    clock = Clock()
    registry = TopologyRegistry(clock=clock, ttl_ms=1000)
    registry.connected("s1", "live", "live-1")
    registry.published("live", "old-topic", 1, 10)
    registry.published("gone", "orders", 1, 10)
    clock.now += 600
    registry.published("live", "new-topic", 1, 10)
    clock.now += 600
    assert registry.expire() == ["gone"]
    assert set(registry.services) == {"live"}
    assert set(registry.services["live"].publishes) == {"new-topic"}  # the silent edge went
    clock.now += 5000
    assert registry.expire() == [] and "live" in registry.services  # connected: never silent


def test_persisted_form_round_trips_without_live_state(tmp_path):
    clock = Clock()
    registry = TopologyRegistry(clock=clock)
    registry.connected("s1", "checkout", "c-1")
    registry.published("checkout", "orders", 5, 500)
    registry.subscribed("billing", "orders", "billing")
    registry.announced("checkout", [EventType("orders", "OrderPlaced", 1, "{}")], [])
    assert registry.dirty
    store = TopologyStore(str(tmp_path / "topology.json"))
    store.save(registry.encode())
    assert not registry.dirty

    restored = TopologyRegistry(clock=clock)
    store.load_into(restored)
    checkout = restored.services["checkout"]
    assert set(checkout.publishes) == {"orders"} and checkout.instances == {}
    assert checkout.publishes["orders"].rate.total == 0  # rates are live, not persisted
    assert checkout.event_types["orders", "OrderPlaced"].schema_json == "{}"
    assert set(restored.services["billing"].subscribes) == {("orders", "billing")}
    assert restored.services["checkout"].last_seen == clock.now


def test_a_damaged_or_missing_file_starts_an_empty_map(tmp_path, caplog):
    path = tmp_path / "topology.json"
    registry = TopologyRegistry(clock=Clock())
    TopologyStore(str(path)).load_into(registry)
    assert registry.services == {}
    path.write_bytes(b"{half a file")
    TopologyStore(str(path)).load_into(registry)
    assert registry.services == {} and "damaged" in caplog.text


def test_deleted_topic_leaves_the_map():
    registry = TopologyRegistry(clock=Clock())
    registry.published("a", "orders", 1, 1)
    registry.delivered("b", "orders", "b", 1, 1)
    registry.topic_deleted("orders")
    assert registry.services["a"].publishes == {} and registry.services["b"].subscribes == {}
    assert "orders" not in registry.topics
