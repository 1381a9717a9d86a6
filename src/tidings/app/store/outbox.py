"""The outbox: events to publish, written in the same transaction as the writes that caused them.

A service that updates its database and publishes an event must not do one
without the other; a transaction cannot span the database and the broker,
so the event is written into ``tidings_outbox`` in the service's own
transaction (``enqueue``) and ``OutboxRelay`` publishes it later. The
service keeps working while the broker is away; its events wait in the
table.

These are the queries on one ``AsyncSession``, so that
``app.outbox(session)`` works with a session the user made as well as in
the handler's transaction. ``pending`` returns rows in id order; the relay
marks rows with ``mark_published`` only after the broker acknowledged them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, cast

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tidings.app.store.schema import outbox, pack_headers, unpack_headers

__all__ = ["OutboxRow", "enqueue", "mark_published", "pending", "prune_outbox"]

_NOTIFY_KEY: Final = "tidings.outbox.notify"


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event waiting in the outbox."""

    id: int
    topic: str
    key: bytes | None
    headers: dict[str, bytes]
    data: bytes
    created_at: datetime


def _on_commit(session: AsyncSession, notify: Callable[[], None]) -> None:
    """Call ``notify`` once after this session's next commit (the relay's wake-up call)."""
    sync: Session = session.sync_session
    callbacks: list[Callable[[], None]] = sync.info.setdefault(_NOTIFY_KEY, [])
    if notify in callbacks:
        return
    if not callbacks:

        def fire(_: Session) -> None:
            for callback in sync.info.pop(_NOTIFY_KEY, []):
                callback()

        sa_event.listen(sync, "after_commit", fire, once=True)
    callbacks.append(notify)


async def enqueue(
    session: AsyncSession,
    topic: str,
    data: bytes,
    *,
    key: str | bytes | None = None,
    headers: Mapping[str, bytes] | None = None,
    notify: Callable[[], None] | None = None,
    at: datetime | None = None,
) -> int:
    """Add an event to the outbox in this transaction; its row id. ``notify`` runs once it commits."""
    row = {
        "topic": topic,
        "key": key.encode("utf-8") if isinstance(key, str) else key,
        "headers": pack_headers(dict(headers or {})),
        "data": bytes(data),
        "created_at": at or datetime.now(UTC),
        "published_at": None,
    }
    result = cast("CursorResult[Any]", await session.execute(sa.insert(outbox).values(row)))
    if notify is not None:
        _on_commit(session, notify)
    primary_key = result.inserted_primary_key
    assert primary_key is not None, "an INSERT reports the key it made"
    return int(primary_key[0])


async def pending(session: AsyncSession, limit: int) -> list[OutboxRow]:
    """Up to ``limit`` unpublished rows, lowest id first."""
    query = (
        sa.select(
            outbox.c.id, outbox.c.topic, outbox.c.key, outbox.c.headers, outbox.c.data, outbox.c.created_at
        )
        .where(outbox.c.published_at.is_(None))
        .order_by(outbox.c.id)
        .limit(limit)
    )
    rows = (await session.execute(query)).all()
    return [
        OutboxRow(
            id=int(r.id),
            topic=r.topic,
            key=bytes(r.key) if r.key is not None else None,
            headers=unpack_headers(bytes(r.headers)),
            data=bytes(r.data),
            created_at=r.created_at,
        )
        for r in rows
    ]


async def count_pending(session: AsyncSession) -> int:
    query = sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
    return int((await session.execute(query)).scalar_one())


async def mark_published(session: AsyncSession, ids: Iterable[int], *, at: datetime | None = None) -> None:
    """Mark rows as acknowledged by the broker."""
    chosen = sorted(set(ids))
    moment = at or datetime.now(UTC)
    for start in range(0, len(chosen), 500):  # keep each statement's parameter list bounded
        chunk = chosen[start : start + 500]
        await session.execute(sa.update(outbox).where(outbox.c.id.in_(chunk)).values(published_at=moment))


async def prune_outbox(session: AsyncSession, before: datetime) -> int:
    """Delete rows published before ``before`` (pending rows are never deleted); how many went."""
    query = sa.delete(outbox).where(outbox.c.published_at.is_not(None), outbox.c.published_at < before)
    return cast("CursorResult[Any]", await session.execute(query)).rowcount
