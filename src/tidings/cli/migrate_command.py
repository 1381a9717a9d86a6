"""``tidings migrate --from URL --to URL``: copy topics with their events and times to another backend.

The move from the embedded broker to NATS JetStream or Redis Streams (or between any two backends)
without losing the replayable past; how it copies, resumes and what it keeps is
``tidings.backends.migration``'s docstring. A progress bar counts topics and events as they are
stored at the destination and acknowledged at the source.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tidings.backends import open_backend
from tidings.backends.migration import DEFAULT_GROUP, copy_topic, plan
from tidings.backends.migration import Progress as Copied

__all__ = ["migrate"]

out = Console(stderr=True)


def migrate(
    source: Annotated[
        str, typer.Option("--from", help="The backend to copy from (tidings://, nats://, ...).")
    ],
    destination: Annotated[str, typer.Option("--to", help="The backend to copy to.")],
    topics: Annotated[
        list[str] | None, typer.Option("--topic", help="Copy only this topic (repeat for more); default all.")
    ] = None,
    group: Annotated[
        str, typer.Option(help="The source consumer group that records how far the copy got.")
    ] = DEFAULT_GROUP,
    batch: Annotated[int, typer.Option(help="Events per publish_batch at the destination.")] = 500,
) -> None:
    """Copy topics, their events, keys, headers and times to another backend; resumable."""
    copied = asyncio.run(_migrate(source, destination, topics or None, group, batch))
    typer.echo(f"migrated {copied.copied:,} events in {len(copied.topics_done)} topics")


async def _migrate(
    source_url: str, destination_url: str, topics: list[str] | None, group: str, batch: int
) -> Copied:
    source = open_backend(source_url, service="tidings-migrate")
    destination = open_backend(destination_url, service="tidings-migrate")
    async with source, destination:
        copies = await plan(source, topics)
        done = Copied()
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("topics · {task.fields[events]:,} events · {task.fields[rate]:,.0f}/s"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=out) as bar:
            task = bar.add_task("copying", total=len(copies), events=0, rate=0.0)
            loop = asyncio.get_running_loop()
            started = loop.time()

            def moved(progress: Copied) -> None:
                elapsed = max(loop.time() - started, 1e-6)
                bar.update(task, events=progress.copied, rate=progress.copied / elapsed)

            for copy in copies:
                bar.update(task, description=f"copying {copy.topic}")
                await copy_topic(
                    source, destination, copy, group=group, batch_size=batch, progress=done, on_batch=moved
                )
                bar.advance(task)
            bar.update(task, description="copied")
        return done
