"""The two tables Tidings keeps in the service's own database, next to the service's tables.

    tidings_inbox                        one row per event a consumer group has handled
      "group"      varchar(255)  PK      the consumer group (the subscription's group)
      event_id     varchar(255)  PK      the event's CloudEvents id (ce_id)
      handled_at   timestamp             when the handler's transaction recorded it (UTC)

    tidings_outbox                       one row per event to publish, written in the producer's transaction
      id           bigint  PK, autoincrement   publication order (SQLite: AUTOINCREMENT, never reused)
      topic        varchar(255)
      key          bytea/blob, null      the record key (partition and order)
      headers      bytea/blob            msgpack map of str -> bin: the record headers (ce_* and others)
      data         bytea/blob            the record data, as the codec encoded it
      created_at   timestamp             when it was enqueued (UTC)
      published_at timestamp, null       when the broker acknowledged it; null while pending
      index tidings_outbox_pending (id) WHERE published_at IS NULL: the relay's scan

Timestamps are stored as UTC (SQLite has no time zones: naive UTC there)
and always read back as aware UTC datetimes. Headers are msgpack rather
than JSON because header values are bytes. ``metadata.create_all`` makes
both tables when missing; nothing here alters an existing table.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["inbox", "metadata", "outbox", "pack_headers", "unpack_headers"]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every database, SQLite included."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the store keeps aware UTC times")
        utc = value.astimezone(UTC)
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

inbox = sa.Table(
    "tidings_inbox",
    metadata,
    sa.Column("group", sa.String(255), primary_key=True),
    sa.Column("event_id", sa.String(255), primary_key=True),
    sa.Column("handled_at", UTCDateTime(), nullable=False),
)

outbox = sa.Table(
    "tidings_outbox",
    metadata,
    sa.Column(
        "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    ),
    sa.Column("topic", sa.String(255), nullable=False),
    sa.Column("key", sa.LargeBinary(), nullable=True),
    sa.Column("headers", sa.LargeBinary(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("published_at", UTCDateTime(), nullable=True),
    sqlite_autoincrement=True,
)

sa.Index(
    "tidings_outbox_pending",
    outbox.c.id,
    sqlite_where=outbox.c.published_at.is_(None),
    postgresql_where=outbox.c.published_at.is_(None),
)

_headers_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


def pack_headers(headers: dict[str, bytes]) -> bytes:
    return msgspec.msgpack.encode(headers)


def unpack_headers(raw: bytes) -> dict[str, bytes]:
    return _headers_decoder.decode(raw)
