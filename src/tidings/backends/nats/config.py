"""``NatsConfig``: every setting of a ``nats://`` backend, in one typed value.

``open_backend("nats://host:port", service=..., **options)`` takes the fields
below as options; an unknown one raises ``InvalidBackendConfig`` naming the
known ones. Several servers of one cluster: ``nats://a:4222,b:4222``.
User and password in the URL are passed to NATS and never shown
(``redact``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from tidings.backends.base import redact, url_options
from tidings.errors import InvalidBackendConfig

SyncCheck = Literal["warn", "require", "off"]


@dataclass(frozen=True, slots=True)
class NatsConfig:
    """Settings of a ``nats://`` backend."""

    url: str = "nats://127.0.0.1:4222"
    service: str = "python"
    replicas: int = 1
    """Replicas of each stream the backend creates (1 on a single server; 3 on a cluster)."""
    duplicate_window: float = 120.0
    """Seconds JetStream remembers a ``Nats-Msg-Id``: the window of ``dedupe_by_id`` and of retries."""
    partitions: int = 1
    """Partitions of a topic created on first use (``create_topic`` chooses its own)."""
    max_age: float = 0.0
    """Seconds a stream keeps messages (0: no age limit)."""
    max_bytes: int = -1
    """Bytes a stream keeps, oldest dropped first (-1: no limit)."""
    connect_timeout: float = 5.0
    """Seconds ``open`` waits for the server."""
    request_timeout: float = 5.0
    """Seconds one JetStream API call or publish attempt waits for its answer before it is retried."""
    reconnect_timeout: float = 30.0
    """Seconds publishes and acknowledgements keep retrying while the server is away."""
    reconnect_wait: float = 0.25
    """Seconds between reconnection attempts (NATS's default, 2 s, slows recovery after a restart)."""
    pull_expires: float = 5.0
    """Seconds a pull request stays open on the server before the subscription renews it."""
    heartbeat: float = 1.0
    """Seconds between the server's idle heartbeats on an open pull; two missed ones renew the pull."""
    max_ack_pending: int = 10_000
    """Unsettled messages a group may have at once, all members together (JetStream stops delivering)."""
    member_ttl: float = 5.0
    """Seconds after which a silent member of a partitioned group is gone and its partitions move on (the
    lock bucket's age limit, fixed by the first backend that creates it)."""
    monitor_url: str | None = None
    """The server's HTTP monitoring address (``http://host:8222``): its ``sync_interval`` is read there."""
    sync_check: SyncCheck = "warn"
    """At connect: ``warn`` (log a warning) or ``require`` (refuse) when the server does not fsync each write
    (``sync_interval: always``) or it cannot be told; ``off`` skips the check."""

    @classmethod
    def from_url(cls, url: str, *, service: str, **options: Any) -> NatsConfig:
        """``url`` (options may also come as its query: ``?replicas=3``), ``service`` and ``options``
        (field names); ``InvalidBackendConfig`` for a bad one."""
        url, from_query = url_options(url, cls)
        options = {**from_query, **options}
        known = {f.name for f in dataclasses.fields(cls)} - {"url", "service"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise InvalidBackendConfig(
                f"unknown option(s) {', '.join(unknown)} for {redact(url)!r} "
                f"(options: {', '.join(sorted(known))})"
            )
        config = cls(url=url, service=service, **options)
        config.check()
        return config

    def check(self) -> None:
        """``InvalidBackendConfig`` naming the first bad setting."""
        where = redact(self.url)
        problems: Mapping[str, bool] = {
            "replicas must be 1..5": not 1 <= self.replicas <= 5,
            "partitions must be >= 1": self.partitions < 1,
            "duplicate_window must be > 0 seconds": self.duplicate_window <= 0,
            "max_age must be >= 0 seconds": self.max_age < 0,
            "connect_timeout, request_timeout, reconnect_timeout, reconnect_wait, pull_expires, "
            "heartbeat and member_ttl must be > 0 seconds": min(
                self.connect_timeout,
                self.request_timeout,
                self.reconnect_timeout,
                self.reconnect_wait,
                self.pull_expires,
                self.heartbeat,
                self.member_ttl,
            )
            <= 0,
            "heartbeat must be less than half of pull_expires": self.heartbeat * 2 > self.pull_expires,
            "max_ack_pending must be >= 1 or -1": self.max_ack_pending == 0 or self.max_ack_pending < -1,
            "sync_check must be 'warn', 'require' or 'off'": self.sync_check
            not in ("warn", "require", "off"),
        }
        for problem, bad in problems.items():
            if bad:
                raise InvalidBackendConfig(f"nats backend for {where!r}: {problem}")
        servers = self.servers()
        if not servers:
            raise InvalidBackendConfig(f"not a nats:// URL: {where!r}")

    def servers(self) -> list[str]:
        """The server URLs nats-py connects to: one per comma-separated host, credentials kept."""
        parts = urlsplit(self.url)
        if parts.scheme.lower() != "nats":
            return []
        credentials, _, hosts = parts.netloc.rpartition("@")
        prefix = f"nats://{credentials}@" if credentials else "nats://"
        return [prefix + host.strip() for host in hosts.split(",") if host.strip()]
