"""``Store``: the service's own database, and the transaction a handler runs in.

    store = await Store.open("sqlite:///inventory.db")      # or postgresql://...
    async with store.transaction() as tx:                    # commits on exit, rolls back on error
        if await tx.mark_handled("inventory", event_id):     # the inbox (tidings.app.store.inbox)
            tx.session.add(Reservation(...))                 # the service's own writes: tx.session is ctx.db
            await tx.enqueue("stock.reserved", data, key=..., headers=...)   # the outbox
    await store.close()

``tx.session`` is a SQLAlchemy 2.0 ``AsyncSession`` (``expire_on_commit=False``)
inside one database transaction: the handler's writes, the inbox row and the
outbox rows commit together or not at all. The tables are made on ``open``
when missing (``tidings.app.store.schema``).

SQLite specifics, each for a reason:
* ``BEGIN IMMEDIATE``: a transaction takes SQLite's write lock when it
  begins, so one that reads and then writes can never fail half way with
  "database is locked" (SQLITE_BUSY_SNAPSHOT); writers queue instead.
* transactions of one ``Store`` are also serialised by an asyncio lock, so
  they queue on the event loop instead of in SQLite's busy handler, and an
  in-memory database (one shared connection) works for tests.
* WAL journal for files: readers in other processes do not block the writer.
  ``synchronous`` stays at SQLite's default (FULL): a committed outbox row
  survives a power cut, as a published event would.
PostgreSQL runs at its default READ COMMITTED; the inbox needs no more (see
``inbox``).

After a transaction that enqueued commits, the store wakes its relays
(``waiter``); a relay also polls, for rows written by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import StaticPool

from tidings.app.store import inbox as _inbox
from tidings.app.store import outbox as _outbox
from tidings.app.store.outbox import OutboxRow
from tidings.app.store.schema import metadata
from tidings.app.store.urls import async_url, is_memory_sqlite
from tidings.errors import StoreError

__all__ = ["Store", "Transaction"]


class Transaction:
    """One open transaction of the store: ``session`` plus the inbox and outbox calls bound to it."""

    __slots__ = ("_store", "enqueued", "session")

    def __init__(self, session: AsyncSession, store: Store) -> None:
        self.session = session
        self._store = store
        self.enqueued = 0

    def __repr__(self) -> str:
        return f"<Transaction {self._store.url.get_backend_name()} enqueued={self.enqueued}>"

    async def already_handled(self, group: str, event_id: str) -> bool:
        return await _inbox.already_handled(self.session, group, event_id)

    async def mark_handled(self, group: str, event_id: str) -> bool:
        """Claim ``event_id`` for ``group``: True to run the handler, False for a redelivered duplicate."""
        return await _inbox.mark_handled(self.session, group, event_id)

    async def enqueue(
        self,
        topic: str,
        data: bytes,
        key: str | bytes | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> int:
        """Put an event in the outbox, in this transaction; the relay publishes it after the commit."""
        row_id = await _outbox.enqueue(
            self.session, topic, data, key=key, headers=headers, notify=self._store.notify
        )
        self.enqueued += 1
        return row_id


class Store:
    """The service's database: open it once per service, share it between handlers and the relay."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.url: URL = engine.url
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._serial = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self._waiters: set[asyncio.Event] = set()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Store {self.url.render_as_string(hide_password=True)} {state}>"

    @classmethod
    async def open(cls, url: str | URL, *, create_tables: bool = True, **engine_options: Any) -> Store:
        """Connect to ``url`` (see ``tidings.app.store.urls``), making the Tidings tables if asked.

        ``engine_options`` go to ``create_async_engine`` (``pool_size``, ``echo``...).
        ``StoreError`` when the URL, the driver or the database is not usable.
        """
        target = async_url(url)
        _check_sqlite_directory(target)
        try:
            engine = create_async_engine(target, **_engine_defaults(target), **engine_options)
        except (SQLAlchemyError, ImportError, ValueError) as exc:
            raise StoreError(
                f"cannot use store {target.render_as_string(hide_password=True)}: {exc}"
            ) from exc
        if engine.dialect.name == "sqlite":
            _sqlite_transactions(engine, wal=not is_memory_sqlite(target))
        store = cls(engine)
        if create_tables:
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(metadata.create_all)
            except (SQLAlchemyError, OSError) as exc:
                await engine.dispose()
                where = target.render_as_string(hide_password=True)
                raise StoreError(f"cannot open store {where}: {exc}") from exc
        return store

    async def close(self) -> None:
        self._closed = True
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """A transaction that commits when the block ends and rolls back if it raises."""
        async with contextlib.AsyncExitStack() as stack:
            if self._serial is not None:
                await stack.enter_async_context(self._serial)
            session = await stack.enter_async_context(self._sessions())
            await stack.enter_async_context(session.begin())
            yield Transaction(session, self)

    def session(self) -> AsyncSession:
        """A new session of the store's engine, for code that manages its own transactions."""
        return self._sessions()

    # -- the outbox, for relays and operators -----------------------------------------------

    def outbox(self, session: AsyncSession) -> Outbox:
        """Write outbox rows in a session the caller owns (``app.outbox(session)``)."""
        return Outbox(self, session)

    async def pending(self, limit: int) -> list[OutboxRow]:
        async with self.transaction() as tx:
            return await _outbox.pending(tx.session, limit)

    async def count_pending(self) -> int:
        async with self.transaction() as tx:
            return await _outbox.count_pending(tx.session)

    async def mark_published(self, ids: list[int]) -> None:
        async with self.transaction() as tx:
            await _outbox.mark_published(tx.session, ids)

    async def prune(
        self, *, outbox_before: datetime | None = None, inbox_before: datetime | None = None
    ) -> int:
        """Delete published outbox rows and inbox rows older than the given times; how many went."""
        removed = 0
        async with self.transaction() as tx:
            if outbox_before is not None:
                removed += await _outbox.prune_outbox(tx.session, outbox_before)
            if inbox_before is not None:
                removed += await _inbox.prune_inbox(tx.session, inbox_before)
        return removed

    # -- waking relays ------------------------------------------------------------------------

    def waiter(self) -> asyncio.Event:
        """An event set after every commit that enqueued (one per relay; ``forget`` it when done)."""
        waiter = asyncio.Event()
        self._waiters.add(waiter)
        return waiter

    def forget(self, waiter: asyncio.Event) -> None:
        self._waiters.discard(waiter)

    def notify(self) -> None:
        for waiter in self._waiters:
            waiter.set()


class Outbox:
    """``store.outbox(session)``: enqueue into a transaction the caller owns and commits."""

    __slots__ = ("_session", "_store")

    def __init__(self, store: Store, session: AsyncSession) -> None:
        self._store = store
        self._session = session

    async def enqueue(
        self,
        topic: str,
        data: bytes,
        key: str | bytes | None = None,
        headers: Mapping[str, bytes] | None = None,
    ) -> int:
        return await _outbox.enqueue(
            self._session, topic, data, key=key, headers=headers, notify=self._store.notify
        )


def _check_sqlite_directory(url: URL) -> None:
    """A SQLite file whose directory is missing fails here, clearly, rather than deep in the driver."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or database.startswith("file:"):
        return
    if not Path(database).parent.is_dir():
        raise StoreError(f"cannot open store {url}: directory {Path(database).parent} does not exist")


def _engine_defaults(url: URL) -> dict[str, Any]:
    if is_memory_sqlite(url):
        return {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 30.0}}  # seconds another process may hold the write lock
    return {"pool_pre_ping": True}


def _sqlite_transactions(engine: AsyncEngine, *, wal: bool) -> None:
    """Let SQLAlchemy, not the sqlite3 module, start transactions, and start them IMMEDIATE."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the sqlite3 module stops issuing its own BEGIN
        if wal:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

    def on_begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    sa_event.listen(engine.sync_engine, "connect", on_connect)
    sa_event.listen(engine.sync_engine, "begin", on_begin)
