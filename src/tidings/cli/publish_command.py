"""``tidings publish TOPIC [DATA | -]``: publish one event, or one event per line of stdin.

Each line is sent as its UTF-8 bytes, unchanged (JSON stays JSON). Lines from
stdin are published in order, batched by the SDK, and acknowledged before the
command exits; it prints where each single event was stored, or a summary.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_pairs, run

CHUNK = 10_000
"""Lines published per batch call: bounds memory for endless stdin streams."""


def publish(
    topic: Annotated[str, typer.Argument(help="Topic to publish to.")],
    data: Annotated[str, typer.Argument(help="The event's data; '-' reads one event per line from stdin.")],
    key: Annotated[
        str | None, typer.Option("--key", "-k", help="Key: picks the partition, keeps order.")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="NAME=VALUE header (repeatable).")
    ] = None,
    url: Url = None,
) -> None:
    """Publish DATA (or each line of stdin, with '-') to TOPIC and wait until it is durable."""
    headers = parse_pairs(header, "--header")
    run(_publish(url, topic, data, key, headers))


async def _publish(url: str | None, topic: str, data: str, key: str | None, headers: dict[str, str]) -> None:
    async with tidings.connect(url, service=SERVICE) as client:
        if data != "-":
            result = await client.publish(topic, data, key=key, headers=headers or None)
            typer.echo(f"{result.topic}/{result.partition}@{result.offset}")
            return
        publisher = client.publisher(topic)
        total, chunk = 0, []
        for line in sys.stdin:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) >= CHUNK:
                total += len(await publisher.publish_many(chunk, key=key, headers=headers or None))
                chunk = []
        if chunk:
            total += len(await publisher.publish_many(chunk, key=key, headers=headers or None))
        typer.echo(f"published {total} event{'s' * (total != 1)} to {topic}")
