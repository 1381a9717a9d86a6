"""``/api/topics/{topic}/events``: browse a topic's events, and publish JSON events over HTTP.

Browsing reads whole stored batches with the log's own read path
(``PartitionLog.read``: CRC-checked, below the high watermark), decodes their
records and keeps those at or after the start offset that match the key
filter. It is bounded twice: at most ``limit`` events (``MAX_LIMIT``), and at
most ``SCAN_BUDGET`` bytes read per request, so a key filter over a huge
topic answers with ``truncated`` and a ``next_offsets`` to continue from
instead of reading the whole log. The reads run in a worker thread (the logs
are locked for that), not on the event loop.

Publishing builds one record batch per event with ``tidings.records``, the
same builder the client uses, and hands the Produce to the broker's produce
path, which checks, appends and waits for the group commit before the
response is sent: a 200 means durable, as a ProduceResult does.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

import msgspec

from tidings.core.topics import Topic
from tidings.errors import TidingsError, UnknownPartition
from tidings.records import BatchBuilder, Record, iter_batches, iter_records
from tidings.server.http.errors import bad_request, from_tidings
from tidings.server.http.models import EventPage, EventView, PublishEvent
from tidings.storage import PartitionLog

MAX_LIMIT: Final = 500
DEFAULT_LIMIT: Final = 50
SCAN_BUDGET: Final = 8 * 1024 * 1024
READ_CHUNK: Final = 1024 * 1024


def _text_or_base64(data: bytes) -> tuple[str, Literal["text", "base64"]]:
    try:
        return data.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def event_view(topic: str, partition: int, record: Record) -> EventView:
    """A stored record as JSON: data decoded as JSON when it is JSON, else text, else base64."""
    data: Any
    encoding: Literal["json", "text", "base64"]
    try:
        data, encoding = msgspec.json.decode(record.value), "json"
    except msgspec.DecodeError:
        data, encoding = _text_or_base64(record.value)
    key: str | None = None
    key_encoding: Literal["text", "base64"] | None = None
    if record.key is not None:
        key, key_encoding = _text_or_base64(record.key)
    return EventView(
        topic=topic,
        partition=partition,
        offset=record.offset,
        timestamp=record.timestamp,
        append_time=record.append_time,
        key=key,
        key_encoding=key_encoding,
        headers={name: value.decode("utf-8", "replace") for name, value in record.headers},
        data=data,
        encoding=encoding,
        size=len(record.value) + len(record.key or b""),
    )


@dataclass(frozen=True, slots=True)
class Browse:
    """What to read: partitions with their start offsets, a key filter and a limit."""

    starts: dict[int, int]
    key: bytes | None
    limit: int


@dataclass(slots=True)
class Page:
    records: list[tuple[int, Record]]
    next_offsets: dict[int, int]
    truncated: bool


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(f"limit must be an integer, not {raw!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise bad_request(f"limit must be 1..{MAX_LIMIT}, not {limit}")
    return limit


def parse_int(name: str, raw: str | None) -> int | None:
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw!r}") from None
    if value < 0:
        raise bad_request(f"{name} must be >= 0, not {value}")
    return value


def plan_browse(
    topic: Topic, *, partition: int | None, offset: int | None, time: int | None, key: str | None, limit: int
) -> Browse:
    """Start offsets per partition: ``offset``, else the first appended at ``time``, else the last few."""
    if partition is not None and not 0 <= partition < topic.partitions:
        gone = UnknownPartition(
            f"topic {topic.name!r} has no partition {partition} (it has {topic.partitions})"
        )
        raise from_tidings(gone)
    partitions = range(topic.partitions) if partition is None else [partition]
    starts: dict[int, int] = {}
    for p in partitions:
        log = topic.logs[p]
        first, end = log.start_offset, log.high_watermark
        if offset is not None:
            if offset > end:
                raise bad_request(f"offset {offset} is past the end of partition {p} ({end})")
            starts[p] = max(offset, first)
        elif time is not None:
            starts[p] = max(min(log.offset_for_time(time), end), first)
        else:
            starts[p] = max(end - limit, first)
    return Browse(starts, None if key is None else key.encode(), limit)


def read_page(logs: dict[int, PartitionLog], browse: Browse) -> Page:
    """Blocking (a worker thread): up to ``limit`` matching records, partition by partition."""
    records: list[tuple[int, Record]] = []
    next_offsets: dict[int, int] = {}
    budget = SCAN_BUDGET
    truncated = False
    for partition, start in sorted(browse.starts.items()):
        log = logs[partition]
        position = start  # the next offset not looked at yet
        while len(records) < browse.limit and position < log.high_watermark:
            if budget <= 0:
                truncated = True
                break
            result = log.read(position, min(READ_CHUNK, budget))
            if not result.data:
                break
            budget -= len(result.data)
            for batch_position, header in iter_batches(result.data):
                for record in iter_records(result.data, batch_position, header):
                    if record.offset < position:
                        continue
                    if browse.key is None or record.key == browse.key:
                        records.append((partition, record))
                    position = record.offset + 1
                    if len(records) >= browse.limit:
                        break
                if len(records) >= browse.limit:
                    break
            if len(records) < browse.limit:
                position = max(position, result.next_offset)
        next_offsets[partition] = position
    return Page(records, next_offsets, truncated)


def read_events(logs: dict[int, PartitionLog], browse: Browse) -> Page:
    try:
        return read_page(logs, browse)
    except TidingsError as exc:
        raise from_tidings(exc) from exc


async def read_async(logs: dict[int, PartitionLog], browse: Browse) -> Page:
    """``read_events`` in a worker thread: the logs are locked for it, the event loop stays free."""
    return await asyncio.to_thread(read_events, logs, browse)


async def browse(topic: Topic, query: Mapping[str, str]) -> EventPage:
    """The answer to ``GET /api/topics/{topic}/events`` with these query parameters."""
    offset = parse_int("offset", query.get("offset"))
    at_time = parse_int("time", query.get("time"))
    if offset is not None and at_time is not None:
        raise bad_request("give offset or time, not both")
    plan = plan_browse(
        topic,
        partition=parse_int("partition", query.get("partition")),
        offset=offset,
        time=at_time,
        key=query.get("key"),
        limit=parse_limit(query.get("limit")),
    )
    page = await read_async({p: topic.logs[p] for p in plan.starts}, plan)
    return EventPage(
        topic=topic.name,
        events=[event_view(topic.name, p, record) for p, record in page.records],
        next_offsets={str(p): o for p, o in page.next_offsets.items()},
        truncated=page.truncated,
    )


# -- publishing ------------------------------------------------------------------------------

_single = msgspec.json.Decoder(PublishEvent)
_many = msgspec.json.Decoder(list[PublishEvent])


def parse_events(body: bytes) -> list[PublishEvent]:
    """``{"data": ..., "key": ..., "headers": {...}}`` or a list of them."""
    stripped = body.lstrip()
    try:
        events = _many.decode(body) if stripped.startswith(b"[") else [_single.decode(body)]
    except msgspec.DecodeError as exc:
        raise bad_request(f"the body must be an event object or a list of them: {exc}") from None
    if not events:
        raise bad_request("the list of events is empty")
    return events


def event_batch(event: PublishEvent, now: int) -> bytes:
    """One record batch holding the event, its data as JSON, exactly as a producer would build it."""
    builder = BatchBuilder()
    headers = [(name, value.encode()) for name, value in event.headers.items()]
    key = None if event.key is None else event.key.encode()
    builder.add(msgspec.json.encode(event.data), key=key, headers=headers, timestamp=now)
    return builder.build()
