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
    max_connections = 10000

    [auth]                          # see tidings.core.auth.config and docs/security.md
    [[auth.tokens]]
    service = "inventory"
    token = "..."
    publish = ["inventory.>"]

    [tls]                           # the binary protocol and the HTTP API
    cert = "/etc/tidings/broker.pem"
    key = "/etc/tidings/broker.key"
    client_ca = "/etc/tidings/clients-ca.pem"   # optional: verify client certificates
    require_client_cert = false

Every value is checked once, in ``validate``; a bad one raises
``BrokerConfigError`` naming the key, where it came from and what is
allowed. Nothing downstream re-checks.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from tidings.core.auth import AuthConfig, parse_auth
from tidings.core.broker import CoreConfig
from tidings.core.topic_config import MIN_SEGMENT_BYTES, TopicDefaults
from tidings.core.topics import MAX_PARTITIONS, TopicPolicy
from tidings.errors import BrokerConfigError, StorageError
from tidings.protocol.values import MAX_FRAME_SIZE_LIMIT, MIN_FRAME_SIZE
from tidings.storage import FsyncPolicy

MiB: Final = 1024 * 1024
DELIVERY_BURST_BYTES: Final = 1 * MiB
"""Deliveries built for one session per turn of the event loop (a 1 MiB frame, or many small ones).

More waits for the next turn, so catching up on a deep backlog never stalls the loop for the other
connections (``tidings.core.groups.pump``)."""


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
    segment_prealloc_bytes: int = 0
    """Zero-filled, fsynced room kept ahead of each active segment under ``fsync=always`` (0: off).

    Cheaper fsyncs on ext4 (no journal commit per group commit), for up to twice this much disk
    per partition and every byte written twice; off by default because end to end it measured
    no faster here (docs/format.md, Preallocation). See ``PartitionLog.preallocate``."""
    auth_token: str | None = None
    """The older shared token: when set, a Hello must carry it, and it grants everything (prefer [auth])."""
    auth: AuthConfig = field(default_factory=AuthConfig)
    """Identities and their permissions: the ``[auth]`` table (docs/security.md). Off by default."""
    insecure: bool = False
    """Listen on a non-loopback address without authentication anyway (``--insecure``)."""
    tls_cert: str | None = None
    """PEM certificate chain: with ``tls_key``, both ports speak TLS only (the ``[tls]`` table)."""
    tls_key: str | None = None
    tls_client_ca: str | None = None
    """PEM CA bundle: clients presenting a certificate it signed are identified by its CN or DNS SAN."""
    tls_require_client_cert: bool = False
    """Refuse a TLS handshake without a client certificate (needs ``tls_client_ca``)."""
    max_connections: int = 10_000
    """Open connections of the binary protocol, in total; more are refused with ``limit_exceeded``."""
    max_connections_per_ip: int = 1_000
    """Open connections from one client IP address."""
    max_topics: int = 10_000
    """Topics clients may make exist (CreateTopic or auto-creation); dead-letter topics are not refused."""
    max_partitions: int = 1_024
    """Partitions one CreateTopic may ask for."""
    max_headers_bytes: int = 64 * 1024
    """The largest headers section of one record."""
    max_send_buffer: int = 64 * MiB
    """Bytes queued for one client beyond which it is disconnected at once, whatever the timeout."""
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
        if self.segment_prealloc_bytes < 0:
            raise bad("segment_prealloc_bytes", "must be >= 0 (0 turns preallocation off)")
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
            "max_connections",
            "max_connections_per_ip",
            "max_topics",
            "max_headers_bytes",
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
        if not 1 <= self.max_partitions <= MAX_PARTITIONS:
            raise bad("max_partitions", f"must be 1..{MAX_PARTITIONS}")
        if self.default_partitions > self.max_partitions:
            raise bad("default_partitions", f"must be <= max_partitions ({self.max_partitions})")
        if self.max_send_buffer < self.write_buffer_high:
            raise bad("max_send_buffer", f"must be >= write_buffer_high ({self.write_buffer_high})")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise bad("tls_cert", "and tls_key must be given together")
        if (self.tls_client_ca or self.tls_require_client_cert) and self.tls_cert is None:
            raise bad("tls_client_ca", "needs tls_cert and tls_key (client certificates come over TLS)")
        if self.tls_require_client_cert and self.tls_client_ca is None:
            raise bad("tls_require_client_cert", "needs tls_client_ca, the CA that signs client certificates")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.auth.enabled or self.auth_token is not None

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    def check_exposure(self) -> None:
        """Refuse to serve a non-loopback address without authentication, unless ``insecure``.

        Checked when the broker starts listening, after the file and the flags
        are merged, so ``--insecure`` on the command line can override a file.
        """
        if self.auth_enabled or self.insecure or is_loopback(self.host):
            return
        raise BrokerConfigError(
            f"refusing to listen on {self.host} without authentication: anyone who can reach it could "
            "read and write every topic. Configure [auth] (docs/security.md), or pass --insecure "
            "(insecure = true) if the network is trusted"
        )

    def replace(self, **changes: Any) -> BrokerConfig:
        return dataclasses.replace(self, **changes)

    @property
    def url(self) -> str:
        scheme = "tidings+tls" if self.tls else "tidings"
        return f"{scheme}://{self.host}:{self.port}"

    def core(self) -> CoreConfig:
        """The part of the configuration the broker core needs."""
        defaults = TopicDefaults(
            fsync=FsyncPolicy.parse(self.fsync),
            retention_ms=self.retention_ms,
            retention_bytes=self.retention_bytes,
            segment_bytes=self.segment_bytes,
            segment_ms=self.segment_ms,
            segment_prealloc_bytes=self.segment_prealloc_bytes,
        )
        return CoreConfig(
            data_dir=self.data_dir,
            policy=TopicPolicy(defaults, self.default_partitions, self.auto_create_topics),
            auth_token=self.auth_token,
            auth=self.auth,
            max_frame_size=self.max_frame_size,
            producer_expiry_ms=self.producer_expiry_ms,
            topology_ttl_ms=self.topology_ttl_ms,
            max_topics=self.max_topics,
            max_partitions=self.max_partitions,
            max_headers_bytes=self.max_headers_bytes,
            delivery_burst_bytes=DELIVERY_BURST_BYTES,
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (``localhost`` or a loopback IP)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything, so it is not trusted as loopback
        return False


_FIELDS: Final = {f.name: f for f in dataclasses.fields(BrokerConfig) if f.name != "auth"}
_TLS_KEYS: Final = {"cert", "key", "client_ca", "require_client_cert"}


def _expected(name: str) -> tuple[type, ...]:
    default = _FIELDS[name].default
    if name in ("auth_token", "tls_cert", "tls_key", "tls_client_ca"):
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
    auth = table.pop("auth", None)
    tls = table.pop("tls", None)
    values = {**table, **nested}
    if tls is not None:
        if not isinstance(tls, dict) or set(tls) - _TLS_KEYS:
            known = ", ".join(sorted(_TLS_KEYS))
            raise BrokerConfigError(f"{source}: tls: must be a table of {known}")
        values.update({f"tls_{key}": value for key, value in tls.items()})
    config = from_mapping(values, source, base)
    if auth is not None:
        if not isinstance(auth, dict):
            raise BrokerConfigError(f"{source}: auth: must be a table ([auth])")
        config = config.replace(auth=parse_auth(auth, source)).validate(source)
    return config
