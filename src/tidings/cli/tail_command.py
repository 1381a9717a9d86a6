"""``tidings tail TOPIC``: print a topic's events as they arrive (or from the start, or from a time).

Without ``--group`` it joins a fresh group of its own, so it sees every event
and takes none away from real consumers. With ``--group G`` it is a member of
G like any service, and acks what it prints. Text output is one line per
event; ``--json`` prints one JSON object per line, with the data embedded as
JSON when it is JSON, else as text, else as base64.
"""

from __future__ import annotations

import base64
import uuid
from typing import Annotated, Any

import msgspec
import typer

import tidings
from tidings.cli.client_options import SERVICE, Url, parse_start, run
from tidings.client.message import Message, StartIn


def tail(
    topic: Annotated[str, typer.Argument(help="Topic or pattern (orders.*, orders.>).")],
    *,
    group: Annotated[str | None, typer.Option("--group", "-g", help="Join this consumer group.")] = None,
    start: Annotated[
        str, typer.Option("--from", help="earliest | latest | OFFSET | ISO-8601 time (a new group only).")
    ] = "latest",
    count: Annotated[int | None, typer.Option("--count", "-n", min=1, help="Exit after N events.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    url: Url = None,
) -> None:
    """Print TOPIC's events as they arrive; Ctrl-C to stop."""
    position = parse_start(start, "--from")
    group = group or f"tidings-tail-{uuid.uuid4().hex[:12]}"
    run(_tail(url, topic, group=group, start=position, count=count, as_json=as_json))


async def _tail(
    url: str | None, topic: str, *, group: str, start: StartIn, count: int | None, as_json: bool
) -> None:
    async with tidings.connect(url, service=SERVICE) as client:
        subscription = await client.subscribe(topic, group, start=start)
        seen = 0
        async with subscription:
            async for message in subscription:
                typer.echo(as_json_line(message) if as_json else as_text_line(message))
                await message.ack()
                seen += 1
                if count is not None and seen >= count:
                    break


def as_text_line(message: Message) -> str:
    key = "" if message.key is None else f" key={_text(message.key)}"
    return f"{message.topic}/{message.partition}@{message.offset}{key} {_text(message.data)}"


def as_json_line(message: Message) -> str:
    record: dict[str, Any] = {
        "topic": message.topic,
        "partition": message.partition,
        "offset": message.offset,
        "key": None if message.key is None else _text(message.key),
        "headers": {name: _text(value) for name, value in message.headers.items()},
        "timestamp": message.timestamp.isoformat(),
        "append_time": None if message.append_time is None else message.append_time.isoformat(),
        "delivery_count": message.delivery_count,
    }
    try:
        record["data"] = msgspec.json.decode(message.data)
    except msgspec.DecodeError:
        try:
            record["data"] = message.data.decode("utf-8")
        except UnicodeDecodeError:
            record["data_base64"] = base64.b64encode(message.data).decode("ascii")
    return msgspec.json.encode(record).decode("utf-8")


def _text(data: bytes) -> str:
    """UTF-8 text as is; other bytes escaped, so a line stays one printable line."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return repr(data)
    return text.replace("\n", "\\n").replace("\r", "\\r")
