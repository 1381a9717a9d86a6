"""``map``, ``top``, ``groups describe``, ``topics describe`` and ``asyncapi --from-broker`` against a broker.

One broker process for the module, with the shop example's traffic (a short burst of orders) and
one dead letter; the commands run in-process through Typer's runner (fast), except where the
entry point's one-line error handling is what is tested.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import tidings
from examples.shop.run import run_shop
from tests.app.test_asyncapi import validate
from tests.server.auth_helpers import ADMIN_TOKEN, start_secure_broker
from tidings.cli.main import app
from tidings.cli.top_command import History, snapshots
from tidings.testing.servers import ServerProcess, free_port, start_broker

TIDINGS = Path(sys.executable).parent / "tidings"
SHOP_SERVICES = ("checkout", "payment", "inventory", "shipping", "recommendations")
runner = CliRunner()


async def _traffic(url: str, data: Path) -> None:
    assert await run_shop(url, data, orders=10, console=Console(file=io.StringIO()))
    async with tidings.connect(url, service="auditor") as client:
        await client.publish("audit.requests", {"order_id": "o-dead"})
        subscription = await client.subscribe("audit.requests", "auditor", start="earliest")
        async with asyncio.timeout(10):
            async for message in subscription:
                await message.term(reason="no auditor")
                break
        await client.flush()


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("broker")
    server = start_broker(directory, fsync="never")
    try:
        asyncio.run(_traffic(server.url, directory / "shop"))
        yield server
    finally:
        server.stop()


def tidings_cli(broker: ServerProcess, *args: str) -> str:
    assert broker.http_url is not None
    env = {"COLUMNS": "250", "NO_COLOR": "1", "TIDINGS_URL": broker.url, "TIDINGS_HTTP_URL": broker.http_url}
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_map_prints_a_row_per_topic_with_writers_and_readers(broker: ServerProcess):
    text = tidings_cli(broker, "map")
    placed = next(line for line in text.splitlines() if line.startswith("│ orders.placed "))
    assert "checkout" in placed and "inventory (lag 0, p50" in placed
    assert "shipping (lag 0" in text and "payment (payment.responders: lag 0" in text
    assert "audit.requests.dlq.auditor" not in text  # a dead-letter topic without edges is not a node


def test_map_as_mermaid_and_dot_names_every_shop_service_and_topic(broker: ServerProcess):
    mermaid = tidings_cli(broker, "map", "--format", "mermaid")
    dot = tidings_cli(broker, "map", "-f", "dot")
    for name in SHOP_SERVICES:
        assert f'(["{name}"])' in mermaid and f'"service:{name}" [label="{name}"' in dot
    for name in ("orders.placed", "stock.reserved", "shipments.created", "payments.confirm"):
        assert f'[["{name}"]]' in mermaid and f'"topic:{name}"' in dot
    assert '"topic:orders.placed" -> "service:inventory"' in dot


def test_top_once_shows_topics_and_groups_with_their_figures(broker: ServerProcess):
    text = tidings_cli(broker, "top", "--once")
    assert "topics" in text and "consumer groups" in text
    inventory = next(line for line in text.splitlines() if line.startswith("│ inventory "))
    assert "orders.placed" in inventory and " ms " in inventory  # the processing delay is known
    audit = next(line for line in text.splitlines() if line.startswith("│ auditor "))
    assert audit.rstrip(" │").endswith("1")  # its dead letter


def test_top_follows_the_stream_snapshot_after_snapshot(broker: ServerProcess):
    assert broker.http_url is not None
    history = History()
    times = []
    for snapshot in itertools.islice(snapshots(broker.http_url, 200), 3):
        history.add(snapshot)
        times.append(snapshot.time)
    assert times == sorted(times) and len(set(times)) == 3
    assert list(history.lags["inventory"]) == [0, 0, 0]  # one reading of each group's lag per snapshot


def test_groups_describe_adds_the_dashboard_figures(broker: ServerProcess):
    text = tidings_cli(broker, "groups", "describe", "inventory")
    assert "oldest unacked" in text
    assert "processing delay  p50" in text and "dead letters" in text
    audit = tidings_cli(broker, "groups", "describe", "auditor")
    assert re.search(r"dead letters\s+1", audit)


def test_topics_describe_adds_sizes_rates_and_readers(broker: ServerProcess):
    text = tidings_cli(broker, "topics", "describe", "orders.placed")
    assert re.search(r"since start\s+\d+ events", text) and re.search(r"published\s+[\d.]+/s", text)
    readers = text[text.index("consumer groups") :]
    assert "inventory" in readers and "recommendations" in readers


def test_describe_without_the_http_api_says_so_and_shows_the_rest(broker: ServerProcess):
    nowhere = f"http://127.0.0.1:{free_port()}"
    text = tidings_cli(broker, "groups", "describe", "inventory", "--http", nowhere)
    assert "no rates or delays: cannot reach the broker's HTTP API" in text
    assert "orders.placed" in text and "oldest unacked" not in text


def test_map_without_the_http_api_is_a_one_line_error(broker: ServerProcess):
    nowhere = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [str(TIDINGS), "map", "--http", nowhere],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"error: cannot reach the broker's HTTP API at {nowhere}")
    assert "Traceback" not in done.stderr


def test_asyncapi_from_the_broker_is_valid_for_the_official_parser(broker: ServerProcess, tmp_path: Path):
    assert broker.http_url is not None
    out = tmp_path / "running.json"
    tidings_cli(
        broker, "asyncapi", "--from-broker", broker.http_url, "-o", str(out), "--title", "running shop"
    )
    document = json.loads(out.read_text())
    assert document["info"]["title"] == "running shop"
    ops = document["operations"]
    assert ops["checkout.emit.orders.placed.v1"]["action"] == "send"
    assert ops["inventory.receive.orders.placed.inventory"]["x-tidings"]["group"] == "inventory"
    placed = document["components"]["messages"]["orders.placed.v1"]
    assert placed["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    assert set(document["components"]["schemas"]["OrderPlaced"]["required"]) >= {"order_id", "total"}
    verdict = validate(out)
    assert verdict["valid"], verdict["errors"]
    assert verdict["warnings"] == []


def test_asyncapi_wants_one_source():
    assert runner.invoke(app, ["asyncapi"]).exit_code == 2
    both = runner.invoke(app, ["asyncapi", "--app", "x:y", "--from-broker", "http://127.0.0.1:1"])
    assert both.exit_code == 2


async def test_the_commands_send_tidings_token_to_a_broker_with_auth_on(tmp_path: Path):
    server = await start_secure_broker(str(tmp_path / "data"))
    try:
        http = server.http.url if server.http is not None else ""
        env = {"COLUMNS": "250", "NO_COLOR": "1", "TIDINGS_HTTP_URL": http}
        refused = await asyncio.to_thread(runner.invoke, app, ["map"], env={**env, "TIDINGS_TOKEN": ""})
        assert refused.exit_code != 0 and "401" in str(refused.exception)
        allowed = await asyncio.to_thread(
            runner.invoke, app, ["map"], env={**env, "TIDINGS_TOKEN": ADMIN_TOKEN}
        )
        assert allowed.exit_code == 0, (allowed.output, allowed.exception)
    finally:
        await server.stop()
