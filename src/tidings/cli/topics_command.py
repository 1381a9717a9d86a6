"""``tidings topics list | create | describe | delete``: manage topics through the broker.

``describe`` adds the dashboard's figures from the broker's HTTP API (size, publish rate,
messages published since start, and the groups reading the topic with their lag and delay);
without the HTTP API it says so and shows the partitions and settings alone.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_pairs, run
from tidings.cli.figures import delay_text, rate_text, size_text
from tidings.cli.http_api import HttpApiError, HttpUrl, derive_http_url, fetch, path
from tidings.protocol import TopicDescription
from tidings.server.http.models import GroupList, GroupSummaryView, TopicView

app = typer.Typer(help="List, create, describe and delete topics.", no_args_is_help=True)
out = Console()

Name = Annotated[str, typer.Argument(help="Topic name.")]


@app.command("list")
def list_topics(url: Url = None) -> None:
    """Every topic, with its partitions and retained events."""
    descriptions = run(_list(url))
    table = Table("topic", "partitions", "events", "offsets")
    for description in descriptions:
        events = sum(p.end_offset - p.start_offset for p in description.partitions)
        first = min((p.start_offset for p in description.partitions), default=0)
        last = max((p.end_offset for p in description.partitions), default=0)
        table.add_row(
            escape(description.name), str(len(description.partitions)), f"{events:,}", f"{first}..{last}"
        )
    out.print(table if descriptions else "no topics")


async def _list(url: str | None) -> list[TopicDescription]:
    async with tidings.connect(url, service=SERVICE) as client:
        names = await client.admin.list_topics()
        return list(await asyncio.gather(*(client.admin.describe_topic(name) for name in names)))


@app.command()
def create(
    name: Name,
    partitions: Annotated[int, typer.Option("--partitions", "-p", min=1, help="Partition count.")] = 1,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="KEY=VALUE topic setting (repeatable).")
    ] = None,
    url: Url = None,
) -> None:
    """Create topic NAME."""
    settings = parse_pairs(config, "--config")
    description = run(_create(url, name, partitions, settings))
    out.print(f"created {escape(description.name)} with {len(description.partitions)} partition(s)")


async def _create(url: str | None, name: str, partitions: int, config: dict[str, str]) -> TopicDescription:
    async with tidings.connect(url, service=SERVICE) as client:
        return await client.admin.create_topic(name, partitions, config)


@app.command()
def describe(name: Name, url: Url = None, http: HttpUrl = None) -> None:
    """Partitions (retained offsets, size) and settings of topic NAME, its rates and its consumer groups."""
    description = run(_describe(url, name))
    view, groups, note = _http_figures(derive_http_url(http, url), name)
    sizes = {} if view is None else {p.partition: p.size_bytes for p in view.partition_list}
    columns = ["partition", "start offset", "end offset", "events", *(["size"] if view else [])]
    table = Table(*columns, title=escape(description.name))
    for p in description.partitions:
        row = [str(p.partition), str(p.start_offset), str(p.end_offset), f"{p.end_offset - p.start_offset:,}"]
        if view is not None:
            row.append(size_text(sizes.get(p.partition, 0)))
        table.add_row(*row)
    out.print(table)
    if view is not None:
        figures = Table.grid(padding=(0, 2))
        figures.add_row("size", size_text(view.size_bytes))
        figures.add_row("published", f"{rate_text(view.publish_rate)} ({size_text(round(view.byte_rate))}/s)")
        figures.add_row("since start", f"{view.published_total:,} events")
        out.print(figures)
        readers = Table(
            "group", "members", "lag", "processing delay", "dead letters", title="consumer groups"
        )
        for g in groups:
            readers.add_row(
                escape(g.group),
                str(g.members),
                f"{g.lag:,}",
                delay_text(g.processing_delay),
                f"{g.dead_letters:,}",
            )
        out.print(readers if groups else "no consumer group reads it")
    else:
        out.print(f"[dim]no rates or sizes: {escape(note)} (--http URL names the HTTP API)[/dim]")
    if description.config:
        settings = Table("setting", "value")
        for key, value in sorted(description.config.items()):
            settings.add_row(escape(key), escape(value))
        out.print(settings)


def _http_figures(base: str, name: str) -> tuple[TopicView | None, list[GroupSummaryView], str]:
    """The topic and the groups reading it, as the HTTP API shows them; else None and why."""
    try:
        view = fetch(base, path("topics", name), TopicView)
        groups = fetch(base, "/api/groups", GroupList).groups
    except HttpApiError as exc:
        return None, [], str(exc)
    return view, [g for g in groups if name in g.topics], ""


async def _describe(url: str | None, name: str) -> TopicDescription:
    async with tidings.connect(url, service=SERVICE) as client:
        return await client.admin.describe_topic(name)


@app.command()
def delete(
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    url: Url = None,
) -> None:
    """Delete topic NAME and every event in it."""
    if not yes:
        typer.confirm(f"Delete topic {name} and all its events?", abort=True)
    run(_delete(url, name))
    out.print(f"deleted {escape(name)}")


async def _delete(url: str | None, name: str) -> None:
    async with tidings.connect(url, service=SERVICE) as client:
        await client.admin.delete_topic(name)
