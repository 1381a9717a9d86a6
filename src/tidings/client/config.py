"""The client's settings, as one typed value, and the pure policies that read them.

Everything that tunes the SDK is a field of ``ClientConfig`` with a default
that suits a service on the broker's own machine, so ``connect()`` needs no
arguments. The defaults, and why:

* ``linger=0``, ``max_batch_bytes=256 KiB``, ``max_batch_records=10_000``:
  a publish waits for no timer. Publishes made in the same turn of the event
  loop share one batch, which leaves at once while the partition has fewer
  than ``max_in_flight`` (5) Produces unanswered; when it has that many, the
  next batch fills meanwhile, so batches grow with the load and a lone
  publish pays only the round trip: a latency-first Nagle. A ``linger``
  above 0 holds every batch that long, trading latency for fewer, larger
  batches at low rates. Several Produces in flight overlap the network with
  the broker's writes and fsyncs, so the batch size does not limit
  throughput; it is kept
  moderate because the broker serves stored batches whole: a consumer whose
  credits cover part of a batch is sent all of it, again for the next part.
  Measured on loopback, 256 KiB consumed about twice as fast as 1 MiB and
  published as fast.
* ``ack_interval=0.005``, ``ack_batch=256``: a busy consumer's acks go out as
  one coalesced Ack frame every 5 ms or 256 messages; an idle one's at once
  (see ``tidings.client.consumer``).
* ``reconnect``: full-jitter exponential backoff from 50 ms to 5 s, and
  operations give up after ``reconnect_timeout`` (30 s) without a connection.
* ``ping_interval=10`` s: a connection silent for two intervals is dead,
  which catches a broker that vanished without closing its socket.
* Credentials (docs/security.md): ``token`` (default ``$TIDINGS_TOKEN``), or
  ``username`` and ``password`` (also from the URL,
  ``tidings://user:pass@host``), or a client certificate (``tls_cert_file``,
  ``tls_key_file``). ``tls`` is ``None`` (follow the URL's scheme:
  ``tidings+tls://`` verifies the broker's certificate against the system's
  CAs, or ``tls_ca_file``), ``True`` (TLS whatever the scheme) or an
  ``ssl.SSLContext`` of your own. Secrets never appear in a ``repr``.

``backoff_delay`` is the reconnect policy as a pure function, so it is tested
without sleeping.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import ssl
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import unquote, urlsplit

from tidings.errors import InvalidName
from tidings.protocol.names import NAME, is_topic_name, is_topic_pattern

DEFAULT_URL: Final = "tidings://127.0.0.1:7400"
DEFAULT_PORT: Final = 7400
URL_ENV: Final = "TIDINGS_URL"
TOKEN_ENV: Final = "TIDINGS_TOKEN"

_NAME_RE: Final = re.compile(NAME)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker listens, parsed from a ``tidings://HOST:PORT`` URL."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        scheme = "tidings+tls" if self.tls else "tidings"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"


def parse_url(url: str | None = None) -> BrokerAddress:
    """The broker address of ``url``, else of ``$TIDINGS_URL``, else ``tidings://127.0.0.1:7400``.

    Schemes: ``tidings`` (TCP) and ``tidings+tls``. The port defaults to 7400.
    """
    text = url or os.environ.get(URL_ENV) or DEFAULT_URL
    parts = urlsplit(text if "://" in text else f"tidings://{text}")
    if parts.scheme not in ("tidings", "tidings+tls"):
        raise ValueError(f"not a Tidings URL: {text!r} (expected tidings://HOST:PORT)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise ValueError(f"bad port in Tidings URL {text!r}") from exc
    return BrokerAddress(
        parts.hostname or "127.0.0.1",
        port,
        tls=parts.scheme == "tidings+tls",
        username=None if parts.username is None else unquote(parts.username),
        password=None if parts.password is None else unquote(parts.password),
    )


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter").

    Attempt ``n`` (0-based) waits a uniform random time in
    ``[0, min(maximum, initial * multiplier**n)]``. Full jitter spreads a
    crowd of clients that lost the same broker, so they do not all knock at
    once when it comes back.
    """

    initial: float = 0.05
    maximum: float = 5.0
    multiplier: float = 2.0


def backoff_delay(policy: ReconnectPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before reconnect attempt ``attempt`` (0 for the first retry)."""
    ceiling = min(policy.maximum, policy.initial * policy.multiplier ** min(attempt, 64))
    return (rng or random).uniform(0.0, ceiling)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Every setting of a ``Client``. See the module docstring for why the defaults are what they are."""

    url: str = field(default_factory=lambda: os.environ.get(URL_ENV) or DEFAULT_URL)
    service: str = "python"
    client_id: str | None = None
    token: str | None = field(default=None, repr=False)
    """Else ``$TIDINGS_TOKEN``, read when connecting."""
    username: str | None = None
    """Else the URL's (``tidings://user:pass@host``)."""
    password: str | None = field(default=None, repr=False)
    tls: ssl.SSLContext | bool | None = None
    """``None``: TLS when the URL says ``tidings+tls://``; ``True``: always; a context: yours, always."""
    tls_ca_file: str | None = None
    """CA bundle that signed the broker's certificate (default: the system's trusted CAs)."""
    tls_cert_file: str | None = None
    """A client certificate (PEM), which the broker may map to a service identity."""
    tls_key_file: str | None = None
    max_frame_size: int = 8 * 1024 * 1024
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    """How long subscribe, unsubscribe and admin calls wait for the broker's answer."""
    reconnect: ReconnectPolicy = ReconnectPolicy()
    reconnect_timeout: float = 30.0
    """How long an operation waits for a lost connection to come back before it fails."""
    close_timeout: float = 10.0
    """How long ``close()`` waits for publishes in flight and the broker's Close."""
    ping_interval: float = 10.0
    linger: float = 0.0
    max_batch_bytes: int = 256 * 1024
    max_batch_records: int = 10_000
    max_in_flight: int = 5
    """Produce frames (one batch each) in flight per partition: 1 to 5, the batches the broker remembers."""
    auto_create_topics: bool = True
    """Publishing to an unknown topic creates it, if the broker allows, with its default partitions."""
    ack_interval: float = 0.005
    ack_batch: int = 256

    def __post_init__(self) -> None:
        check_name(self.service, "service")
        parse_url(self.url)  # fail at construction, not at the first reconnect
        if self.linger < 0 or self.ack_interval < 0:
            raise ValueError("linger and ack_interval are >= 0 seconds")
        if self.max_batch_bytes < 1024 or self.max_batch_records < 1 or self.ack_batch < 1:
            raise ValueError("max_batch_bytes >= 1024, max_batch_records >= 1 and ack_batch >= 1")
        if not 1 <= self.max_in_flight <= 5:
            raise ValueError(
                "max_in_flight is 1 to 5: the broker recognises a resent batch among a producer's last 5"
            )
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")

    def __repr__(self) -> str:
        """The fields, with the URL's password masked (``token`` and ``password`` are left out)."""
        shown = []
        for item in dataclasses.fields(self):
            if item.repr:
                value = getattr(self, item.name)
                shown.append(f"{item.name}={redact_url(value) if item.name == 'url' else value!r}")
        return f"ClientConfig({', '.join(shown)})"

    def credentials(self) -> tuple[str | None, str | None, str | None]:
        """``(token, username, password)`` for the Hello: the settings, else the environment and the URL."""
        address = parse_url(self.url)
        token = self.token or os.environ.get(TOKEN_ENV) or None
        username = self.username if self.username is not None else address.username
        password = self.password if self.password is not None else address.password
        return token, username, password


def redact_url(url: str) -> str:
    """``url`` quoted, with the password of its user-info part replaced by ``***``."""
    parts = urlsplit(url)
    try:
        password = parts.password
    except ValueError:
        password = None
    if password is None:
        return repr(url)
    host = parts.netloc.rpartition("@")[2]
    return repr(parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl())


def check_name(name: str, what: str) -> str:
    """``name`` if it is a valid group or service name, else ``InvalidName``."""
    if not (0 < len(name) <= 249 and _NAME_RE.match(name)):
        raise InvalidName(f"invalid {what} name {name!r}: 1 to 249 characters of A-Z a-z 0-9 _ . -")
    return name


def check_topic(topic: str) -> str:
    if not is_topic_name(topic):
        raise InvalidName(
            f"invalid topic name {topic!r}: dot-separated tokens of A-Z a-z 0-9 _ - (no wildcards)"
        )
    return topic


def check_pattern(pattern: str) -> str:
    if not is_topic_pattern(pattern):
        raise InvalidName(
            f"invalid topic or pattern {pattern!r} (tokens of A-Z a-z 0-9 _ -, '*', a final '>')"
        )
    return pattern
