"""The backend contract: what the service framework needs from a message broker, and nothing more.

The framework (``tidings.app``) imports this module and no other part of
Tidings but ``tidings.errors``, so the same service code runs on every
backend. A backend is chosen by URL (``open_backend``) and implements:

* ``Publisher``: ``publish`` one message, ``publish_batch`` several, ``request``
  and wait for one reply;
* ``Subscriber``: ``subscribe`` a consumer group to a topic, with a mode and a
  start position, and iterate the ``Delivery``\\ s, each settled once with
  ``ack``, ``nack(delay)`` or ``term(reason)``, or answered with ``reply`` if it
  is a request;
* ``Backend``: both, plus ``open``/``close`` and its ``Capabilities``.

Like Watermill's ``Publisher``/``Subscriber``, the required surface is tiny;
extras live in separate small protocols that a backend may also implement
(``Admin``: create a topic, move a group), checked with ``isinstance``.

What differs between brokers is not hidden but declared: ``Capabilities``
(``tidings.backends.capabilities``, re-exported here) says, field by field,
what a backend guarantees (see each field's docstring). The conformance
suite (``tidings.testing.conformance``) runs every scenario a backend
declares, and skips, naming the capability and the backend's reason, only
what it declares missing. A call that needs a missing
capability raises ``NotSupported`` rather than half-working.

Data is bytes at this level: encoding typed events is the framework's job.
Start positions are the client's forms, as values: ``"earliest"``,
``"latest"``, an offset (``int >= 0``, applied to every partition) or a
``datetime`` (the first message the broker stored at or after it).
Errors are ``tidings.errors`` classes only; each backend translates its
server's and library's exceptions at its boundary.

The registry of URL schemes is open: ``register_backend("nats", "pkg.module:opener")``
adds one without touching this module; built-in schemes are loaded lazily.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Literal, Protocol, Self, runtime_checkable
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from tidings.backends.capabilities import Capabilities, capability_docs, capability_names
from tidings.errors import InvalidArgument, InvalidBackendConfig, UnknownBackend

__all__ = [
    "DLQ_DELIVERIES",
    "DLQ_GROUP",
    "DLQ_OFFSET",
    "DLQ_PARTITION",
    "DLQ_REASON",
    "DLQ_TOPIC",
    "MSG_ID_HEADER",
    "Admin",
    "Announcer",
    "Backend",
    "BackendOpener",
    "Capabilities",
    "Delivery",
    "GroupMode",
    "HandledEvent",
    "HeadersIn",
    "OutgoingMessage",
    "PublishedEvent",
    "Publisher",
    "Receipt",
    "Reply",
    "StartPosition",
    "Subscriber",
    "Subscription",
    "capability_docs",
    "capability_names",
    "check_start",
    "check_subscription",
    "dead_letter_topic",
    "known_schemes",
    "open_backend",
    "redact",
    "register_backend",
    "url_options",
]

StartPosition = Literal["earliest", "latest"] | int | datetime
"""Where a group with no committed position begins: earliest, latest, an offset, or a time."""
GroupMode = Literal["partitioned", "shared"]
"""``partitioned``: each partition to one member, in order per key; ``shared``: any member, any message."""
HeadersIn = Mapping[str, str | bytes]
"""Headers as given to publish: text values are sent as UTF-8."""

MSG_ID_HEADER: Final = "tidings-msg-id"
"""Where backends without a native message id carry ``msg_id`` (hidden from ``Delivery.headers``)."""

# The dead-letter record: the same names the broker core writes (``tidings.core.dead_letters``), so the
# framework writes them too for backends without ``native_dead_letters``. Values are UTF-8 text.
DLQ_TOPIC: Final = "tidings-dlq-topic"
DLQ_PARTITION: Final = "tidings-dlq-partition"
DLQ_OFFSET: Final = "tidings-dlq-offset"
DLQ_GROUP: Final = "tidings-dlq-group"
DLQ_DELIVERIES: Final = "tidings-dlq-deliveries"
DLQ_REASON: Final = "tidings-dlq-reason"


def dead_letter_topic(topic: str, group: str) -> str:
    """``<topic>.dlq.<group>``: where ``group``'s dead letters of ``topic`` go (empty group parts: ``_``)."""
    return f"{topic}.dlq.{'.'.join(token or '_' for token in group.split('.'))}"


def check_start(start: object) -> StartPosition:
    """``start`` if it is a start position, else ``InvalidArgument`` saying what is allowed."""
    if start in ("earliest", "latest") or isinstance(start, datetime):
        return start
    if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
        return start
    raise InvalidArgument(f"start must be 'earliest', 'latest', an offset >= 0 or a datetime, not {start!r}")


def check_subscription(
    mode: object, start: object, prefetch: int, ack_deadline: float, max_deliveries: int | None
) -> StartPosition:
    """Check ``subscribe``'s arguments as every backend must (``InvalidArgument``); returns ``start``."""
    if mode not in ("partitioned", "shared"):
        raise InvalidArgument(f"mode is 'partitioned' or 'shared', not {mode!r}")
    if prefetch < 1 or ack_deadline <= 0 or (max_deliveries is not None and max_deliveries < 1):
        raise InvalidArgument(
            f"prefetch >= 1, ack_deadline > 0 and max_deliveries >= 1 or None, not {prefetch}, "
            f"{ack_deadline} and {max_deliveries}"
        )
    return check_start(start)


# -- values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message of ``publish_batch``. ``msg_id``: see ``Publisher.publish``.

    ``timestamp``: the producer's time to record (``Delivery.timestamp``), now when None. Copying
    history from one backend to another (``tidings migrate``) keeps each event's time this way; the
    server's ``append_time`` is always its own.
    """

    data: bytes
    key: str | bytes | None = None
    headers: HeadersIn | None = None
    msg_id: str | None = None
    timestamp: datetime | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """Where a published message was stored, once the backend made it durable (per its guarantees)."""

    topic: str
    partition: int
    offset: int
    duplicate: bool = False
    """True when a backend with ``dedupe_by_id`` recognised the ``msg_id`` and stored nothing new."""


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a ``request``."""

    topic: str
    data: bytes
    headers: Mapping[str, bytes]


# -- the contract ----------------------------------------------------------------------


class Delivery(Protocol):
    """One message delivered to a subscription, or one request delivered to a responder.

    Settle each message once: ``ack`` (done), ``nack(delay)`` (redeliver after
    ``delay`` seconds), ``term(reason)`` (never redeliver; to the dead-letter
    topic where ``native_dead_letters``). Later settlements are ignored. A
    request (``is_request``) is answered with ``reply``; it is not stored, so
    its ``partition`` and ``offset`` are -1 and settling it does nothing.
    """

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Mapping[str, bytes]: ...
    @property
    def data(self) -> bytes: ...
    @property
    def msg_id(self) -> str | None:
        """The ``msg_id`` given to publish, or None."""

    @property
    def timestamp(self) -> datetime:
        """When the producer created the message (its clock)."""

    @property
    def append_time(self) -> datetime | None:
        """When the server stored it (the server's clock); None for requests."""

    @property
    def delivery_count(self) -> int:
        """1 on the first delivery, one more on each redelivery."""

    @property
    def is_request(self) -> bool: ...

    async def ack(self) -> None: ...
    async def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None: ...
    async def term(self, reason: str | None = None) -> None: ...
    async def reply(self, data: bytes, *, headers: HeadersIn | None = None) -> None: ...


class Subscription(Protocol):
    """The deliveries of one subscription: ``async for delivery in subscription``; ``close`` to leave.

    Iteration ends after ``close``; a subscription the server ended raises
    the ``TidingsError`` that says why. Closing hands unsettled messages back
    to the group.
    """

    @property
    def topic(self) -> str: ...
    @property
    def group(self) -> str: ...

    def __aiter__(self) -> AsyncIterator[Delivery]: ...
    async def __anext__(self) -> Delivery: ...
    async def close(self) -> None: ...


class Publisher(Protocol):
    async def publish(
        self,
        topic: str,
        data: bytes,
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
        msg_id: str | None = None,
    ) -> Receipt:
        """Store one message; returns once it is stored (durable per the backend's guarantees).

        ``key`` picks the partition and the order (``ordered_per_key``).
        ``msg_id`` identifies the message: delivered as ``Delivery.msg_id``
        everywhere, stored once where ``dedupe_by_id``.
        """
        ...

    async def publish_batch(self, topic: str, messages: Sequence[OutgoingMessage]) -> list[Receipt]:
        """Store several messages, batched; receipts in order. Messages with one key keep their order.

        Raises the first failure (others may have been stored).
        """
        ...

    async def request(
        self,
        topic: str,
        data: bytes,
        *,
        timeout: float,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> Reply:
        """Ask one subscriber of ``topic`` and wait for its ``reply``.

        ``RequestTimeout`` after ``timeout`` seconds; ``NoResponders`` at once
        where the backend declares ``no_responders``.
        """
        ...


class Subscriber(Protocol):
    async def subscribe(
        self,
        topic: str,
        *,
        group: str,
        mode: GroupMode = "partitioned",
        start: StartPosition = "latest",
        prefetch: int = 100,
        ack_deadline: float = 30.0,
        max_deliveries: int | None = 5,
        requests: bool = True,
    ) -> Subscription:
        """Join ``group`` on ``topic`` (a pattern where ``topic_patterns``).

        ``start`` applies only where the group has no committed position yet.
        At most ``prefetch`` messages are delivered and unsettled at a time.
        Unsettled messages come back after ``ack_deadline`` seconds; past
        ``max_deliveries`` (None: no limit) they are dead-lettered. A request
        to ``topic`` is delivered to one subscription made with ``requests=True``
        (the default), as a ``Delivery`` with ``is_request``; never to one made
        with ``requests=False``, which consumes events only.
        """
        ...


class Backend(Publisher, Subscriber, Protocol):
    """A connection to one message broker for one service. Use ``async with`` or ``open``/``close``."""

    @property
    def url(self) -> str:
        """The URL it was opened with, password removed."""

    @property
    def service(self) -> str:
        """The service it speaks for (the default group, the name in the broker's flow map)."""

    @property
    def capabilities(self) -> Capabilities: ...

    async def open(self) -> None:
        """Connect. ``ConnectFailed`` if the server cannot be reached."""

    async def close(self) -> None:
        """Send what is queued (publishes, settlements), leave every subscription, disconnect."""

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class Admin(Protocol):
    """Optional: managing topics and groups (``isinstance(backend, Admin)``)."""

    async def create_topic(self, topic: str, *, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions; ``TopicExists`` if it exists."""
        ...

    async def reset_group(self, group: str, topic: str, to: StartPosition) -> None:
        """Move ``group``'s committed position on every partition of ``topic`` to ``to``."""
        ...

    async def topic_end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition of ``topic``, its end offset (the next to be written); ``UnknownTopic`` if none."""
        ...

    async def group_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Per partition of ``topic``, ``group``'s committed offset (all below settled); {} if none."""
        ...

    async def list_topics(self) -> dict[str, int]:
        """Every topic the server holds (dead-letter topics included), with its partition count."""
        ...


@dataclass(frozen=True, slots=True)
class PublishedEvent:
    """A typed event a service publishes: its topic, type name, version and JSON Schema."""

    topic: str
    type: str
    version: int = 1
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class HandledEvent:
    """A typed event a service handles: from ``topic`` (a name or a pattern), in consumer group ``group``."""

    topic: str
    group: str
    type: str


@runtime_checkable
class Announcer(Protocol):
    """Optional: describing this service's typed events to the broker (``isinstance(backend, Announcer)``).

    A broker with a flow map (the Tidings broker) shows them beside the
    service; the call replaces what the service announced before, so calling
    it again at every start is right.
    """

    async def announce(
        self, publishes: Sequence[PublishedEvent], handles: Sequence[HandledEvent]
    ) -> None: ...


# -- choosing a backend by URL ------------------------------------------------------------

BackendOpener = Callable[..., Backend]
"""``opener(url, *, service, **options) -> Backend``: makes an unopened backend from its URL."""

_openers: dict[str, BackendOpener | str] = {
    "memory": "tidings.backends.memory:from_url",
    "tidings": "tidings.backends.tidings:from_url",
    "tidings+tls": "tidings.backends.tidings:from_url",
    "nats": "tidings.backends.nats:from_url",
    "redis": "tidings.backends.redis:from_url",
}
_SCHEME: Final = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def register_backend(scheme: str, opener: BackendOpener | str) -> None:
    """Make ``scheme://`` URLs open with ``opener`` (or ``"module:attribute"``, imported on first use)."""
    if not _SCHEME.match(f"{scheme}://"):
        raise InvalidArgument(f"not a URL scheme: {scheme!r}")
    _openers[scheme.lower()] = opener


def known_schemes() -> list[str]:
    return sorted(_openers)


def open_backend(url: str, *, service: str, **options: Any) -> Backend:
    """The backend for ``url``, chosen by its scheme, not yet opened (``async with`` it, or ``open()``).

    ``options`` are fields of the backend's ``*Config`` dataclass; an unknown
    one raises ``InvalidBackendConfig`` naming the known ones. An unknown or
    missing scheme raises ``UnknownBackend`` naming the URL and the schemes known.
    """
    shown = redact(url)
    match = _SCHEME.match(url)
    if match is None:
        raise UnknownBackend(f"not a backend URL: {shown!r} (expected SCHEME://..., {_schemes_hint()})")
    scheme = match.group(1).lower()
    opener = _openers.get(scheme)
    if opener is None:
        raise UnknownBackend(f"unknown backend scheme {scheme!r} in {shown!r} ({_schemes_hint()})")
    if isinstance(opener, str):
        module_name, _, attribute = opener.partition(":")
        try:
            opener = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise InvalidBackendConfig(f"the {scheme}:// backend cannot be loaded ({opener}): {exc}") from exc
        _openers[scheme] = opener
    backend: Backend = opener(url, service=service, **options)
    return backend


def url_options(url: str, config: type) -> tuple[str, dict[str, Any]]:
    """``url`` without its query, and the query as options of dataclass ``config``, typed by its fields.

    ``nats://a:4222,b:4222?replicas=3&partitions=6`` configures a backend where only a URL can be
    given (``$TIDINGS_URL``, ``make demo BROKER=...``). Values are converted to the field's type
    (int, float, bool as true/false/1/0, str); an unknown name or a bad value raises
    ``InvalidBackendConfig`` naming it. Options passed in code win over the query.
    """
    parts = urlsplit(url)
    if not parts.query:
        return url, {}
    hints = {f.name: f.type for f in dataclasses.fields(config)}
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False):
        kind = str(hints.get(name, ""))
        if name not in hints or name in ("url", "service"):
            known = ", ".join(sorted(set(hints) - {"url", "service"}))
            raise InvalidBackendConfig(f"unknown option {name!r} in {redact(url)!r} (options: {known})")
        try:
            if kind.startswith("bool"):
                if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(raw)
                options[name] = raw.lower() in ("true", "1", "yes")
            elif kind.startswith("int"):
                options[name] = int(raw)
            elif kind.startswith("float"):
                options[name] = float(raw)
            else:
                options[name] = raw
        except ValueError:
            raise InvalidBackendConfig(f"option {name}={raw!r} in {redact(url)!r} is not a {kind}") from None
    return urlunsplit(parts._replace(query="")), options


def redact(url: str) -> str:
    """``url`` without the password of its user-info part, for messages and ``repr``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def _schemes_hint() -> str:
    return "known schemes: " + ", ".join(f"{s}://" for s in known_schemes())
