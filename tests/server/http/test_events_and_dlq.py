"""Browsing and publishing events over HTTP, and dead letters: list, inspect, redrive."""

from __future__ import annotations

import asyncio

import tidings
from tests.server.http.conftest import Api
from tests.server.http.test_flow_and_groups import receive


async def test_browse_by_offset_time_and_key(api: Api):
    assert api.server is not None
    async with tidings.connect(api.server.url, service="checkout") as client:
        first = await client.publish_many("orders", [{"n": i} for i in range(5)], key="alice")
        await asyncio.sleep(0.005)
        later = await client.publish_many("orders", [{"n": i} for i in range(5, 8)], key="bob")
    partition = first[0].partition
    alice_end = first[-1].offset + 1

    page = await api.get(f"/api/topics/orders/events?partition={partition}&offset=0&limit=3")
    assert [e["data"] for e in page["events"]] == [{"n": 0}, {"n": 1}, {"n": 2}]
    event = page["events"][0]
    assert event["key"] == "alice" and event["encoding"] == "json" and event["partition"] == partition
    assert page["next_offsets"] == {str(partition): 3} and page["truncated"] is False
    more = await api.get(f"/api/topics/orders/events?partition={partition}&offset=3&limit=2")
    assert [e["offset"] for e in more["events"]] == [3, 4]

    bobs = await api.get("/api/topics/orders/events?key=bob&offset=0")
    assert [e["data"]["n"] for e in bobs["events"]] == [5, 6, 7]
    assert {e["key"] for e in bobs["events"]} == {"bob"}

    stored = {e["data"]["n"]: e for e in (await api.get("/api/topics/orders/events?offset=0"))["events"]}
    since = stored[5]["append_time"]
    after = await api.get(f"/api/topics/orders/events?time={since}")
    assert {e["data"]["n"] for e in after["events"]} == {
        n for n, e in stored.items() if e["append_time"] >= since
    }
    assert {5, 6, 7} <= {e["data"]["n"] for e in after["events"]}
    assert len(later) == 3

    latest = await api.get(f"/api/topics/orders/events?partition={partition}&limit=2")
    end = max(e["offset"] for e in stored.values() if e["partition"] == partition) + 1
    assert end >= alice_end
    assert [e["offset"] for e in latest["events"]] == [end - 2, end - 1]

    for query in ("limit=0", "limit=501", "offset=-1", "offset=x", "partition=9", "offset=1&time=1"):
        status = 404 if query.startswith("partition") else 400
        body = await api.get(f"/api/topics/orders/events?{query}", expect=status)
        assert body["error"] and body["detail"]
    await api.get("/api/topics/missing/events", expect=404)


async def test_post_publishes_durably_and_a_client_consumes_it(api: Api):
    assert api.server is not None
    one = await api.post(
        "/api/topics/signups/events",
        json={"key": "u1", "headers": {"source": "curl"}, "data": {"email": "a@example.com"}},
        headers={"X-Tidings-Service": "web-form"},
    )
    assert one["topic"] == "signups" and len(one["results"]) == 1
    many = await api.post("/api/topics/signups/events", json=[{"data": i} for i in range(3)])
    assert len(many["results"]) == 3

    async with tidings.connect(api.server.url, service="mailer") as client:
        subscription = await client.subscribe("signups", "mailer", start="earliest")
        messages = await receive(subscription, 4)
    first = next(m for m in messages if m.key == b"u1")
    assert first.json() == {"email": "a@example.com"} and first.headers["source"] == b"curl"
    assert sorted(m.json() for m in messages if m.key is None) == [0, 1, 2]

    flow = await api.get("/api/flow")
    assert "web-form" in {s["name"] for s in flow["services"]}

    for body, status in [(b"", 400), (b"{not json", 400), (b"[]", 400), (b'{"key": 1}', 400)]:
        answer = await api.post("/api/topics/signups/events", data=body, expect=status)
        assert answer["error"] == "bad_request"
    assert (await api.post("/api/topics/bad..name/events", json={"data": 1}, expect=400))["error"]
    huge = b'{"data": "' + b"x" * (api.server.config.max_frame_size + 10) + b'"}'
    assert (await api.post("/api/topics/signups/events", data=huge, expect=413))["error"] == "too_large"


async def test_dead_letters_list_inspect_and_redrive(api: Api):
    assert api.server is not None
    url = api.server.url
    async with tidings.connect(url, service="payments") as client:
        await client.publish("charges", {"amount": 5}, key="c1")
        subscription = await client.subscribe("charges", "payments", start="earliest")
        (message,) = await receive(subscription, 1)
        await message.term(reason="card declined")
        await client.flush()

        listing = await api.until(
            "/api/dlq", lambda b: b["dead_letter_topics"] and b["dead_letter_topics"][0]["messages"] == 1
        )
        (dlq_topic,) = listing["dead_letter_topics"]
        assert dlq_topic == {
            "topic": "charges.dlq.payments",
            "source_topic": "charges",
            "group": "payments",
            "messages": 1,
            "end_offset": 1,
        }
        page = await api.get("/api/dlq/charges.dlq.payments")
        (letter,) = page["letters"]
        assert letter["original_topic"] == "charges" and letter["group"] == "payments"
        assert letter["reason"] == "card declined" and letter["deliveries"] == 1
        assert letter["event"]["data"] == {"amount": 5} and letter["event"]["key"] == "c1"
        assert await api.get("/api/dlq/charges.dlq.payments/0") == letter
        await api.get("/api/dlq/charges.dlq.payments/7", expect=404)
        await api.get("/api/dlq/charges", expect=404)
        group = await api.get("/api/groups/payments")
        assert group["dead_letters"] == 1 and group["counters"]["dead_lettered"] == 1

        redriven = await api.post("/api/dlq/charges.dlq.payments/redrive")
        assert redriven["redriven"] == 1 and redriven["next_offset"] == 1
        (again,) = await receive(subscription, 1)
        assert again.json() == {"amount": 5} and again.key == b"c1"
        assert not any(name.startswith("tidings-dlq-") for name in again.headers)
        await again.ack()

        nothing = await api.post("/api/dlq/charges.dlq.payments/redrive", json={"from_offset": 1})
        assert nothing["redriven"] == 0
        chosen = await api.post("/api/dlq/charges.dlq.payments/redrive", json={"offsets": [0]})
        assert chosen["redriven"] == 1
        await api.post("/api/dlq/charges.dlq.payments/redrive", json={"offsets": [3]}, expect=404)
        await api.post("/api/dlq/charges.dlq.payments/redrive", data=b"{oops", expect=400)
