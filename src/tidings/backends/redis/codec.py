"""The bytes the adapter stores in Redis: stream entry fields, requests and replies.

A stream entry (``XADD`` field/value pairs; absent fields mean "none"):

======  =====================================================================
field   value
======  =====================================================================
``d``   the message data, raw bytes
``k``   the key, raw bytes (absent: no key)
``h``   the headers: a msgpack map of str to bin (absent: no headers)
``m``   the ``msg_id`` given to publish, UTF-8 (absent: none given)
``t``   the producer's clock at publish, Unix milliseconds, ASCII decimal
======  =====================================================================

The partition is the stream; the offset and the append time are the entry
id (``keys.StreamId``). A request (the request list) and a reply (published
on the requester's reply channel) are msgpack maps, ``Request``/``Answer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec

from tidings.backends.base import HeadersIn

_headers_encoder = msgspec.msgpack.Encoder()
_headers_decoder = msgspec.msgpack.Decoder(dict[str, bytes])


def encode_headers(headers: HeadersIn | None) -> dict[str, bytes]:
    """Headers as bytes values (text is UTF-8); an empty dict for none."""
    if not headers:
        return {}
    return {
        name: value.encode() if isinstance(value, str) else bytes(value) for name, value in headers.items()
    }


def key_bytes(key: str | bytes | None) -> bytes | None:
    return key.encode() if isinstance(key, str) else key


def entry_fields(
    data: bytes, key: bytes | None, headers: Mapping[str, bytes], msg_id: str | None, producer_ms: int
) -> dict[bytes, bytes]:
    fields = {b"d": data, b"t": str(producer_ms).encode()}
    if key is not None:
        fields[b"k"] = key
    if headers:
        fields[b"h"] = _headers_encoder.encode(dict(headers))
    if msg_id is not None:
        fields[b"m"] = msg_id.encode()
    return fields


def flatten(fields: Mapping[bytes, bytes]) -> list[bytes]:
    """Field/value pairs as one list (a Lua script's ARGV tail)."""
    return [part for pair in fields.items() for part in pair]


@dataclass(frozen=True, slots=True)
class Entry:
    """A decoded stream entry's fields."""

    data: bytes
    key: bytes | None
    headers: Mapping[str, bytes]
    msg_id: str | None
    timestamp: datetime

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes]) -> Entry:
        raw_headers = fields.get(b"h")
        raw_id = fields.get(b"m")
        return cls(
            data=fields.get(b"d", b""),
            key=fields.get(b"k"),
            headers=_headers_decoder.decode(raw_headers) if raw_headers else {},
            msg_id=raw_id.decode("utf-8", "replace") if raw_id is not None else None,
            timestamp=datetime.fromtimestamp(int(fields.get(b"t", b"0")) / 1000, UTC),
        )

    def fields(self) -> dict[bytes, bytes]:
        return entry_fields(
            self.data, self.key, self.headers, self.msg_id, int(self.timestamp.timestamp() * 1000)
        )


class Request(msgspec.Struct, frozen=True):
    """A request waiting in a topic's request list."""

    id: str
    reply_to: str
    deadline_ms: int
    data: bytes
    key: bytes | None
    headers: dict[str, bytes]
    producer_ms: int


class Answer(msgspec.Struct, frozen=True):
    """A reply, published on the requester's reply channel."""

    id: str
    data: bytes
    headers: dict[str, bytes]


def encode_request(request: Request) -> bytes:
    return msgspec.msgpack.encode(request)


def decode_request(raw: bytes) -> Request:
    return msgspec.msgpack.decode(raw, type=Request)


def encode_answer(answer: Answer) -> bytes:
    return msgspec.msgpack.encode(answer)


def decode_answer(raw: bytes) -> Answer:
    return msgspec.msgpack.decode(raw, type=Answer)
