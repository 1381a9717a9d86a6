"""OpenTelemetry: a publish is a PRODUCER span, the handling a CONSUMER span of the same trace, across the
outbox and a second hop; a failed handler marks its span as an error."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import tidings
from tidings.app import Event, NoBackoff
from tidings.testing.app import TestApp


class OrderPlaced(Event, topic="orders.placed"):
    order_id: str


class StockReserved(Event, topic="stock.reserved"):
    order_id: str


@pytest.fixture(scope="module")
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)  # once per process: OpenTelemetry refuses to replace it
    return exporter


async def test_a_trace_follows_an_event_through_a_handler_and_its_outbox(spans, tmp_path):
    spans.clear()
    app = tidings.App("inventory", broker="memory://", store=f"sqlite:///{tmp_path / 'inventory.db'}")
    handled: list[str] = []

    @app.subscribe(OrderPlaced)
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        await ctx.publish(StockReserved(order_id=event.order_id))  # into the outbox: a "create" span

    @app.subscribe(StockReserved, group="shipping")
    async def ship(event: StockReserved, ctx: tidings.Context) -> None:
        handled.append(event.order_id)

    async with TestApp(app) as t:
        await app.publish(OrderPlaced(order_id="o-1"))
        await t.drain()
    assert handled == ["o-1"]

    finished = {span.name: span for span in spans.get_finished_spans()}
    publish = finished["orders.placed publish"]
    process = finished["orders.placed process"]
    create = finished["stock.reserved create"]
    shipped = finished["stock.reserved process"]
    assert (publish.kind, process.kind, create.kind, shipped.kind) == (
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    )
    trace_id = publish.context.trace_id
    assert {s.context.trace_id for s in (process, create, shipped)} == {trace_id}
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert create.parent is not None and create.parent.span_id == process.context.span_id
    assert shipped.parent is not None and shipped.parent.span_id == create.context.span_id
    assert process.attributes["messaging.consumer.group.name"] == "inventory"
    assert process.attributes["messaging.destination.name"] == "orders.placed"
    assert process.attributes["messaging.message.id"]


async def test_a_failing_handler_marks_its_span_as_an_error(spans):
    spans.clear()
    app = tidings.App("inventory", broker="memory://")

    @app.subscribe(OrderPlaced, retries=0, backoff=NoBackoff())
    async def reserve(event: OrderPlaced, ctx: tidings.Context) -> None:
        raise RuntimeError("warehouse offline")

    async with TestApp(app) as t:
        await app.publish(OrderPlaced(order_id="o-2"))
        await t.drain()
    [process] = [s for s in spans.get_finished_spans() if s.name == "orders.placed process"]
    assert process.status.status_code is StatusCode.ERROR
    assert "warehouse offline" in (process.status.description or "")
    assert [e.name for e in process.events] == ["exception"]
