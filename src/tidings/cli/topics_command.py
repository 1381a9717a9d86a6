"""``tidings topics list | create | describe | delete``: manage topics through the broker."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_pairs, run
from tidings.protocol import TopicDescription

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
def describe(name: Name, url: Url = None) -> None:
    """Partitions (retained offsets) and settings of topic NAME."""
    description = run(_describe(url, name))
    table = Table("partition", "start offset", "end offset", "events", title=escape(description.name))
    for p in description.partitions:
        table.add_row(
            str(p.partition), str(p.start_offset), str(p.end_offset), f"{p.end_offset - p.start_offset:,}"
        )
    out.print(table)
    if description.config:
        settings = Table("setting", "value")
        for key, value in sorted(description.config.items()):
            settings.add_row(escape(key), escape(value))
        out.print(settings)


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
