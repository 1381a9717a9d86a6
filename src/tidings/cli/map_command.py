"""``tidings map``: the flow map (services -> topics -> services) in the terminal, Mermaid or Graphviz DOT.

The figures are the broker's ``/api/flow``, the same the dashboard draws. The three renderings are
pure functions of a ``FlowMap`` (``flow_table``, ``to_mermaid``, ``to_dot``), so they are tested
without a broker and can be reused, e.g. to put the map in a README (Mermaid renders on GitHub) or
through ``dot -Tsvg``. Edge width follows the rate on a log scale, as on the dashboard; a
consuming edge is labelled with its group's lag and processing delay, and is red when the lag is
above ``LAG_LIMIT`` (a single reading has no trend: ``tidings top`` and the dashboard add "growing").
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tidings.cli.client_options import Url
from tidings.cli.figures import delay_text, rate_text
from tidings.cli.http_api import HttpUrl, derive_http_url, fetch
from tidings.server.http.models import FlowEdge, FlowMap

__all__ = ["LAG_LIMIT", "flow_table", "map_command", "to_dot", "to_mermaid"]

LAG_LIMIT: Final = 1000
"""Messages of lag above which a consuming edge is red (the dashboard's limit too)."""
DLQ_INFIX: Final = ".dlq."
RED: Final = "#d12c2c"

out = Console()


class Format(StrEnum):
    table = "table"
    mermaid = "mermaid"
    dot = "dot"


def edge_width(rate: float) -> float:
    """Stroke width for ``rate`` messages/s: 1.5 when idle, +2 per doubling, at most 10.5."""
    return 1.5 + min(9.0, 2 * math.log2(1 + max(rate, 0.0)))


def consume_label(edge: FlowEdge) -> str:
    """``[group: ]lag N, p50 X, p99 Y``: the group is named when it is not the service's own name."""
    group = f"{edge.group}: " if edge.group and edge.group != edge.service else ""
    lag = "?" if edge.lag is None else f"{edge.lag:,}"
    return f"{group}lag {lag}, {delay_text(edge.processing_delay)}"


def is_red(edge: FlowEdge) -> bool:
    return edge.kind == "consume" and edge.lag is not None and edge.lag > LAG_LIMIT


def _visible(flow: FlowMap) -> tuple[list[str], list[FlowEdge]]:
    """Node ids and edges to draw: dead-letter topics only when an edge touches them."""
    edges = [e for e in flow.edges if DLQ_INFIX not in e.topic]
    linked = {node for e in edges for node in (e.source, e.target)}
    nodes = [f"service:{s.name}" for s in flow.services]
    nodes += [
        f"topic:{t.name}" for t in flow.topics if DLQ_INFIX not in t.name or f"topic:{t.name}" in linked
    ]
    return nodes, edges


# -- Mermaid -------------------------------------------------------------------------------------


def _mermaid_ids(nodes: Iterable[str]) -> dict[str, str]:
    """Mermaid node ids (letters, digits, ``_``), unique even when two names sanitise alike."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for node in nodes:
        kind, _, name = node.partition(":")
        base = ("s_" if kind == "service" else "t_") + re.sub(r"\W", "_", name)
        candidate, n = base, 1
        while candidate in used:
            n += 1
            candidate = f"{base}_{n}"
        used.add(candidate)
        ids[node] = candidate
    return ids


def _mermaid_text(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def to_mermaid(flow: FlowMap) -> str:
    """A Mermaid ``flowchart LR``: services as rounded boxes, topics as queues, edges with labels."""
    nodes, edges = _visible(flow)
    ids = _mermaid_ids(nodes)
    lines = ["flowchart LR"]
    for node in nodes:
        kind, _, name = node.partition(":")
        shape = f"([{_mermaid_text(name)}])" if kind == "service" else f"[[{_mermaid_text(name)}]]"
        lines.append(f"    {ids[node]}{shape}")
    styles = []
    drawn = [e for e in edges if e.source in ids and e.target in ids]
    for index, edge in enumerate(drawn):  # linkStyle counts links in the order they are declared
        label = rate_text(edge.rate) if edge.kind == "publish" else consume_label(edge)
        lines.append(f"    {ids[edge.source]} -->|{_mermaid_text(label)}| {ids[edge.target]}")
        color = f",stroke:{RED}" if is_red(edge) else ""
        styles.append(f"    linkStyle {index} stroke-width:{edge_width(edge.rate):.1f}px{color}")
    lines += styles
    lines.append("    classDef service fill:#eaf1ff,stroke:#2457c5")
    lines.append("    classDef topic fill:#f1f4f9,stroke:#6b7385")
    services = [ids[n] for n in nodes if n.startswith("service:")]
    topics = [ids[n] for n in nodes if n.startswith("topic:")]
    if services:
        lines.append(f"    class {','.join(services)} service")
    if topics:
        lines.append(f"    class {','.join(topics)} topic")
    return "\n".join(lines) + "\n"


# -- Graphviz DOT --------------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(flow: FlowMap) -> str:
    """A Graphviz digraph, left to right: ``tidings map --format dot | dot -Tsvg > flow.svg``."""
    nodes, edges = _visible(flow)
    lines = [
        "digraph tidings {",
        "    rankdir=LR;",
        '    node [fontname="Helvetica", fontsize=11];',
        '    edge [fontname="Helvetica", fontsize=9, color="#7b93c4"];',
    ]
    for node in nodes:
        kind, _, name = node.partition(":")
        style = (
            'shape=box, style="rounded,filled", fillcolor="#eaf1ff", color="#2457c5"'
            if kind == "service"
            else 'shape=cds, style=filled, fillcolor="#f1f4f9", color="#6b7385"'
        )
        lines.append(f"    {_dot_text(node)} [label={_dot_text(name)}, {style}];")
    for edge in edges:
        label = rate_text(edge.rate) if edge.kind == "publish" else consume_label(edge).replace(", ", "\n", 1)
        attributes = [f"label={_dot_text(label)}", f"penwidth={edge_width(edge.rate):.1f}"]
        if is_red(edge):
            attributes += [f'color="{RED}"', f'fontcolor="{RED}"']
        lines.append(f"    {_dot_text(edge.source)} -> {_dot_text(edge.target)} [{', '.join(attributes)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


# -- the terminal --------------------------------------------------------------------------------


def flow_table(flow: FlowMap) -> Table:
    """One row per topic: who writes it (and how fast), who reads it (lag, delay)."""
    table = Table("topic", "partitions", "messages", "rate", "published by", "consumed by", title="flow map")
    by_topic: dict[str, list[FlowEdge]] = {}
    for edge in flow.edges:
        by_topic.setdefault(edge.topic, []).append(edge)
    for topic in flow.topics:
        edges = by_topic.get(topic.name, [])
        if DLQ_INFIX in topic.name and not edges:
            continue
        writers = [f"{escape(e.service)} {rate_text(e.rate)}" for e in edges if e.kind == "publish"]
        readers = []
        for e in edges:
            if e.kind != "consume":
                continue
            text = f"{escape(e.service)} ({escape(consume_label(e))})"
            readers.append(f"[red]{text}[/red]" if is_red(e) else text)
        table.add_row(
            escape(topic.name) + ("" if topic.exists else " [dim](not created)[/dim]"),
            str(topic.partitions),
            f"{topic.messages:,}",
            rate_text(topic.publish_rate),
            "\n".join(writers) or "[dim]-[/dim]",
            "\n".join(readers) or "[dim]-[/dim]",
        )
    return table


def map_command(
    format: Annotated[Format, typer.Option("--format", "-f", help="table, mermaid or dot.")] = Format.table,
    http: HttpUrl = None,
    url: Url = None,
) -> None:
    """Print the flow map: which services publish to and consume from which topics, with rates and lag."""
    flow = fetch(derive_http_url(http, url), "/api/flow", FlowMap)
    if format is Format.mermaid:
        typer.echo(to_mermaid(flow), nl=False)
    elif format is Format.dot:
        typer.echo(to_dot(flow), nl=False)
    elif not flow.services and not flow.topics:
        out.print("the flow map is empty: no service has connected and no topic exists")
    else:
        out.print(flow_table(flow))
        idle = [s.name for s in flow.services if not s.instances]
        if idle:
            out.print(f"[dim]not connected now: {escape(', '.join(idle))}[/dim]")
