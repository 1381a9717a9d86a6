"""The dashboard in a real browser: headless Chromium against a broker process with the shop's traffic.

One broker subprocess for the module, the shop example's services for a burst of orders, one dead
letter, and a group that fell far behind; then Chromium (Debian's ``/usr/bin/chromium``, driven by
Playwright) loads the pages and we assert what a person would see: the flow map's services and
topics with the laggard in red, a topic's partitions updating live, a group's offsets and charts,
an event's pretty-printed payload, a dead letter redriven with the button. Screenshots go to
``tests/artifacts/`` (``TIDINGS_ARTIFACTS`` moves them). Without Chromium or Playwright the tests
are skipped loudly, and fail under ``CI=true``: CI runs ``apt-get install -y chromium`` and
installs the dev extras.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

import tidings
from examples.shop.run import run_shop
from tests.binaries import missing
from tidings.testing.servers import ServerProcess, start_broker

try:
    from playwright.async_api import async_playwright, expect
except ImportError:  # a dev extra: the fixture skips loudly without it (and fails under CI=true)
    async_playwright = expect = None

CHROMIUM = Path(os.environ.get("TIDINGS_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("TIDINGS_ARTIFACTS", Path(__file__).resolve().parents[2] / "artifacts"))
SERVICES = ("checkout", "payment", "inventory", "shipping", "recommendations")
TOPICS = ("orders.placed", "stock.reserved", "shipments.created", "payments.confirm")
ORDERS = 50
BACKLOG = 1100
"""Clicks nobody acknowledges: above the dashboard's red limit (1000) from the first snapshot."""
TIMEOUT_MS = 10_000


def _request(
    server: ServerProcess, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Any:
    assert server.http_url is not None
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.http_url + path, data=data, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def _dead_letter(url: str) -> None:
    """One letter in ``audit.requests.dlq.auditor``: a message its handler gave up on."""
    async with tidings.connect(url, service="auditor") as client:
        await client.publish("audit.requests", {"order_id": "o-dead", "why": "cannot audit"}, key="o-dead")
        subscription = await client.subscribe("audit.requests", "auditor", start="earliest")
        async with asyncio.timeout(10):
            async for message in subscription:
                await message.term(reason="no auditor for this region")
                break
        await client.flush()


async def _laggard(server: ServerProcess) -> None:
    """``click-counter`` subscribed to ``clicks``, took one message and left: its lag is the backlog."""
    clicks = [{"data": {"n": n}} for n in range(BACKLOG)]
    _request(server, "/api/topics/clicks/events", clicks, {"X-Tidings-Service": "web"})
    async with tidings.connect(server.url, service="click-counter") as client:
        subscription = await client.subscribe("clicks", "click-counter", start="earliest")
        async with asyncio.timeout(10):
            async for _ in subscription:
                break  # never acknowledged


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Chromium and Playwright, checked before a broker is started for nothing."""
    if not CHROMIUM.exists():
        missing("the dashboard's browser test", f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    if async_playwright is None:
        missing("the dashboard's browser test", "the playwright package is not installed (a dev extra)")
    return CHROMIUM


@pytest.fixture(scope="module")
def broker(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("dashboard")
    server = start_broker(directory / "broker", fsync="never")

    async def traffic() -> None:
        quiet = Console(file=io.StringIO())
        assert await run_shop(server.url, directory / "shop", orders=ORDERS, console=quiet)
        await _dead_letter(server.url)
        await _laggard(server)

    try:
        asyncio.run(traffic())
        yield server
    finally:
        server.stop()


@pytest.fixture
async def page(chromium: Path, broker: ServerProcess) -> AsyncIterator[Any]:
    """A Chromium page; the test fails if the page logged an error or threw."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    expect.set_options(timeout=TIMEOUT_MS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = await browser.new_page(viewport={"width": 1600, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield page
            assert errors == [], errors
        finally:
            await browser.close()


def _url(broker: ServerProcess, fragment: str = "") -> str:
    assert broker.http_url is not None
    return f"{broker.http_url}/dashboard/{fragment}"


async def test_the_flow_map_shows_the_shop_and_the_laggard_in_red(broker: ServerProcess, page: Any):
    assert broker.http_url is not None
    await page.goto(broker.http_url + "/")
    assert page.url.endswith("/dashboard/")
    svg = page.locator("#flow-svg")
    for name in (*SERVICES, *TOPICS, "click-counter", "clicks"):
        await expect(svg.locator(f'g.node[data-name="{name}"]')).to_have_count(1)
    assert await svg.locator("path.edge.publish").count() >= 4
    assert await svg.locator("path.edge.consume").count() >= 5
    inventory = svg.locator(
        'g.label[data-key="label:consume:topic:orders.placed>service:inventory:inventory"]'
    )
    await expect(inventory).to_contain_text("lag 0")
    await expect(inventory).not_to_have_class("label red")
    laggard = svg.locator(
        'g.label[data-key="label:consume:topic:clicks>service:click-counter:click-counter"]'
    )
    await expect(laggard).to_contain_text(f"lag {BACKLOG:,}")
    await expect(laggard).to_have_class("label red")
    await expect(svg.locator('g.node[data-name="clicks"]')).to_have_class("node topic red")
    await expect(page.locator("#status")).to_have_text("live")
    await expect(page.locator("#badge-groups")).to_have_text("1")  # one group in trouble
    await page.screenshot(path=str(ARTIFACTS / "dashboard-flow.png"), full_page=True)

    # Layers follow the events: checkout -> orders.placed -> inventory -> stock.reserved -> shipping.
    columns = {}
    for name in ("checkout", "orders.placed", "inventory", "stock.reserved", "shipping", "shipments.created"):
        box = await svg.locator(f'g.node[data-name="{name}"]').bounding_box()
        columns[name] = box["x"]
    assert list(columns.values()) == sorted(columns.values()) and len(set(columns.values())) == len(columns)

    # Clicking a topic opens its page.
    await svg.locator('g.node[data-name="orders.placed"]').click()
    await expect(page.locator("h1")).to_contain_text("orders.placed")


async def test_the_red_rule_in_the_browser(broker: ServerProcess, page: Any):
    """store.js's troubleOf, the one place the rule lives, run by the browser itself."""
    await page.goto(_url(broker))
    verdicts = await page.evaluate(
        """async () => {
        const { troubleOf } = await import("/static/store.js");
        const series = (values) => values.map((v, i) => [i * 1000, v]);
        return [
            troubleOf(series([0, 3, 1, 2, 0, 4, 2]), series([0, 0])),
            troubleOf(series([1001]), []),
            troubleOf(series([1, 2, 3, 4, 5, 6]), []),
            troubleOf(series([1, 2, 3, 4, 5, 5]), []),
            troubleOf(series([0]), series([2, 2, 3])),
        ];
    }"""
    )
    assert verdicts == [
        [],
        ["lag 1001 > 1000"],
        ["lag growing"],
        [],
        ["dead letters growing"],
    ]


async def test_topic_and_group_pages_show_offsets_and_update_live(broker: ServerProcess, page: Any):
    await page.goto(_url(broker, "#/topics/orders.placed"))
    partitions = page.locator("#partitions tbody tr")
    view = _request(broker, "/api/topics/orders.placed")
    await expect(partitions).to_have_count(view["partitions"])
    await expect(page.locator("#partitions")).to_contain_text(f"{view['partition_list'][0]['end_offset']:,}")
    await expect(page.locator("#topic-messages")).to_have_text(f"{view['messages']:,}")
    _request(broker, "/api/topics/orders.placed/events", {"data": {"order_id": "live"}})
    await expect(page.locator("#topic-messages")).to_have_text(f"{view['messages'] + 1:,}")  # no reload
    await expect(page.locator(".chart polyline").first).to_be_attached()  # the rate, over time
    await page.screenshot(path=str(ARTIFACTS / "dashboard-topic.png"), full_page=True)

    await page.goto(_url(broker, "#/groups"))
    for group in ("inventory", "shipping", "recommendations", "payment.responders", "click-counter"):
        await expect(page.locator("table.grid")).to_contain_text(group)
    red = page.locator("table.grid tr.red")
    await expect(red).to_have_count(1)
    await expect(red).to_contain_text("click-counter")

    await page.goto(_url(broker, "#/groups/click-counter"))
    await expect(page.locator("#group-lag")).to_have_text(f"{BACKLOG:,}")
    await expect(page.locator("p.alert")).to_contain_text("lag 1100 > 1000")
    await expect(page.locator("#group-partitions")).to_contain_text("clicks")
    await expect(page.locator(".chart polyline").first).to_be_attached()  # lag over time, drawn as it comes
    await page.screenshot(path=str(ARTIFACTS / "dashboard-group.png"), full_page=True)


async def test_the_event_browser_pretty_prints_payloads_and_headers(broker: ServerProcess, page: Any):
    await page.goto(_url(broker, "#/events?topic=orders.placed&partition=0&offset=0&limit=5"))
    events = page.locator("details.event")
    await expect(events).to_have_count(5)
    await events.first.locator("summary").click()
    payload = events.first.locator("pre.json")
    await expect(payload).to_contain_text('"order_id"')
    await expect(payload.locator(".j-key").first).to_be_visible()
    await expect(events.first.locator("table")).to_contain_text("ce_type")
    await page.locator("text=next page →").click()
    await expect(page.locator("details.event").first).to_contain_text("#5")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-events.png"), full_page=True)


async def test_a_dead_letter_is_redriven_with_the_button(broker: ServerProcess, page: Any):
    before = _request(broker, "/api/topics/audit.requests")["messages"]
    await page.goto(_url(broker, "#/dlq"))  # the only dead-letter topic opens by itself
    letters = page.locator("#letters")
    await expect(letters).to_contain_text("no auditor for this region")
    await expect(page.locator("#badge-dlq")).to_have_text("1")
    page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await letters.locator("button.redrive").first.click()
    await expect(page.locator("#redrive-result")).to_contain_text("Redriven 1 letter")
    await page.screenshot(path=str(ARTIFACTS / "dashboard-dlq.png"), full_page=True)
    assert _request(broker, "/api/topics/audit.requests")["messages"] == before + 1
    print(f"\nscreenshots in {ARTIFACTS}")
