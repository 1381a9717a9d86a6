"""The pure parts of the terminal views: Mermaid, DOT, the map table, the red rule, the HTTP URL.

A hand-built ``FlowMap`` (the body ``/api/flow`` answers) stands in for a broker: these functions
only turn figures into text. The assertions are about structure (which nodes, which edges, which
labels and colours), not whole-string snapshots.
"""

from __future__ import annotations

import re

from rich.console import Console

from tidings.app.asyncapi import AnnouncedEvent, AnnouncedService, asyncapi_from_services
from tidings.cli.http_api import derive_http_url, path
from tidings.cli.map_command import LAG_LIMIT, edge_width, flow_table, to_dot, to_mermaid
from tidings.cli.top_command import GROWING_STEPS, trouble
from tidings.server.http.models import Delay, FlowEdge, FlowMap, FlowTopic, ServiceView

DELAY = Delay(count=10, p50_ms=12.0, p99_ms=250.0, max_ms=300.0)


def service(name: str, publishes: list[str] = [], subscribes: list[str] = []) -> ServiceView:  # noqa: B006
    return ServiceView(
        name=name,
        first_seen=1,
        last_seen=2,
        instances=[],
        publishes=publishes,
        subscribes=subscribes,
        publish_rate=0.0,
        deliver_rate=0.0,
        event_types=[],
        handles=[],
    )


def edge(
    kind: str,
    service: str,
    topic: str,
    *,
    group: str | None = None,
    rate: float = 0.0,
    lag: int | None = None,
) -> FlowEdge:
    source, target = (
        (f"service:{service}", f"topic:{topic}")
        if kind == "publish"
        else (f"topic:{topic}", f"service:{service}")
    )
    return FlowEdge(
        kind=kind,  # type: ignore[arg-type]
        source=source,
        target=target,
        service=service,
        topic=topic,
        group=group,
        rate=rate,
        byte_rate=rate * 100,
        lag=lag,
        processing_delay=DELAY if kind == "consume" else None,
        first_seen=1,
        last_seen=2,
    )


def topic(name: str, messages: int = 0) -> FlowTopic:
    return FlowTopic(name=name, exists=True, partitions=1, messages=messages, publish_rate=0.0)


SHOP = FlowMap(
    time=2,
    services=[
        service("checkout", publishes=["orders.placed"]),
        service("inventory", publishes=["stock.reserved"], subscribes=["orders.placed:inventory"]),
        service("shipping", subscribes=["stock.reserved:shipping"]),
        service('web shop "v2"'),  # a name Mermaid and DOT must quote
    ],
    topics=[topic("orders.placed", 40), topic("stock.reserved", 38), topic("orders.placed.dlq.inventory", 2)],
    edges=[
        edge("publish", "checkout", "orders.placed", rate=40.0),
        edge("consume", "inventory", "orders.placed", group="inventory", rate=39.0, lag=2),
        edge("publish", "inventory", "stock.reserved", rate=38.0),
        edge("consume", "shipping", "stock.reserved", group="shipping-v2", rate=1.0, lag=LAG_LIMIT + 1),
    ],
)


def test_mermaid_has_every_node_once_and_every_edge_with_its_label():
    text = to_mermaid(SHOP)
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes = [line.strip() for line in lines if re.match(r"\s+[st]_\w+(\(\[|\[\[)", line)]
    assert len(nodes) == 6  # 4 services, 2 topics: the dead-letter topic has no edge and is left out
    assert 's_checkout(["checkout"])' in nodes and 't_orders_placed[["orders.placed"]]' in nodes
    assert any("#quot;v2#quot;" in n for n in nodes)  # quotes escaped the Mermaid way
    links = [line.strip() for line in lines if "-->" in line]
    assert links[0] == 's_checkout -->|"40/s"| t_orders_placed'
    assert links[1] == 't_orders_placed -->|"lag 2, p50 12 ms, p99 250 ms"| s_inventory'
    assert links[3].startswith('t_stock_reserved -->|"shipping-v2: lag 1,001')  # another group: named
    styles = [line.strip() for line in lines if line.strip().startswith("linkStyle")]
    assert len(styles) == len(links) == 4
    assert "stroke:#d12c2c" in styles[3] and "stroke:#d12c2c" not in styles[0]  # lag above the limit: red
    assert styles[0] == f"linkStyle 0 stroke-width:{edge_width(40.0):.1f}px"
    assert styles[3] == f"linkStyle 3 stroke-width:{edge_width(1.0):.1f}px,stroke:#d12c2c"


def test_mermaid_ids_stay_unique_when_names_sanitise_alike():
    flow = FlowMap(time=1, services=[service("a.b"), service("a_b"), service("a-b")], topics=[], edges=[])
    ids = re.findall(r"^\s+(s_\w+)\(", to_mermaid(flow), re.MULTILINE)
    assert len(ids) == len(set(ids)) == 3


def test_dot_is_a_digraph_with_quoted_ids_widths_and_red_lagging_edges():
    text = to_dot(SHOP)
    assert text.startswith("digraph tidings {") and text.rstrip().endswith("}")
    assert "rankdir=LR;" in text
    assert '"service:web shop \\"v2\\"" [label="web shop \\"v2\\""' in text
    assert '"topic:orders.placed.dlq.inventory"' not in text
    edges = re.findall(r'^\s+("[^"]+") -> ("[^"]+") \[(.*)\];$', text, re.MULTILINE)
    assert [(a, b) for a, b, _ in edges] == [
        ('"service:checkout"', '"topic:orders.placed"'),
        ('"topic:orders.placed"', '"service:inventory"'),
        ('"service:inventory"', '"topic:stock.reserved"'),
        ('"topic:stock.reserved"', '"service:shipping"'),
    ]
    assert 'label="lag 2\\np50 12 ms, p99 250 ms"' in edges[1][2]
    assert 'color="#d12c2c"' in edges[3][2] and "color" not in edges[1][2]
    assert f"penwidth={edge_width(40.0):.1f}" in edges[0][2]


def test_edge_width_grows_with_the_rate_and_is_bounded():
    assert edge_width(0) == 1.5
    assert edge_width(1) < edge_width(10) < edge_width(1000) <= edge_width(10**9) == 10.5


def test_the_table_has_a_row_per_topic_with_writers_and_readers():
    console = Console(record=True, width=200)
    console.print(flow_table(SHOP))
    text = console.export_text()
    rows = [line for line in text.splitlines() if "orders.placed" in line or "stock.reserved" in line]
    assert "checkout 40/s" in rows[0] and "inventory (lag 2, p50 12 ms, p99 250 ms)" in rows[0]
    assert "shipping (shipping-v2: lag 1,001" in text
    assert "dlq" not in text


def test_a_group_is_red_above_the_limit_or_when_its_lag_keeps_growing():
    assert trouble([]) == []
    assert trouble([0, 5, 3, 9, 2, 4]) == []
    assert trouble([LAG_LIMIT + 1]) == [f"lag above {LAG_LIMIT:,}"]
    growing = list(range(1, GROWING_STEPS + 2))
    assert trouble(growing) == ["lag growing"]
    assert trouble(growing[1:]) == []  # one step short
    assert trouble([*growing, growing[-1]]) == []  # stopped growing


def test_the_http_url_comes_from_the_option_or_the_broker_url():
    assert derive_http_url("http://h:9/", None) == "http://h:9"
    assert derive_http_url(None, None) == "http://127.0.0.1:7401"
    assert derive_http_url(None, "tidings://10.0.0.5:7400") == "http://10.0.0.5:7401"
    assert derive_http_url(None, "tidings+tls://broker.example:7400") == "https://broker.example:7401"
    assert derive_http_url(None, "tidings://[::1]:7400") == "http://[::1]:7401"
    assert path("dlq", "a/b c.dlq.g") == "/api/dlq/a%2Fb%20c.dlq.g"


def test_announced_services_become_send_and_receive_operations_with_their_schemas():
    schema = {
        "$ref": "#/$defs/OrderPlaced",
        "$defs": {
            "OrderPlaced": {
                "title": "OrderPlaced",
                "description": "An order was placed.",
                "type": "object",
                "properties": {"item": {"$ref": "#/$defs/Item"}},
            },
            "Item": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
        "x-tidings": {"topic": "orders.placed", "version": 1, "type": "orders.placed.v1"},
    }
    services = [
        AnnouncedService(
            "checkout",
            publishes=("orders.placed", "audit"),
            event_types=(AnnouncedEvent("orders.placed", "orders.placed.v1", 1, schema),),
        ),
        AnnouncedService(
            "inventory",
            subscribes=(("orders.placed", "inventory"), ("refunds", "inventory")),
            handles=(
                ("orders.placed", "inventory", "orders.placed.v1"),
                ("refunds", "inventory", "refunds.v3"),
            ),
        ),
    ]
    document = asyncapi_from_services(services, title="shop")
    ops = document["operations"]
    assert ops["checkout.emit.orders.placed.v1"]["action"] == "send"
    assert (
        ops["checkout.publish.audit"]["action"] == "send" and "messages" not in ops["checkout.publish.audit"]
    )
    receive = ops["inventory.receive.orders.placed.inventory"]
    assert receive["action"] == "receive" and receive["x-tidings"] == {
        "service": "inventory",
        "group": "inventory",
    }
    assert receive["messages"] == [{"$ref": "#/channels/orders.placed/messages/orders.placed.v1"}]
    schemas = document["components"]["schemas"]
    assert schemas["OrderPlaced"]["properties"]["item"] == {"$ref": "#/components/schemas/Item"}
    assert "Item" in schemas
    placed = document["components"]["messages"]["orders.placed.v1"]
    assert placed["payload"] == {"$ref": "#/components/schemas/OrderPlaced"}
    assert placed["title"] == "OrderPlaced" and placed["summary"] == "An order was placed."
    refunds = document["components"]["messages"]["refunds.v3"]
    assert "payload" not in refunds and refunds["x-tidings"]["version"] == 3  # handled, never announced
    assert "$defs" not in str(document)
