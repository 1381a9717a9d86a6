"""A consumer group as a JetStream durable pull consumer: its configuration, created or updated once.

Each group gets one durable consumer on the topic's stream, named
``naming.consumer_name(group)``; every member pulls from it, and JetStream
hands each message to one member (competing consumers). Its configuration
follows the subscription:

* ``ack_policy`` explicit, ``ack_wait`` = ``ack_deadline``;
* ``max_deliver`` = ``max_deliveries + 1``: the extra delivery never reaches
  the application. The adapter sees that a message came back past
  ``max_deliveries`` (its ack deadline ran out on the last allowed delivery)
  and dead-letters it (``subscription``), so no message leaves the group
  silently, which JetStream alone would do (it only emits an advisory);
* ``max_ack_pending`` = ``config.max_ack_pending`` for the whole group;
* where a *new* group starts: ``earliest`` -> ``DeliverPolicy.ALL``, ``latest``
  -> ``NEW``, an offset -> ``BY_START_SEQUENCE`` (offsets are stream
  sequences, which start at 1), a time -> ``BY_START_TIME``.

An existing consumer keeps its position and start; ``ack_wait``,
``max_deliver`` and ``max_ack_pending`` are updated to the newest
subscription's (JetStream allows editing them), so the last member to join
sets them for the group.
"""

from __future__ import annotations

from datetime import UTC, datetime

from nats.js import JetStreamContext, api
from nats.js import errors as js_errors

from tidings.backends.base import StartPosition
from tidings.backends.nats import naming
from tidings.backends.nats.config import NatsConfig
from tidings.backends.nats.errors import CONSUMER_NOT_FOUND, api_code, retrying, translated
from tidings.errors import UnknownGroup


def start_policy(start: StartPosition) -> dict[str, object]:
    """The ``ConsumerConfig`` fields for a new group's ``start``."""
    if start == "earliest":
        return {"deliver_policy": api.DeliverPolicy.ALL}
    if start == "latest":
        return {"deliver_policy": api.DeliverPolicy.NEW}
    if isinstance(start, datetime):
        moment = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        return {"deliver_policy": api.DeliverPolicy.BY_START_TIME, "opt_start_time": moment.astimezone(UTC)}
    return {"deliver_policy": api.DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": max(1, int(start))}


def consumer_config(
    group: str,
    start: StartPosition,
    ack_deadline: float,
    max_deliveries: int | None,
    config: NatsConfig,
    *,
    name: str | None = None,
    filter_subject: str | None = None,
) -> api.ConsumerConfig:
    """The group's consumer (``name``: of one partition, reading only ``filter_subject``)."""
    name = name or naming.consumer_name(group)
    return api.ConsumerConfig(
        filter_subject=filter_subject,
        name=name,
        durable_name=name,
        description=f"Tidings group {group}",
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_deadline,
        max_deliver=-1 if max_deliveries is None else max_deliveries + 1,
        max_ack_pending=config.max_ack_pending,
        replay_policy=api.ReplayPolicy.INSTANT,
        num_replicas=0,  # the stream's
        metadata={"tidings-group": group},
        **start_policy(start),  # type: ignore[arg-type]
    )


async def ensure_consumer(
    js: JetStreamContext,
    stream: str,
    wanted: api.ConsumerConfig,
    patience: float,
) -> api.ConsumerInfo:
    """The group's consumer: created with ``wanted`` if new, else its settings brought up to date.

    Retried while JetStream is away for up to ``patience`` seconds (``errors.retrying``).
    """
    name = wanted.durable_name or ""

    async def look_up() -> api.ConsumerInfo | None:
        try:
            found: api.ConsumerInfo = await js.consumer_info(stream, name)
        except js_errors.NotFoundError as exc:
            if api_code(exc) != CONSUMER_NOT_FOUND:
                raise
            return None
        return found

    async def create(config: api.ConsumerConfig) -> api.ConsumerInfo:
        created: api.ConsumerInfo = await js.add_consumer(stream, config=config)
        return created

    existing = await retrying(f"looking up consumer {name} on {stream}", look_up, patience)
    if existing is None:
        return await retrying(f"creating consumer {name} on {stream}", lambda: create(wanted), patience)
    current = existing.config
    if (current.ack_wait, current.max_deliver, current.max_ack_pending) == (
        wanted.ack_wait,
        wanted.max_deliver,
        wanted.max_ack_pending,
    ):
        return existing
    updated = current.evolve(
        ack_wait=wanted.ack_wait, max_deliver=wanted.max_deliver, max_ack_pending=wanted.max_ack_pending
    )
    return await retrying(f"updating consumer {name} on {stream}", lambda: create(updated), patience)


async def delete_consumer(js: JetStreamContext, stream: str, name: str) -> bool:
    """Delete the consumer ``name``; False if there is none."""
    try:
        with translated(f"deleting consumer {name} on {stream}"):
            await js.delete_consumer(stream, name)
    except UnknownGroup:
        return False
    return True
