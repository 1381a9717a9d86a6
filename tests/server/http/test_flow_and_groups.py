"""The flow map, topics and groups over HTTP, driven by real clients of two services."""

from __future__ import annotations

import asyncio

import tidings
from tests.server.http.conftest import Api


async def receive(subscription, count: int, timeout: float = 5.0) -> list:
    messages = []
    async with asyncio.timeout(timeout):
        async for message in subscription:
            messages.append(message)
            if len(messages) == count:
                break
    return messages


async def test_flow_map_shows_services_topic_and_edges_with_rates(api: Api):
    assert api.server is not None
    url = api.server.url
    async with (
        tidings.connect(url, service="checkout") as producer,
        tidings.connect(url, service="shipping") as consumer,
    ):
        subscription = await consumer.subscribe("orders", "shipping", start="earliest")
        await producer.publish_many("orders", [{"n": i} for i in range(20)], key="customer-1")
        for message in await receive(subscription, 20):
            await message.ack()
        await consumer.flush()

        flow = await api.until(
            "/api/flow", lambda f: any(e["kind"] == "consume" and e["rate"] > 0 for e in f["edges"])
        )
        services = {s["name"]: s for s in flow["services"]}
        assert {"checkout", "shipping"} <= set(services)
        assert services["checkout"]["publishes"] == ["orders"]
        assert services["shipping"]["subscribes"] == ["orders:shipping"]
        assert len(services["checkout"]["instances"]) == 1
        assert "orders" in {t["name"] for t in flow["topics"]}
        publish = [e for e in flow["edges"] if e["kind"] == "publish"]
        consume = [e for e in flow["edges"] if e["kind"] == "consume"]
        assert [(e["source"], e["target"]) for e in publish] == [("service:checkout", "topic:orders")]
        assert publish[0]["rate"] > 0 and publish[0]["byte_rate"] > 0
        assert [(e["source"], e["target"], e["group"]) for e in consume] == [
            ("topic:orders", "service:shipping", "shipping")
        ]
        assert consume[0]["rate"] > 0
        await api.until(
            "/api/flow", lambda f: [e["lag"] for e in f["edges"] if e["kind"] == "consume"] == [0]
        )

        topic = await api.get("/api/topics/orders")
        assert topic["partitions"] == 2 and topic["messages"] == 20
        assert topic["published_total"] == 20 and topic["publish_rate"] > 0
        assert sum(p["end_offset"] for p in topic["partition_list"]) == 20
        assert topic["size_bytes"] > 0 and topic["retention"]["fsync"] == "always"
        listing = await api.get("/api/topics")
        assert [t["name"] for t in listing["topics"]] == ["orders"]


async def test_group_lag_drops_to_zero_after_acks_and_delay_is_measured(api: Api):
    assert api.server is not None
    url = api.server.url
    async with (
        tidings.connect(url, service="checkout") as producer,
        tidings.connect(url, service="billing") as consumer,
    ):
        await producer.publish_many("payments", [{"n": i} for i in range(10)], key="k")
        subscription = await consumer.subscribe("payments", "billing", start="earliest", prefetch=100)
        messages = await receive(subscription, 10)

        held = await api.get("/api/groups/billing")
        assert held["mode"] == "partitioned" and held["members"] == 1
        assert held["member_list"][0]["service"] == "billing"
        busy = [p for p in held["partitions"] if p["end_offset"]]
        assert sum(p["lag"] for p in busy) == 10 and sum(p["in_flight"] for p in busy) == 10
        assert all(p["committed"] == 0 and p["oldest_unacked_age_ms"] is not None for p in busy)
        assert held["processing_delay"] is None

        for message in messages:
            await message.ack()
        await consumer.flush()
        group = await api.until("/api/groups/billing", lambda g: g["lag"] == 0)
        assert sum(p["committed"] for p in group["partitions"]) == 10
        assert all(p["oldest_unacked_age_ms"] is None for p in group["partitions"])
        delay = group["processing_delay"]
        assert delay["count"] == 10 and 0 <= delay["p50_ms"] <= delay["p99_ms"] <= delay["max_ms"] + 1
        assert group["counters"]["acked"] == 10 and group["counters"]["delivered"] == 10

        groups = await api.get("/api/groups")
        assert [(g["group"], g["lag"]) for g in groups["groups"]] == [("billing", 0)]


async def test_unknown_topic_group_and_path_are_json_404s(api: Api):
    for path, error in [
        ("/api/topics/nope", "unknown_topic"),
        ("/api/groups/nope", "unknown_group"),
        ("/api/nothing-here", "not_found"),
    ]:
        body = await api.get(path, expect=404)
        assert body["error"] == error and isinstance(body["detail"], str)
    assert (await api.get("/api/topics/bad..name", expect=400))["error"] == "invalid_topic_name"


async def test_flow_map_survives_a_restart_and_ages_out(api: Api):
    assert api.server is not None
    async with tidings.connect(api.server.url, service="inventory") as client:
        await client.publish("stock", {"sku": "a"})
    await api.stop()

    await api.start()
    flow = await api.get("/api/flow")
    services = {s["name"]: s for s in flow["services"]}
    assert services["inventory"]["publishes"] == ["stock"]
    assert services["inventory"]["instances"] == []
    assert [e["source"] for e in flow["edges"]] == ["service:inventory"]
    await api.stop()

    await asyncio.sleep(0.01)
    await api.start(topology_ttl_ms=1)
    flow = await api.get("/api/flow")
    assert flow["services"] == [] and flow["edges"] == []
