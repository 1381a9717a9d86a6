"""The service's own database: inbox and outbox tables next to its data (SQLAlchemy 2.0, asyncio).

``Store`` opens it and hands out transactions (``ctx.db`` is one's session);
``inbox`` makes handling effectively once; ``outbox`` and ``OutboxRelay``
publish events written in the same transaction as the changes that caused
them. SQLite (``sqlite:///x.db``) works out of the box; PostgreSQL
(``postgresql://...``) needs the ``postgres`` extra (asyncpg).
"""

from tidings.app.store.outbox import OutboxRow
from tidings.app.store.relay import OutboxRelay, PublishFn, RelayConfig, RelayState, Round
from tidings.app.store.store import Outbox, Store, Transaction
from tidings.app.store.urls import async_url

__all__ = [
    "Outbox",
    "OutboxRelay",
    "OutboxRow",
    "PublishFn",
    "RelayConfig",
    "RelayState",
    "Round",
    "Store",
    "Transaction",
    "async_url",
]
