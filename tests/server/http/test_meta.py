"""Health, readiness, Prometheus metrics, the OpenAPI document and the live stream."""

from __future__ import annotations

import asyncio
import json
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

import tidings
from tests.server.http.conftest import Api
from tests.server.http.test_flow_and_groups import receive


async def test_health_and_readiness(api: Api):
    assert api.server is not None
    health = await api.get("/healthz")
    assert health["status"] == "ok" and health["broker_id"] == api.server.core.broker_id
    assert await api.get("/readyz") == {"ready": True, "detail": ""}


async def test_metrics_parse_and_have_the_families(api: Api):
    assert api.server is not None
    async with tidings.connect(api.server.url, service="checkout") as client:
        subscription = await client.subscribe("orders", "shipping", start="earliest")
        await client.publish_many("orders", [{"n": i} for i in range(3)])
        for message in await receive(subscription, 3):
            await message.ack()
        await client.flush()
        await api.until("/api/groups/shipping", lambda g: g["lag"] == 0)
        text = await api.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expected = {
        "tidings_published_messages",
        "tidings_published_bytes",
        "tidings_delivered_messages",
        "tidings_delivered_bytes",
        "tidings_acked_messages",
        "tidings_redeliveries",
        "tidings_dead_letters",
        "tidings_group_lag_messages",
        "tidings_group_processing_delay_seconds",
        "tidings_topic_messages",
        "tidings_topic_size_bytes",
        "tidings_connections",
        "tidings_services",
        "tidings_fsync_duration_seconds",
    }
    assert expected <= set(families)

    def value(name: str, **labels: str) -> float:
        return sum(
            s.value
            for family in families.values()
            for s in family.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    assert value("tidings_published_messages_total", topic="orders") == 3
    assert value("tidings_delivered_messages_total", group="shipping") == 3
    assert value("tidings_acked_messages_total", group="shipping") == 3
    assert value("tidings_group_lag_messages", group="shipping") == 0
    assert value("tidings_fsync_duration_seconds_count") >= 1
    assert value("tidings_connections") == 1  # the client was still connected at the scrape


async def test_openapi_lists_every_route_and_every_documented_route_answers(api: Api):
    assert api.server is not None and api.server.http is not None
    document = await api.get("/openapi.json")
    assert document["openapi"] == "3.1.0" and document["info"]["title"]
    served = {(r.method, r.path) for r in api.server.http.routes()}
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    assert served == documented
    schemas = document["components"]["schemas"]
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert refs <= set(schemas), refs - set(schemas)
    for path, item in document["paths"].items():
        for operation in item.values():
            assert operation["operationId"] and "200" in operation["responses"]
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path

    async with tidings.connect(api.server.url, service="svc") as client:
        await client.publish("t1", {"a": 1})
        subscription = await client.subscribe("t1", "g1", start="earliest")
        (message,) = await receive(subscription, 1)
        await message.term(reason="test")
        await client.flush()
        await api.until("/api/dlq", lambda b: [t["messages"] for t in b["dead_letter_topics"]] == [1])
        values = {"topic": "t1", "group": "g1", "offset": "0"}
        for method, path in sorted(served):
            concrete = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
            if "/api/dlq/" in concrete:
                concrete = concrete.replace("/api/dlq/t1", "/api/dlq/t1.dlq.g1")
            if concrete == "/api/stream":
                continue  # endless: tested on its own
            body = {"data": 1} if method == "POST" and concrete.endswith("/events") else None
            async with api.session.request(method, api.base + concrete, json=body) as response:
                assert response.status == 200, (method, concrete, await response.text())


async def test_stream_sends_snapshots(api: Api):
    assert api.server is not None
    async with tidings.connect(api.server.url, service="checkout") as client:
        await client.publish("orders", {"n": 1})
        async with api.session.get(api.base + "/api/stream?interval=200") as response:
            assert response.status == 200 and response.content_type == "text/event-stream"
            snapshots = []
            async with asyncio.timeout(5):
                while len(snapshots) < 2:
                    line = (await response.content.readline()).decode()
                    if line.startswith("data: "):
                        snapshots.append(json.loads(line[len("data: ") :]))
    first = snapshots[0]
    assert set(first) == {"time", "flow", "topics", "groups"}
    assert "checkout" in {s["name"] for s in first["flow"]["services"]}
    assert [t["name"] for t in first["topics"]] == ["orders"]
    assert snapshots[1]["time"] >= first["time"]


async def test_the_stream_does_not_hold_up_shutdown(api: Api):
    session = aiohttp.ClientSession()
    try:
        response = await session.get(api.base + "/api/stream")
        await response.content.readline()
        async with asyncio.timeout(5):
            await api.stop()
        response.close()
    finally:
        await session.close()


async def test_openapi_document_validates_as_openapi_3_1(api: Api):
    validator = pytest.importorskip("openapi_spec_validator", reason="openapi-spec-validator is a dev extra")
    document = await api.get("/openapi.json")
    validator.validate(document)
