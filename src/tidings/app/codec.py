"""Events to bytes and back: JSON data, CloudEvents attributes in headers.

An event travels as a record's ``data`` plus ``headers``, in the CloudEvents
1.0 Kafka protocol binding's *binary content mode* (the record's key is the
Kafka key; Tidings records have the same three parts)::

    header            value (UTF-8)                       CloudEvents attribute
    ce_specversion    1.0                                 specversion
    ce_id             0190b6e2-7c4f-7d3e-8a1b-...         id (a UUIDv7, see tidings.app.ids)
    ce_source         inventory                           source: the producing service's name
    ce_type           orders.placed.v1                    type: "<topic>.v<version>" by default
    ce_time           2024-07-01T12:00:00.123Z            time: RFC 3339, UTC, milliseconds
    content-type      application/json                    datacontenttype
    ce_<name>         ...                                 extension attributes, if any

    data              {"order_id":"o-1","sku":"tea","qty":2}

So the official CloudEvents SDKs read a Tidings event as it is (the Python
SDK's ``cloudevents.core.bindings.kafka.from_binary`` and the older
``cloudevents.kafka.from_binary``; tests/app/test_codec.py proves it). The
record key is not copied into a ``partitionkey`` attribute: the binding says
a key mapper must not add attributes.

Data is JSON for events and for any other object (msgspec for Structs,
dicts, dataclasses; pydantic's own serializer for its models), bytes as they
are (``application/octet-stream``) and str as UTF-8 (``text/plain``).
``ce_time`` has millisecond precision, like the UUIDv7 id and the broker's
timestamps, so an id made now and the time next to it agree.

Decoding is strict because what it rejects goes to the dead-letter topic
rather than to a handler: a missing or malformed required attribute, an
unknown ``specversion``, data that is not JSON or does not match the event
class all raise ``tidings.errors.EventValidationError`` with the reason.
The ``type`` is not compared with the class's: a consumer on v2 may read v1
data that still validates; the data's shape is what is checked.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar, cast

import msgspec

from tidings.app import ids
from tidings.app.events import event_info, is_event_class, is_pydantic_model
from tidings.errors import EventValidationError

__all__ = [
    "CONTENT_TYPE_HEADER",
    "HEADER_PREFIX",
    "JSON",
    "SPECVERSION",
    "Decoded",
    "Encoded",
    "Envelope",
    "decode",
    "decode_data",
    "encode",
    "format_time",
    "read_envelope",
]

E = TypeVar("E")

SPECVERSION: Final = "1.0"
HEADER_PREFIX: Final = "ce_"
CONTENT_TYPE_HEADER: Final = "content-type"
JSON: Final = "application/json"
OCTET_STREAM: Final = "application/octet-stream"
TEXT: Final = "text/plain; charset=utf-8"
REQUIRED: Final = ("id", "source", "type", "specversion")
# CloudEvents attribute names: lower-case ASCII letters and digits (spec 1.0, "Attribute Naming Convention").
_ATTRIBUTE_NAME: Final = re.compile(r"[a-z0-9]{1,20}")
_CORE: Final = frozenset({*REQUIRED, "time", "datacontenttype", "data"})


@dataclass(frozen=True, slots=True)
class Envelope:
    """The CloudEvents context attributes of one event (everything but its data)."""

    id: str
    source: str
    type: str
    specversion: str = SPECVERSION
    time: datetime | None = None
    datacontenttype: str | None = None
    extensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Encoded:
    """An event ready for ``publish(topic, data, key=..., headers=...)``.

    ``topic`` is the event class's topic, or the one given to ``encode``
    (None for plain data encoded without one).
    """

    topic: str | None
    data: bytes
    headers: dict[str, bytes]
    envelope: Envelope

    @property
    def id(self) -> str:
        return self.envelope.id


@dataclass(frozen=True, slots=True)
class Decoded(Generic[E]):
    """A received event as its class, and the attributes it came with."""

    event: E
    envelope: Envelope


# -- encoding ---------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and ``Z``: ``2024-07-01T12:00:00.123Z``. Naive means local time."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def encode_data(data: Any) -> tuple[bytes, str]:
    """The bytes of ``data`` and their content type (see the module docstring)."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data), OCTET_STREAM
    if isinstance(data, str):
        return data.encode("utf-8"), TEXT
    if is_pydantic_model(type(data)):
        return data.model_dump_json(by_alias=True).encode("utf-8"), JSON
    try:
        return msgspec.json.encode(data), JSON
    except (TypeError, msgspec.EncodeError) as exc:
        raise TypeError(f"cannot encode {type(data).__name__} as event data: {exc}") from exc


def encode(
    event: Any,
    *,
    source: str,
    topic: str | None = None,
    type: str | None = None,
    id: str | None = None,
    time: datetime | None = None,
    content_type: str | None = None,
    extensions: Mapping[str, str] | None = None,
    headers: Mapping[str, str | bytes] | None = None,
) -> Encoded:
    """Encode an event (or plain data) and its CloudEvents attributes.

    ``source`` is the producing service's name. For a declared event the
    topic and type come from its class (``topic``/``type`` override them);
    plain data needs a ``type`` or a ``topic`` (which then serves as the type).
    ``id`` defaults to a new UUIDv7, ``time`` to the moment that id was made.
    ``headers`` are carried along; they may not set a CloudEvents header.
    """
    if not source:
        raise ValueError("an event's source (the service's name) must not be empty")
    if is_event_class(event.__class__):
        info = event_info(event.__class__)
        topic = topic or info.topic
        type = type or info.type
    ce_type = type or topic
    if not ce_type:
        raise ValueError("plain event data needs a type= or a topic= to use as its CloudEvents type")
    data, default_content_type = encode_data(event)
    if id is None:
        made = ids.uuid7()
        id = str(made)
        if time is None:
            time = datetime.fromtimestamp(ids.timestamp_ms(made) / 1000, UTC)
    moment = time if time is not None else datetime.now(UTC)
    envelope = Envelope(
        id=id,
        source=source,
        type=ce_type,
        time=datetime.fromisoformat(format_time(moment)),
        datacontenttype=content_type or default_content_type,
        extensions=dict(extensions or {}),
    )
    return Encoded(topic=topic, data=data, headers=envelope_headers(envelope, headers), envelope=envelope)


def envelope_headers(envelope: Envelope, extra: Mapping[str, str | bytes] | None = None) -> dict[str, bytes]:
    """The binary-mode headers of ``envelope`` (plus ``extra``, which must not clash with them)."""
    out: dict[str, bytes] = {
        "ce_specversion": envelope.specversion.encode(),
        "ce_id": envelope.id.encode(),
        "ce_source": envelope.source.encode(),
        "ce_type": envelope.type.encode(),
    }
    if envelope.time is not None:
        out["ce_time"] = format_time(envelope.time).encode()
    if envelope.datacontenttype:
        out[CONTENT_TYPE_HEADER] = envelope.datacontenttype.encode()
    for name, value in envelope.extensions.items():
        if not _ATTRIBUTE_NAME.fullmatch(name) or name in _CORE:
            raise ValueError(f"{name!r} is not a valid CloudEvents extension attribute name")
        out[HEADER_PREFIX + name] = value.encode()
    for name, raw in (extra or {}).items():
        lowered = name.lower()
        if lowered.startswith(HEADER_PREFIX) or lowered == CONTENT_TYPE_HEADER:
            raise ValueError(f"header {name!r} is a CloudEvents attribute: pass it as an argument instead")
        out[name] = raw.encode() if isinstance(raw, str) else bytes(raw)
    return out


# -- decoding ---------------------------------------------------------------------------------


def read_envelope(headers: Mapping[str, bytes | str]) -> Envelope:
    """The CloudEvents attributes in ``headers``; ``EventValidationError`` if they are not a CloudEvent."""
    attributes: dict[str, str] = {}
    content_type: str | None = None
    for name, raw in headers.items():
        lowered = name.lower()
        try:
            value = raw if isinstance(raw, str) else bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(f"header {name!r} is not UTF-8") from None
        if lowered == CONTENT_TYPE_HEADER:
            content_type = value
        elif lowered.startswith(HEADER_PREFIX):
            attributes[lowered[len(HEADER_PREFIX) :]] = value
    missing = [name for name in REQUIRED if not attributes.get(name)]
    if missing:
        names = ", ".join(HEADER_PREFIX + name for name in missing)
        raise _invalid(f"not a CloudEvent: missing {names}", attributes.get("type"))
    if attributes["specversion"] != SPECVERSION:
        raise _invalid(
            f"unsupported CloudEvents specversion {attributes['specversion']!r}", attributes["type"]
        )
    moment: datetime | None = None
    if "time" in attributes:
        try:
            moment = datetime.fromisoformat(attributes["time"])
        except ValueError:
            raise _invalid(f"ce_time {attributes['time']!r} is not RFC 3339", attributes["type"]) from None
        if moment.tzinfo is None:
            raise _invalid(f"ce_time {attributes['time']!r} has no UTC offset", attributes["type"])
    return Envelope(
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        specversion=SPECVERSION,
        time=moment,
        datacontenttype=content_type,
        extensions={k: v for k, v in attributes.items() if k not in _CORE},
    )


def is_json(content_type: str | None) -> bool:
    """``application/json``, any ``+json`` type, or none said (JSON is the default)."""
    if content_type is None:
        return True
    essence = content_type.split(";", 1)[0].strip().lower()
    return essence == JSON or essence.endswith("+json")


@functools.cache
def _decoder(into: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(into)


def decode_data(data: bytes, into: type[E], *, content_type: str | None = None) -> E:
    """``data`` as an ``into``: an event class, a pydantic model, or any type msgspec decodes JSON into.

    ``into=bytes`` returns the bytes as they are, whatever the content type.
    """
    if into is bytes:
        return cast(E, bytes(data))
    name = event_info(into).type if is_event_class(into) else getattr(into, "__qualname__", repr(into))
    if not is_json(content_type):
        raise _invalid(f"cannot decode {content_type!r} data as {name}: JSON expected", name)
    if is_pydantic_model(into):
        try:
            return cast(E, into.model_validate_json(data))  # type: ignore[attr-defined]
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise _invalid(f"invalid {name}: {exc}", name) from exc
    try:
        return cast(E, _decoder(cast(Any, into)).decode(data))
    except msgspec.DecodeError as exc:  # ValidationError included
        raise _invalid(f"invalid {name}: {exc}", name) from exc


def decode(data: bytes, headers: Mapping[str, bytes | str], into: type[E]) -> Decoded[E]:
    """The event in a received record, with its attributes; ``EventValidationError`` if it is not one."""
    envelope = read_envelope(headers)
    try:
        event = decode_data(data, into, content_type=envelope.datacontenttype)
    except EventValidationError as exc:
        raise _invalid(f"event {envelope.id} ({envelope.type}): {exc.detail}", envelope.type) from exc
    return Decoded(event=event, envelope=envelope)


def _invalid(detail: str, event_type: str | None = None) -> EventValidationError:
    return EventValidationError(detail, event_type=event_type, detail=detail)
