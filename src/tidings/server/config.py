"""``BrokerConfig``: every setting of a broker, from defaults, a TOML file and command-line flags.

Precedence: a flag given on the command line beats the file, which beats the
default. The file holds the same keys as the dataclass, at the top level or
in a ``[broker]`` table (``-`` and ``_`` are interchangeable in keys)::

    host = "0.0.0.0"
    port = 7400
    http_port = 7401                # the HTTP API; http = false turns it off
    data_dir = "/var/lib/tidings"
    fsync = "interval:50"
    default_partitions = 3
    retention_ms = 604800000

Every value is checked once, in ``validate``; a bad one raises
``BrokerConfigError`` naming the key, where it came from and what is
allowed. Nothing downstream re-checks.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from tidings.core.broker import CoreConfig
from tidings.core.topic_config import MIN_SEGMENT_BYTES, TopicDefaults
from tidings.core.topics import MAX_PARTITIONS, TopicPolicy
from tidings.errors import BrokerConfigError, StorageError
from tidings.protocol.values import MAX_FRAME_SIZE_LIMIT, MIN_FRAME_SIZE
from tidings.storage import FsyncPolicy

MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    host: str = "127.0.0.1"
    """Loopback by default: exposing a broker is a decision, not an accident."""
    port: int = 7400
    """0 picks a free port (the ready line says which)."""
    http_port: int = 7401
    """The HTTP API (JSON under ``/api/``, ``/metrics``, health), on ``host`` too; 0 picks a free port."""
    http: bool = True
    """Serve the HTTP API at all (``tidings broker --no-http`` turns it off)."""
    data_dir: str = "./.tidings"
    fsync: str = "always"
    """``always`` (group commit), ``interval:MS`` or ``never``; a topic may override it."""
    default_partitions: int = 1
    auto_create_topics: bool = True
    max_frame_size: int = 8 * MiB
    retention_ms: int | None = None
    retention_bytes: int | None = None
    segment_bytes: int = 128 * MiB
    segment_ms: int = 7 * 24 * 3600 * 1000
    auth_token: str | None = None
    """When set, a Hello must carry this token."""
    write_buffer_high: int = 8 * MiB
    """Above this many bytes queued for a client, stop reading from it until it catches up."""
    write_buffer_low: int = 2 * MiB
    slow_consumer_timeout_ms: int = 30_000
    """A client whose queued bytes stay above the high-water mark this long is disconnected."""
    max_inflight_produce_bytes: int = 64 * MiB
    """Per connection: batches written but not yet durable; above it, reading pauses."""
    progress_save_interval_ms: int = 100
    retention_check_interval_ms: int = 60_000
    producer_snapshot_interval_ms: int = 30_000
    producer_expiry_ms: int = 7 * 24 * 3600 * 1000
    shutdown_grace_ms: int = 5_000
    handshake_timeout_ms: int = 10_000
    """A connection that sends no Hello this long after connecting is refused."""
    heartbeat_interval_ms: int = 15_000
    """A client quiet this long is sent a Ping."""
    idle_timeout_ms: int = 45_000
    """A client silent this long (no Pong either) is gone: it is disconnected."""
    fsync_threads: int = 8
    topology_ttl_ms: int = 7 * 24 * 3600 * 1000
    """A service silent this long (no connection, no traffic) leaves the flow map; so does a silent edge."""

    def validate(self, source: str = "configuration") -> BrokerConfig:
        """Check every value; returns self, or raises ``BrokerConfigError`` naming the key."""

        def bad(key: str, problem: str) -> BrokerConfigError:
            return BrokerConfigError(f"{source}: {key}: {problem}, not {getattr(self, key)!r}")

        for key in ("port", "http_port"):
            if not 0 <= getattr(self, key) <= 65535:
                raise bad(key, "must be a port number 0..65535")
        if not self.host:
            raise bad("host", "must not be empty")
        if not self.data_dir:
            raise bad("data_dir", "must not be empty")
        try:
            FsyncPolicy.parse(self.fsync)
        except StorageError:
            raise bad("fsync", "must be always, never or interval:MS (MS > 0)") from None
        if not 1 <= self.default_partitions <= MAX_PARTITIONS:
            raise bad("default_partitions", f"must be 1..{MAX_PARTITIONS}")
        if not MIN_FRAME_SIZE <= self.max_frame_size <= MAX_FRAME_SIZE_LIMIT:
            raise bad("max_frame_size", f"must be {MIN_FRAME_SIZE}..{MAX_FRAME_SIZE_LIMIT} bytes")
        for key in ("retention_ms", "retention_bytes"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise bad(key, "must be a positive integer (leave it out to keep everything)")
        if self.segment_bytes < MIN_SEGMENT_BYTES:
            raise bad("segment_bytes", f"must be at least {MIN_SEGMENT_BYTES}")
        positive = (
            "segment_ms",
            "write_buffer_high",
            "slow_consumer_timeout_ms",
            "max_inflight_produce_bytes",
            "progress_save_interval_ms",
            "retention_check_interval_ms",
            "producer_snapshot_interval_ms",
            "producer_expiry_ms",
            "fsync_threads",
            "handshake_timeout_ms",
            "heartbeat_interval_ms",
            "topology_ttl_ms",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise bad(key, "must be a positive integer")
        if not 0 <= self.write_buffer_low <= self.write_buffer_high:
            raise bad("write_buffer_low", "must be 0..write_buffer_high")
        if self.idle_timeout_ms <= self.heartbeat_interval_ms:
            raise bad("idle_timeout_ms", "must be more than heartbeat_interval_ms")
        if self.shutdown_grace_ms < 0:
            raise bad("shutdown_grace_ms", "must be >= 0")
        return self

    def replace(self, **changes: Any) -> BrokerConfig:
        return dataclasses.replace(self, **changes)

    @property
    def url(self) -> str:
        return f"tidings://{self.host}:{self.port}"

    def core(self) -> CoreConfig:
        """The part of the configuration the broker core needs."""
        defaults = TopicDefaults(
            fsync=FsyncPolicy.parse(self.fsync),
            retention_ms=self.retention_ms,
            retention_bytes=self.retention_bytes,
            segment_bytes=self.segment_bytes,
            segment_ms=self.segment_ms,
        )
        return CoreConfig(
            data_dir=self.data_dir,
            policy=TopicPolicy(defaults, self.default_partitions, self.auto_create_topics),
            auth_token=self.auth_token,
            max_frame_size=self.max_frame_size,
            producer_expiry_ms=self.producer_expiry_ms,
            topology_ttl_ms=self.topology_ttl_ms,
        )


_FIELDS: Final = {f.name: f for f in dataclasses.fields(BrokerConfig)}


def _expected(name: str) -> tuple[type, ...]:
    default = _FIELDS[name].default
    if name in ("auth_token",):
        return (str,)
    if name in ("retention_ms", "retention_bytes"):
        return (int,)
    return (type(default),)


def from_mapping(values: Mapping[str, Any], source: str, base: BrokerConfig | None = None) -> BrokerConfig:
    """``base`` (default: the defaults) with ``values`` applied; unknown keys and wrong types named."""
    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = raw_key.replace("-", "_")
        if key not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise BrokerConfigError(f"{source}: unknown key {raw_key!r} (known keys: {known})")
        expected = _expected(key)
        wrong_bool = isinstance(value, bool) and bool not in expected
        if wrong_bool or not isinstance(value, expected):
            kind = " or ".join(t.__name__ for t in expected)
            raise BrokerConfigError(f"{source}: {raw_key}: must be {kind}, not {value!r}")
        changes[key] = value
    return (base or BrokerConfig()).replace(**changes).validate(source)


def load_file(path: str, base: BrokerConfig | None = None) -> BrokerConfig:
    """Read a TOML configuration file; errors name the file (and the key, for a bad value)."""
    source = f"config file {path}"
    try:
        with open(path, "rb") as handle:
            document = tomllib.load(handle)
    except OSError as exc:
        raise BrokerConfigError(f"cannot read {source}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise BrokerConfigError(f"{source} is not valid TOML: {exc}") from exc
    table = dict(document)
    nested = table.pop("broker", {})
    if not isinstance(nested, dict):
        raise BrokerConfigError(f"{source}: broker: must be a table")
    return from_mapping({**table, **nested}, source, base)
