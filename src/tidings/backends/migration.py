"""Copying history between backends: every topic's events, keys, headers and times, resumably.

``tidings migrate --from tidings://... --to nats://...`` is how a team moves
from the embedded broker to NATS or Redis (or back) without losing the
replayable past: a service started on the new backend with
``start="earliest"`` rebuilds the same state it would have on the old one.

How it copies one topic, using only the backend contract:

* the destination topic is created with the source's partition count, so a
  key lands on the partition it had (every backend partitions keys with
  ``tidings.records.partition_for_key``);
* the source is read by a consumer group of the migration's own
  (``tidings-migrate`` unless told otherwise), ``partitioned``, from
  ``earliest``: events come in order per partition, hence per key;
* events are written in batches with ``publish_batch`` keeping the data,
  key, headers, ``msg_id`` and the producer's time (``Delivery.timestamp``);
  the destination's ``append_time`` is its own clock, so a replay *by time*
  on the destination counts from the migration (the framework's ``ctx.now()``
  reads the event's own time from its CloudEvents header and is unaffected);
* only once the destination stored a batch are its events acked on the
  source: the group's committed position is the migration's checkpoint, so
  an interrupted migration resumes where it stopped. At most the last batch
  is written twice after a crash; an event without a ``msg_id`` gets one
  (``migrate:<topic>:<partition>:<offset>``), so a destination that
  deduplicates by id (NATS, Redis) stores it once even then;
* a topic is done when every partition delivered its last event as of the
  start (``topic_end_offsets``), or had been copied that far by an earlier
  run (the group's committed offset reached it: the rule ``tidings replay``
  stops by too); events published meanwhile are left for a second run (or
  for the services, once they moved).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from tidings.backends.base import Admin, Backend, Delivery, OutgoingMessage, Subscription
from tidings.errors import InvalidArgument, TopicExists

__all__ = ["DEFAULT_GROUP", "Progress", "TopicCopy", "copy_topic", "plan"]

DEFAULT_GROUP: Final = "tidings-migrate"
IDLE: Final = 0.05
"""Seconds without a delivery after which a partial batch is written."""


@dataclass(slots=True)
class TopicCopy:
    """One topic to copy: its partitions and the source's end offsets at the start."""

    topic: str
    partitions: int
    head: dict[int, int]


@dataclass(slots=True)
class Progress:
    """What a copy did so far (``on_batch`` is told after each batch is stored and acked)."""

    copied: int = 0
    batches: int = 0
    topics_done: list[str] = field(default_factory=list)


def _admin(backend: Backend, role: str) -> Admin:
    if not isinstance(backend, Admin):
        raise InvalidArgument(f"{backend.url} cannot be migrated {role}: its backend has no Admin interface")
    return backend


async def plan(source: Backend, topics: Sequence[str] | None = None) -> list[TopicCopy]:
    """The topics to copy (all, or those named), with their partitions and end offsets now."""
    admin = _admin(source, "from")
    available = await admin.list_topics()
    chosen = sorted(available) if topics is None else list(topics)
    missing = [t for t in chosen if t not in available]
    if missing:
        raise InvalidArgument(f"no such topic on {source.url}: {', '.join(missing)}")
    return [TopicCopy(t, available[t], await admin.topic_end_offsets(t)) for t in chosen]


async def copy_topic(
    source: Backend,
    destination: Backend,
    copy: TopicCopy,
    *,
    group: str = DEFAULT_GROUP,
    batch_size: int = 500,
    progress: Progress | None = None,
    on_batch: Callable[[Progress], None] | None = None,
) -> Progress:
    """Copy ``copy.topic`` up to its head at planning time (see the module docstring)."""
    if batch_size < 1:
        raise InvalidArgument(f"batch_size must be >= 1, not {batch_size}")
    progress = progress or Progress()
    await _ensure_topic(_admin(destination, "to"), copy)
    # A partition is done when the group's committed position reached its head: an earlier run
    # copied it all (it will deliver nothing more), or it is empty.
    committed = await _admin(source, "from").group_offsets(group, copy.topic)
    remaining = {p for p, end in copy.head.items() if end > 0 and committed.get(p, 0) < end}
    if not remaining:
        progress.topics_done.append(copy.topic)
        return progress
    subscription = await source.subscribe(
        copy.topic,
        group=group,
        mode="partitioned",
        start="earliest",
        prefetch=batch_size,
        ack_deadline=300.0,
        max_deliveries=None,
        requests=False,
    )
    try:
        while remaining:
            batch = await _next_batch(subscription, batch_size)
            if not batch:
                continue
            await destination.publish_batch(copy.topic, [_outgoing(d) for d in batch])
            for delivery in batch:
                await delivery.ack()
                if delivery.offset >= copy.head.get(delivery.partition, 0) - 1:
                    remaining.discard(delivery.partition)
            progress.copied += len(batch)
            progress.batches += 1
            if on_batch is not None:
                on_batch(progress)
    finally:
        await subscription.close()
    progress.topics_done.append(copy.topic)
    return progress


async def _ensure_topic(admin: Admin, copy: TopicCopy) -> None:
    """The destination topic with the source's partitions; an existing one must have as many."""
    with contextlib.suppress(TopicExists):
        await admin.create_topic(copy.topic, partitions=copy.partitions)
        return
    existing = (await admin.list_topics()).get(copy.topic)
    if existing is not None and existing != copy.partitions:
        raise InvalidArgument(
            f"{copy.topic} has {existing} partitions at the destination and {copy.partitions} at the "
            "source: keys would land on other partitions and lose their order"
        )


async def _next_batch(subscription: Subscription, size: int) -> list[Delivery]:
    """Up to ``size`` deliveries: the first waited for, the rest while they keep coming."""
    batch = [await anext(subscription)]
    while len(batch) < size:
        try:
            batch.append(await asyncio.wait_for(anext(subscription), IDLE))
        except TimeoutError:
            break
    return batch


def _outgoing(delivery: Delivery) -> OutgoingMessage:
    msg_id = delivery.msg_id or f"migrate:{delivery.topic}:{delivery.partition}:{delivery.offset}"
    return OutgoingMessage(
        delivery.data,
        key=delivery.key,
        headers=dict(delivery.headers),
        msg_id=msg_id,
        timestamp=delivery.timestamp,
    )
