"""``/api/dlq``: dead-letter topics, their letters, and redriving them to where they came from.

A dead letter is an ordinary record in ``<topic>.dlq.<group>`` whose
``tidings-dlq-*`` headers say where it was read from and why it was given up
(``tidings.core.dead_letters``). Redriving copies it back to the original
topic: same key, value and producer time, its headers without the
``tidings-dlq-*`` ones, through the ordinary produce path. The letter itself
stays in the dead-letter topic (topics are append-only); a redrive answers
``next_offset`` so the next "redrive all" can start after what was redriven.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Final

from tidings.core.broker import BrokerCore
from tidings.core.dead_letters import PREFIX
from tidings.core.topics import Topic
from tidings.records import BatchBuilder, Record
from tidings.server.http import events
from tidings.server.http.errors import bad_request, not_found
from tidings.server.http.events import event_view
from tidings.server.http.models import DeadLetterPage, DeadLetterTopicView, DeadLetterView, RedriveRequest
from tidings.server.http.topics import DLQ_INFIX

MAX_PRODUCE: Final = 500
"""Batches per Produce when redriving: one group commit covers them all."""
MAX_REDRIVE: Final = 10_000
"""Letters redriven by one request at most (the answer's ``next_offset`` continues)."""


def _text(record: Record, name: str) -> str | None:
    value = record.header(PREFIX + name)
    return None if value is None else value.decode("utf-8", "replace")


def _int(record: Record, name: str) -> int | None:
    text = _text(record, name)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None


def letter_view(topic: str, record: Record) -> DeadLetterView:
    return DeadLetterView(
        original_topic=_text(record, "topic"),
        original_partition=_int(record, "partition"),
        original_offset=_int(record, "offset"),
        group=_text(record, "group"),
        deliveries=_int(record, "deliveries"),
        reason=_text(record, "reason"),
        event=event_view(topic, 0, record),
    )


def dead_letter_topics(core: BrokerCore) -> list[DeadLetterTopicView]:
    views = []
    for name in core.topics.names():
        if DLQ_INFIX not in name:
            continue
        found = core.topics.find(name)
        if found is None:
            continue
        source, _, group = name.partition(DLQ_INFIX)
        views.append(
            DeadLetterTopicView(
                topic=name,
                source_topic=source,
                group=group,
                messages=sum(max(lg.high_watermark - lg.start_offset, 0) for lg in found.logs),
                end_offset=sum(lg.high_watermark for lg in found.logs),
            )
        )
    return views


def find(core: BrokerCore, name: str) -> Topic:
    """The dead-letter topic ``name``; 404 for a topic that is not one (or does not exist)."""
    if DLQ_INFIX not in name:
        raise not_found(
            "unknown_dead_letter_topic", f"{name!r} is not a dead-letter topic (<topic>.dlq.<group>)"
        )
    return core.topics.get(name)


async def letters(topic: Topic, offset: int | None, limit: int) -> DeadLetterPage:
    """Up to ``limit`` letters from ``offset`` (default: the oldest retained)."""
    start = topic.logs[0].start_offset if offset is None else offset
    plan = events.plan_browse(topic, partition=0, offset=start, time=None, key=None, limit=limit)
    page = await events.read_async({0: topic.logs[0]}, plan)
    return DeadLetterPage(
        topic=topic.name,
        letters=[letter_view(topic.name, record) for _, record in page.records],
        next_offset=page.next_offsets.get(0, start),
    )


async def letter(topic: Topic, offset: int) -> Record:
    """The letter at ``offset``, or a 404."""
    log = topic.logs[0]
    if log.start_offset <= offset < log.high_watermark:
        plan = events.plan_browse(topic, partition=0, offset=offset, time=None, key=None, limit=1)
        page = await events.read_async({0: log}, plan)
        if page.records and page.records[0][1].offset == offset:
            return page.records[0][1]
    raise not_found("unknown_dead_letter", f"no dead letter at offset {offset} of {topic.name!r}")


async def to_redrive(topic: Topic, ask: RedriveRequest) -> tuple[list[Record], int]:
    """The letters a redrive asks for, and the offset after them (the next "redrive all" starts there)."""
    log = topic.logs[0]
    if ask.offsets is not None:
        if len(ask.offsets) > events.MAX_LIMIT:
            raise bad_request(f"at most {events.MAX_LIMIT} offsets per request")
        chosen = [await letter(topic, offset) for offset in sorted(set(ask.offsets))]
        return chosen, (max(ask.offsets) + 1 if ask.offsets else log.start_offset)
    records: list[Record] = []
    position = log.start_offset if ask.from_offset is None else max(ask.from_offset, log.start_offset)
    while len(records) < MAX_REDRIVE and position < log.high_watermark:
        limit = min(events.MAX_LIMIT, MAX_REDRIVE - len(records))
        plan = events.plan_browse(topic, partition=0, offset=position, time=None, key=None, limit=limit)
        page = await events.read_async({0: log}, plan)
        if not page.records:
            break
        records.extend(record for _, record in page.records)
        position = page.next_offsets[0]
    return records, position


def redrive_batch(record: Record) -> tuple[str, bytes] | None:
    """``(original topic, one-record batch)``, or None for a record without the dead-letter headers."""
    original = _text(record, "topic")
    if not original:
        return None
    headers = [(name, value) for name, value in record.headers if not name.startswith(PREFIX)]
    builder = BatchBuilder()
    builder.add(record.value, key=record.key, headers=headers, timestamp=record.timestamp)
    return original, builder.build()


def redrive_batches(records: Iterable[Record]) -> Iterator[tuple[str, tuple[bytes, ...]]]:
    """``(topic, batches)`` to produce, in the letters' order: consecutive letters of one topic together."""
    topic: str | None = None
    run: list[bytes] = []
    for record in records:
        target = redrive_batch(record)
        if target is None:
            continue
        if target[0] != topic or len(run) >= MAX_PRODUCE:
            if topic is not None and run:
                yield topic, tuple(run)
            topic, run = target[0], []
        run.append(target[1])
    if topic is not None and run:
        yield topic, tuple(run)
