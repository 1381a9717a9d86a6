"""Structured logs: the runner's decision fields reach each JSON line (see also test_run_command)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

import tidings
from tidings.app import Event, NoBackoff
from tidings.app.logs import JsonFormatter, configure_logging
from tidings.testing.app import TestApp


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str


@pytest.fixture
def json_log():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging("info", "json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


async def test_a_retry_and_a_dead_letter_are_json_lines_with_the_delivery_fields(json_log):
    app = tidings.App("inventory", broker="memory://")

    @app.subscribe(OrderPlaced, group="inventory", retries=1, backoff=NoBackoff())
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        raise RuntimeError(f"no stock for {event.order_id}")

    async with TestApp(app) as t:
        await t.publish(OrderPlaced(order_id="o-1"))
        await t.drain()

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    decisions = [line for line in lines if "decision" in line]
    assert [(d["decision"], d["delivery_count"], d["level"]) for d in decisions] == [
        ("Nack", 1, "warning"),
        ("DeadLetter", 2, "error"),
    ]
    for line in decisions:
        assert line["topic"] == "orders.placed" and line["group"] == "inventory"
        assert line["partition"] == 0 and line["offset"] == 0 and line["handler"].endswith("reserve")
        assert line["logger"] == "tidings.app" and "no stock for o-1" in line["message"]
        assert line["time"].endswith("+00:00")


def test_extra_fields_and_exceptions_are_kept():
    record = logging.LogRecord("svc", logging.ERROR, __file__, 1, "boom %s", ("x",), None)
    record.order_id = "o-7"
    try:
        raise ValueError("bad sku")
    except ValueError:
        record.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "boom x" and line["order_id"] == "o-7" and line["level"] == "error"
    assert "ValueError: bad sku" in line["exception"]


def test_configure_logging_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="text, json"):
        configure_logging("info", "xml")  # type: ignore[arg-type]
