"""The inbox: which events a consumer group has handled, recorded in the handler's own transaction.

Effectively-once processing on an at-least-once stream: the handler runner
opens a transaction, calls ``mark_handled(session, group, event_id)`` FIRST,
and runs the handler only when it returns True; the handler's writes and the
inbox row then commit or roll back together. A redelivered event finds its
row and is acked without running the handler again; a handler that raised
rolled its inbox row back with its writes, so the retry runs it afresh.

Why mark first rather than check first and mark at the end: the primary key
(group, event_id) is the guard, and claiming it up front makes a concurrent
duplicate (two members of a group given the same event during a rebalance)
wait on the row lock and then find the row, instead of both running the
handler and one failing at commit. The insert is ``INSERT ... ON CONFLICT DO
NOTHING`` on SQLite and PostgreSQL, and a savepoint that catches the
IntegrityError elsewhere, so a duplicate never aborts the transaction.

The inbox grows by one row per handled event; ``prune_inbox`` removes rows
older than a cutoff. Keep them longer than an event can be redelivered
(the broker's retention and its longest nack delay).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.app.store.schema import inbox

__all__ = ["already_handled", "mark_handled", "prune_inbox"]


async def already_handled(session: AsyncSession, group: str, event_id: str) -> bool:
    """Whether ``group`` recorded ``event_id`` as handled (committed, or earlier in this transaction)."""
    query = sa.select(sa.literal(1)).where(inbox.c.group == group, inbox.c.event_id == event_id).limit(1)
    return (await session.execute(query)).first() is not None


async def mark_handled(
    session: AsyncSession, group: str, event_id: str, *, at: datetime | None = None
) -> bool:
    """Record ``event_id`` as handled by ``group`` in this transaction: True, or False if it already was."""
    values = {"group": group, "event_id": event_id, "handled_at": at or datetime.now(UTC)}
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(inbox)
        result = cast(
            "CursorResult[Any]", await session.execute(insert.values(values).on_conflict_do_nothing())
        )
        return result.rowcount == 1
    try:
        async with session.begin_nested():
            await session.execute(sa.insert(inbox).values(values))
    except IntegrityError:
        return False
    return True


async def prune_inbox(session: AsyncSession, before: datetime) -> int:
    """Delete inbox rows handled before ``before``; how many went."""
    result = cast(
        "CursorResult[Any]", await session.execute(sa.delete(inbox).where(inbox.c.handled_at < before))
    )
    return result.rowcount
