"""The store's URL: what users write (``sqlite:///inventory.db``) to what SQLAlchemy's asyncio needs.

    written                         used
    sqlite:///inventory.db          sqlite+aiosqlite:///inventory.db    (relative to the working directory)
    sqlite:////var/lib/x.db         sqlite+aiosqlite:////var/lib/x.db   (absolute)
    sqlite:// or sqlite:///:memory: sqlite+aiosqlite:// (one in-memory database, for tests)
    postgresql://u:p@host/db        postgresql+asyncpg://u:p@host/db
    postgres://u:p@host/db          postgresql+asyncpg://u:p@host/db    (the libpq/Heroku spelling)

A URL that already names an asyncio driver (``sqlite+aiosqlite``,
``postgresql+asyncpg``, ``postgresql+psycopg``, ``mysql+aiomysql``...) is
used as it is; one naming a blocking driver (``postgresql+psycopg2``,
``sqlite+pysqlite``) is refused, because the App runs on one event loop.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from tidings.errors import StoreError

__all__ = ["async_url", "is_memory_sqlite"]

_ASYNC_DEFAULT: Final = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}
_BLOCKING: Final = frozenset(
    {"sqlite+pysqlite", "postgresql+psycopg2", "postgresql+pg8000", "postgres+psycopg2", "mysql+pymysql"}
)


def async_url(url: str | URL) -> URL:
    """``url`` with an asyncio driver (table above); ``StoreError`` if it is not a database URL."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise StoreError(f"not a database URL: {url!r} (try sqlite:///service.db)") from exc
    driver = parsed.drivername
    if driver in _BLOCKING:
        raise StoreError(
            f"{driver} is a blocking driver; the store needs an asyncio one (write {parsed.get_backend_name()}://...)"
        )
    if driver in _ASYNC_DEFAULT:
        parsed = parsed.set(drivername=_ASYNC_DEFAULT[driver])
    if parsed.get_backend_name() == "sqlite" and parsed.database == ":memory:":
        parsed = parsed._replace(database=None)  # URL.set treats None as "leave it"
    return parsed


def is_memory_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and not url.database
