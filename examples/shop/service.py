"""What every shop service shares: its App on its own SQLite database, with its own tables made first.

``Store.open`` makes only Tidings' inbox and outbox tables; a service's tables must exist before its
first handler runs, or that handler fails and is retried. ``ServiceApp.start`` makes them first, so
``TestApp`` (which calls ``start``) and ``run_shop`` get the same ready database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tidings.app import App
from tidings.app.store.urls import async_url

__all__ = ["ServiceApp", "create_tables", "from_env", "sqlite_url"]

DEFAULT_BROKER = "tidings://127.0.0.1:7400"
DEFAULT_DATA = ".shop"


def from_env() -> tuple[str, Path]:
    """``(broker, data_dir)`` of a service started by ``tidings run``: ``$TIDINGS_URL``, ``$SHOP_DATA``."""
    return os.environ.get("TIDINGS_URL", DEFAULT_BROKER), Path(os.environ.get("SHOP_DATA", DEFAULT_DATA))


def sqlite_url(data_dir: Path, name: str) -> str:
    """``sqlite:///<data_dir>/<name>.db``: one database file per service, never shared."""
    return f"sqlite:///{Path(data_dir) / name}.db"


async def create_tables(store_url: str, metadata: sa.MetaData) -> None:
    """Make ``metadata``'s tables in the database at ``store_url`` when missing."""
    engine = create_async_engine(async_url(store_url))
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
    finally:
        await engine.dispose()


class ServiceApp(App):
    """An ``App`` whose database is ``<data_dir>/<name>.db`` and whose ``tables`` exist before it starts."""

    def __init__(
        self, name: str, *, broker: str, data_dir: Path, tables: sa.MetaData, **options: Any
    ) -> None:
        super().__init__(name, broker=broker, store=sqlite_url(data_dir, name), **options)
        self.tables = tables
        self.data_dir = Path(data_dir)

    async def start(self) -> None:
        assert self.store_url is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        await create_tables(self.store_url, self.tables)
        await super().start()
