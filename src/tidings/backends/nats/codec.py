"""How a Tidings message is written as a NATS message, and read back (pure).

NATS headers are text lines (``Name: value``): names are RFC 7230 tokens,
values are trimmed and may not hold CR or LF. Tidings headers and keys are
bytes. So each value is written as itself when it survives the trip (UTF-8,
printable, no surrounding whitespace, not starting with ``~b64:``) and
otherwise as ``~b64:`` followed by its base64; reading reverses it.

A stored message carries, besides the user's headers:

* ``Nats-Msg-Id``: the ``msg_id`` (JetStream deduplicates on it within the
  stream's duplicate window). A publish without one gets a generated
  ``~auto:<uuid>`` so the adapter's own retries are deduplicated too; it is
  not shown as ``Delivery.msg_id``.
* ``Tidings-Key``: the key, encoded as above (absent: no key).
* ``Tidings-Time``: the producer's clock when it published, in microseconds
  since the epoch (``Delivery.timestamp``; the server's own time is
  ``append_time``).

Header names starting with ``Nats-`` (the server acts on some of them) and
the two ``Tidings-`` names above are reserved: ``InvalidArgument``.
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from tidings.errors import InvalidArgument

MSG_ID: Final = "Nats-Msg-Id"
KEY: Final = "Tidings-Key"
TIME: Final = "Tidings-Time"
AUTO_ID_PREFIX: Final = "~auto:"
B64_MARKER: Final = "~b64:"

_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_RESERVED: Final = frozenset({KEY.lower(), TIME.lower()})


def encode_value(value: str | bytes) -> str:
    """``value`` as header text that NATS carries unchanged (see the module docstring)."""
    raw = value.encode() if isinstance(value, str) else bytes(value)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return B64_MARKER + base64.b64encode(raw).decode("ascii")
    if text == text.strip() and text.isprintable() and not text.startswith(B64_MARKER):
        return text
    return B64_MARKER + base64.b64encode(raw).decode("ascii")


def decode_value(text: str) -> bytes:
    """The bytes ``encode_value`` was given."""
    if text.startswith(B64_MARKER):
        try:
            return base64.b64decode(text[len(B64_MARKER) :], validate=True)
        except binascii.Error:
            return text.encode()
    return text.encode()


def check_header_name(name: str) -> None:
    if _NAME.fullmatch(name) is None:
        raise InvalidArgument(f"header name {name!r}: NATS header names are RFC 7230 tokens")
    if name.lower().startswith("nats-") or name.lower() in _RESERVED:
        raise InvalidArgument(f"header name {name!r} is reserved by the nats:// backend")


def check_msg_id(msg_id: str) -> None:
    if (
        msg_id.startswith(AUTO_ID_PREFIX)
        or not msg_id
        or msg_id != msg_id.strip()
        or not msg_id.isprintable()
    ):
        raise InvalidArgument(
            f"msg_id {msg_id!r}: printable text without surrounding spaces, not starting {AUTO_ID_PREFIX!r}"
        )


def outgoing_headers(
    headers: Mapping[str, str | bytes] | None,
    *,
    key: str | bytes | None,
    msg_id: str | None,
    now: datetime | None = None,
) -> dict[str, str]:
    """The NATS headers of a message to store (``msg_id`` None: a generated id, hidden on delivery).

    ``now`` is the producer's time to record (``OutgoingMessage.timestamp``); the clock's when None.
    """
    out: dict[str, str] = {}
    for name, value in (headers or {}).items():
        check_header_name(name)
        out[name] = encode_value(value)
    if msg_id is None:
        msg_id = AUTO_ID_PREFIX + uuid.uuid4().hex
    else:
        check_msg_id(msg_id)
    out[MSG_ID] = msg_id
    if key is not None:
        out[KEY] = encode_value(key)
    stamp = now or datetime.now(UTC)
    out[TIME] = str(int(stamp.timestamp() * 1_000_000))
    return out


def reply_headers(headers: Mapping[str, str | bytes] | None) -> dict[str, str] | None:
    """Headers of a request or reply (not stored: no id, key or time)."""
    if not headers:
        return None
    out: dict[str, str] = {}
    for name, value in headers.items():
        check_header_name(name)
        out[name] = encode_value(value)
    return out


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a received NATS message's headers say, decoded."""

    headers: Mapping[str, bytes]
    key: bytes | None
    msg_id: str | None
    timestamp: datetime | None


def incoming(raw: Mapping[str, str] | None) -> Incoming:
    """Split received NATS headers into the user's headers and the adapter's fields."""
    headers: dict[str, bytes] = {}
    key: bytes | None = None
    msg_id: str | None = None
    timestamp: datetime | None = None
    for name, text in (raw or {}).items():
        lowered = name.lower()
        if lowered == MSG_ID.lower():
            msg_id = None if text.startswith(AUTO_ID_PREFIX) else text
        elif lowered == KEY.lower():
            key = decode_value(text)
        elif lowered == TIME.lower():
            try:
                timestamp = datetime.fromtimestamp(int(text) / 1_000_000, UTC)
            except (ValueError, OverflowError):
                timestamp = None
        elif not lowered.startswith("nats-"):
            headers[name] = decode_value(text)
    return Incoming(headers, key, msg_id, timestamp)


def raw_msg_id(raw: Mapping[str, str] | None) -> str | None:
    """The ``Nats-Msg-Id`` as stored, generated ids included (dead letters keep it, to dedupe)."""
    for name, text in (raw or {}).items():
        if name.lower() == MSG_ID.lower():
            return text
    return None
