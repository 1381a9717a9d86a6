"""``tidings groups list | describe | reset``: consumer groups, their members and their lag.

``describe`` reads the group over the binary admin protocol (members, assignments, offsets),
then adds the figures the dashboard shows from the broker's HTTP API: delivery rate, processing
delay, redeliveries, dead letters and each partition's oldest unacked age. Without the HTTP API
(``--no-http`` brokers, another port) it says so and shows the rest.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_start, run
from tidings.cli.figures import delay_text, ms_text, rate_text
from tidings.cli.http_api import HttpApiError, HttpUrl, derive_http_url, fetch, path
from tidings.client.message import StartIn
from tidings.protocol import GroupDescription, GroupMode, GroupReset, GroupSummary
from tidings.server.http.models import FlowMap, GroupView

app = typer.Typer(help="List, describe and reset consumer groups.", no_args_is_help=True)
out = Console()

Group = Annotated[str, typer.Argument(help="Consumer group name.")]


@app.command("list")
def list_groups(
    topic: Annotated[
        str | None, typer.Option("--topic", "-t", help="Only groups subscribed to TOPIC.")
    ] = None,
    url: Url = None,
) -> None:
    """Every consumer group: topics, members and total lag."""
    groups = run(_list(url, topic))
    table = Table("group", "topics", "members", "lag")
    for group in groups:
        table.add_row(
            escape(group.group), escape(", ".join(group.topics)), str(group.members), f"{group.lag:,}"
        )
    out.print(table if groups else "no groups")


async def _list(url: str | None, topic: str | None) -> tuple[GroupSummary, ...]:
    async with tidings.connect(url, service=SERVICE) as client:
        return await client.admin.list_groups(topic)


@app.command()
def describe(group: Group, url: Url = None, http: HttpUrl = None) -> None:
    """Members of GROUP, per partition its committed offset, lag, messages in flight and oldest unacked
    age, and its rate, processing delay, redeliveries and dead letters (as on the dashboard)."""
    description = run(_describe(url, group))
    view, rate, note = _http_figures(derive_http_url(http, url), group)
    members = Table(
        "member", "client", "service", "topic", "mode", "assigned", title=f"group {escape(group)}"
    )
    for m in description.members:
        assigned = ", ".join(f"{a.topic}/{a.partition}" for a in m.assigned) or "-"
        mode = "shared" if m.mode is GroupMode.SHARED else "partitioned"
        members.add_row(*(escape(v) for v in (m.member_id, m.client_id, m.service, m.topic, mode, assigned)))
    out.print(members if description.members else f"group {escape(group)}: no members connected")
    ages = {} if view is None else {(p.topic, p.partition): p.oldest_unacked_age_ms for p in view.partitions}
    columns = ["topic", "partition", "committed", "end offset", "lag", "in flight"]
    partitions = Table(*columns, *(["oldest unacked"] if view is not None else []))
    for p in description.partitions:
        row = [escape(p.topic), str(p.partition), str(p.committed), str(p.end_offset), f"{p.lag:,}"]
        row.append(str(p.in_flight))
        if view is not None:
            age = ages.get((p.topic, p.partition))
            row.append("-" if age is None else ms_text(age))
        partitions.add_row(*row)
    out.print(partitions)
    if view is not None:
        figures = Table.grid(padding=(0, 2))
        delay = view.processing_delay
        figures.add_row("lag", f"{view.lag:,}")
        figures.add_row("delivered", rate_text(rate))
        figures.add_row(
            "processing delay",
            delay_text(delay) + ("" if delay is None else f", max {ms_text(delay.max_ms)}"),
        )
        figures.add_row("redeliveries", f"{view.redeliveries:,}")
        figures.add_row("dead letters", f"{view.dead_letters:,}")
        out.print(figures)
    else:
        out.print(f"[dim]no rates or delays: {escape(note)} (--http URL names the HTTP API)[/dim]")


def _http_figures(base: str, group: str) -> tuple[GroupView | None, float, str]:
    """The group as the HTTP API shows it and its delivery rate; else None and why."""
    try:
        view = fetch(base, path("groups", group), GroupView)
        flow = fetch(base, "/api/flow", FlowMap)
    except HttpApiError as exc:
        return None, 0.0, str(exc)
    rate = sum(e.rate for e in flow.edges if e.kind == "consume" and e.group == group)
    return view, rate, ""


async def _describe(url: str | None, group: str) -> GroupDescription:
    async with tidings.connect(url, service=SERVICE) as client:
        return await client.admin.describe_group(group)


@app.command()
def reset(
    group: Group,
    topic: Annotated[str, typer.Option("--topic", "-t", help="The topic whose position moves.")],
    to: Annotated[str, typer.Option("--to", help="earliest | latest | OFFSET | ISO-8601 time.")] = "earliest",
    url: Url = None,
) -> None:
    """Move GROUP's position on every partition of TOPIC."""
    position = parse_start(to, "--to")
    result = run(_reset(url, group, topic, position))
    table = Table("partition", "new committed offset", title=f"group {escape(group)} on {escape(topic)}")
    for p in result.offsets:
        table.add_row(str(p.partition), str(p.offset))
    out.print(table)


async def _reset(url: str | None, group: str, topic: str, to: StartIn) -> GroupReset:
    async with tidings.connect(url, service=SERVICE) as client:
        return await client.admin.reset_group(group, topic, to)
