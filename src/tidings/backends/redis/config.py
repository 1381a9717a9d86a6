"""``RedisConfig``: every setting of a ``redis://`` backend, one typed dataclass.

``open_backend("redis://host:port/db", service=..., **options)`` takes the
fields below as ``options``; an unknown one raises ``InvalidBackendConfig``
naming the known ones. The URL is redis-py's (``redis://[user:password@]host
:port/db``); the password never shows in ``repr`` or messages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tidings.backends.base import redact, url_options
from tidings.errors import InvalidBackendConfig


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """Settings of a ``redis://`` backend. Durations are seconds."""

    url: str = "redis://127.0.0.1:6379/0"
    service: str = "python"
    prefix: str = "tidings:"
    """Put before every key and channel, so several applications can share one Redis database."""
    retention: int | None = None
    """Keep at most this many messages per partition (``XADD MAXLEN``, exact); None keeps everything."""
    dedupe_window: float = 120.0
    """How long a ``msg_id`` (and the id of every publish, for retries) is remembered: one small key each."""
    connect_timeout: float = 5.0
    reconnect_timeout: float = 30.0
    """How long publishes and requests wait for a lost server to come back before ``ConnectionLost``."""
    block_interval: float = 0.5
    """The longest one ``XREADGROUP BLOCK`` waits, so subscriptions notice partition changes and close."""
    reclaim_interval: float = 1.0
    """The most time between two looks for messages past their ack deadline or due after a nack
    (never more than half the subscription's ``ack_deadline``)."""
    lease_ttl: float = 10.0
    """Partitioned groups: a member that stops renewing its partitions loses them after this long."""
    rebalance_interval: float = 0.2
    """Partitioned groups: how often a member renews its leases and looks for members joining or leaving."""
    rebalance_timeout: float = 5.0
    """Partitioned groups: how long ``subscribe`` waits to own its share of the partitions."""
    pattern_rescan_interval: float = 5.0
    """Pattern subscriptions: how often to look for matching topics whose announcement was missed."""
    warn_not_durable: bool = True
    """Log a warning at ``open`` when the server may lose acknowledged writes (see ``durability``)."""

    def __post_init__(self) -> None:
        shown = redact(self.url)
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("redis", "rediss", "unix"):
            raise InvalidBackendConfig(f"not a redis URL: {shown!r} (expected redis://host:port/db)")
        if not self.prefix or any(c in self.prefix for c in "{} "):
            raise InvalidBackendConfig(
                f"prefix must be non-empty without braces or spaces, not {self.prefix!r}"
            )
        if self.retention is not None and self.retention < 1:
            raise InvalidBackendConfig(
                f"retention keeps at least 1 message per partition, not {self.retention}"
            )
        for name in (
            "dedupe_window",
            "connect_timeout",
            "reconnect_timeout",
            "block_interval",
            "reclaim_interval",
            "lease_ttl",
            "rebalance_interval",
            "rebalance_timeout",
            "pattern_rescan_interval",
        ):
            if not getattr(self, name) > 0:
                raise InvalidBackendConfig(f"{name} must be > 0 seconds, not {getattr(self, name)!r}")
        if self.rebalance_interval * 2 >= self.lease_ttl:
            raise InvalidBackendConfig(
                f"rebalance_interval ({self.rebalance_interval}) must be under half of lease_ttl "
                f"({self.lease_ttl}), or leases lapse between renewals"
            )

    @classmethod
    def from_url(cls, url: str, *, service: str, **options: Any) -> RedisConfig:
        """``url`` (options may also come as its query: ``?retention=100000``), ``service`` and
        ``options`` (field names); ``InvalidBackendConfig`` for an unknown one."""
        url, from_query = url_options(url, cls)
        options = {**from_query, **options}
        cls.check_options(options, redact(url))
        try:
            return cls(url=url, service=service, **options)
        except TypeError as exc:  # a value of the wrong type reaching a comparison
            raise InvalidBackendConfig(f"redis backend for {redact(url)!r}: {exc}") from exc

    @classmethod
    def check_options(cls, options: Mapping[str, Any], where: str) -> None:
        known = {f.name for f in dataclasses.fields(cls)} - {"url", "service"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidBackendConfig(
                f"unknown option(s) {', '.join(unknown)} for {where!r} (options: {', '.join(sorted(known))})"
            )
