"""The service's own database, on SQLite and PostgreSQL: the inbox (effectively once) and the outbox."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from tidings.app.store import Store, async_url
from tidings.app.store.schema import inbox, outbox
from tidings.errors import StoreError

# The service's own table, in its own metadata: Tidings' tables live beside it.
service = sa.MetaData()
stock = sa.Table(
    "stock",
    service,
    sa.Column("sku", sa.String(50), primary_key=True),
    sa.Column("reserved", sa.Integer, nullable=False),
)


async def prepare(store: Store) -> None:
    async with store.engine.begin() as conn:
        await conn.run_sync(service.create_all)
    async with store.transaction() as tx:
        await tx.session.execute(sa.insert(stock).values(sku="tea", reserved=0))


async def reserved(store: Store, sku: str = "tea") -> int:
    async with store.transaction() as tx:
        return int(
            (await tx.session.execute(sa.select(stock.c.reserved).where(stock.c.sku == sku))).scalar_one()
        )


async def handle(store: Store, group: str, event_id: str, qty: int, *, fail: bool = False) -> bool:
    """What the App's handler runner does with one delivery: claim it in the inbox, then run the handler."""
    async with store.transaction() as tx:
        if not await tx.mark_handled(group, event_id):
            return False  # a redelivered duplicate: ack it, do not run the handler
        await tx.session.execute(
            sa.update(stock).where(stock.c.sku == "tea").values(reserved=stock.c.reserved + qty)
        )
        await tx.enqueue(
            "stock.reserved", b'{"qty":%d}' % qty, key="tea", headers={"ce_id": event_id.encode()}
        )
        if fail:
            raise RuntimeError("the handler failed after writing")
    return True


async def test_open_makes_the_tidings_tables(store):
    async with store.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    assert {"tidings_inbox", "tidings_outbox"} <= set(names)
    again = await Store.open(store.url)  # opening again leaves them as they are
    await again.close()


async def test_a_redelivered_event_is_applied_once(store):
    await prepare(store)
    assert await handle(store, "inventory", "e-1", 2) is True
    assert await handle(store, "inventory", "e-1", 2) is False  # redelivery: skipped
    assert await reserved(store) == 2
    assert await store.count_pending() == 1  # and its outbox row was written once
    async with store.transaction() as tx:
        assert await tx.already_handled("inventory", "e-1")
        assert not await tx.already_handled("shipping", "e-1")  # per group: every group handles it


async def test_another_group_handles_the_same_event_again(store):
    await prepare(store)
    assert await handle(store, "inventory", "e-1", 2)
    assert await handle(store, "audit", "e-1", 2)
    assert await reserved(store) == 4


async def test_a_failing_handler_rolls_back_its_writes_its_outbox_rows_and_the_inbox_mark(store):
    await prepare(store)
    with pytest.raises(RuntimeError):
        await handle(store, "inventory", "e-1", 2, fail=True)
    assert await reserved(store) == 0
    assert await store.count_pending() == 0
    async with store.transaction() as tx:
        assert not await tx.already_handled("inventory", "e-1")
    assert await handle(store, "inventory", "e-1", 2) is True  # so the retry runs it
    assert await reserved(store) == 2


async def test_concurrent_duplicates_apply_once(store):
    """Two deliveries of one event at the same time (a rebalance): one runs, the other sees the row."""
    await prepare(store)
    results = await asyncio.gather(*(handle(store, "inventory", "e-1", 1) for _ in range(8)))
    assert sorted(results) == [False] * 7 + [True]
    assert await reserved(store) == 1


async def test_many_events_in_parallel_each_apply_once(store):
    await prepare(store)
    ids = [f"e-{n}" for n in range(40)]
    first = await asyncio.gather(*(handle(store, "inventory", i, 1) for i in ids))
    second = await asyncio.gather(*(handle(store, "inventory", i, 1) for i in ids))
    assert all(first) and not any(second)
    assert await reserved(store) == 40


async def test_outbox_rows_keep_topic_key_headers_data_in_id_order(store):
    async with store.transaction() as tx:
        first = await tx.enqueue(
            "orders.placed", b"one", key="k1", headers={"ce_id": b"1", "bin": b"\x00\xff"}
        )
        second = await tx.enqueue("orders.placed", b"two")
        assert tx.enqueued == 2
    assert second > first
    rows = await store.pending(10)
    assert [(r.id, r.topic, r.key, r.headers, r.data) for r in rows] == [
        (first, "orders.placed", b"k1", {"ce_id": b"1", "bin": b"\x00\xff"}, b"one"),
        (second, "orders.placed", None, {}, b"two"),
    ]
    assert rows[0].created_at.tzinfo is not None
    assert (await store.pending(1))[0].id == first
    await store.mark_published([first])
    assert [r.id for r in await store.pending(10)] == [second]


async def test_outbox_in_a_session_the_caller_owns(store):
    waiter = store.waiter()
    async with store.session() as session, session.begin():
        await store.outbox(session).enqueue("audit", b"x", key=b"k")
        assert not waiter.is_set()  # not before the commit
    assert waiter.is_set()  # the relay is woken by the commit
    async with store.session() as session, session.begin():
        await store.outbox(session).enqueue("audit", b"y")
        await session.rollback()
    assert [r.data for r in await store.pending(10)] == [b"x"]


async def test_a_commit_that_enqueued_wakes_the_relays_and_one_that_did_not_does_not(store):
    waiter = store.waiter()
    async with store.transaction() as tx:
        await tx.already_handled("g", "e")
    assert not waiter.is_set()
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.enqueue("t", b"d")
            raise RuntimeError
    assert not waiter.is_set()
    async with store.transaction() as tx:
        await tx.enqueue("t", b"d")
    assert waiter.is_set()
    store.forget(waiter)


async def test_prune_removes_old_published_rows_and_old_inbox_rows_only(store):
    async with store.transaction() as tx:
        await tx.mark_handled("g", "old")
        published = await tx.enqueue("t", b"published")
        await tx.enqueue("t", b"pending")
    await store.mark_published([published])
    later = datetime.now(UTC) + timedelta(seconds=5)
    assert await store.prune(outbox_before=later, inbox_before=later) == 2
    assert [r.data for r in await store.pending(10)] == [b"pending"]
    async with store.transaction() as tx:
        assert (await tx.session.execute(sa.select(sa.func.count()).select_from(inbox))).scalar_one() == 0
        assert (await tx.session.execute(sa.select(sa.func.count()).select_from(outbox))).scalar_one() == 1


async def test_sqlite_in_memory_works_for_tests():
    store = await Store.open("sqlite:///:memory:")
    try:
        await prepare(store)
        results = await asyncio.gather(*(handle(store, "g", "e-1", 1) for _ in range(3)))
        assert sorted(results) == [False, False, True]
        assert await reserved(store) == 1
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("written", "used"),
    [
        ("sqlite:///inventory.db", "sqlite+aiosqlite:///inventory.db"),
        ("sqlite:////var/lib/x.db", "sqlite+aiosqlite:////var/lib/x.db"),
        ("sqlite:///:memory:", "sqlite+aiosqlite://"),
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://u:p@db:5432/inv", "postgresql+asyncpg://u:p@db:5432/inv"),
        ("postgres://u@db/inv", "postgresql+asyncpg://u@db/inv"),
        ("postgresql+asyncpg://u@db/inv", "postgresql+asyncpg://u@db/inv"),
        ("postgresql+psycopg://u@db/inv", "postgresql+psycopg://u@db/inv"),
    ],
)
def test_user_friendly_urls_map_to_asyncio_drivers(written, used):
    assert async_url(written).render_as_string(hide_password=False) == used


@pytest.mark.parametrize("url", ["postgresql+psycopg2://u@db/x", "sqlite+pysqlite:///x.db", "not a url"])
def test_blocking_drivers_and_nonsense_are_refused(url):
    with pytest.raises(StoreError):
        async_url(url)


async def test_an_unreachable_database_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="cannot"):
        await Store.open("postgresql://nobody@127.0.0.1:1/none", connect_args={"timeout": 2})
    with pytest.raises(StoreError):
        await Store.open(f"sqlite:///{tmp_path}/missing-dir/x.db")
