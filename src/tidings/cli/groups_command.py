"""``tidings groups list | describe | reset``: consumer groups, their members and their lag."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_start, run
from tidings.client.message import StartIn
from tidings.protocol import GroupDescription, GroupMode, GroupReset, GroupSummary

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
def describe(group: Group, url: Url = None) -> None:
    """Members of GROUP, and per partition its committed offset, lag and messages in flight."""
    description = run(_describe(url, group))
    members = Table(
        "member", "client", "service", "topic", "mode", "assigned", title=f"group {escape(group)}"
    )
    for m in description.members:
        assigned = ", ".join(f"{a.topic}/{a.partition}" for a in m.assigned) or "-"
        mode = "shared" if m.mode is GroupMode.SHARED else "partitioned"
        members.add_row(*(escape(v) for v in (m.member_id, m.client_id, m.service, m.topic, mode, assigned)))
    out.print(members if description.members else f"group {escape(group)}: no members connected")
    partitions = Table("topic", "partition", "committed", "end offset", "lag", "in flight")
    for p in description.partitions:
        partitions.add_row(
            escape(p.topic),
            str(p.partition),
            str(p.committed),
            str(p.end_offset),
            f"{p.lag:,}",
            str(p.in_flight),
        )
    out.print(partitions)


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
