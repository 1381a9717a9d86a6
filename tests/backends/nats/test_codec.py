"""Headers, keys, ids and producer time as NATS headers: everything comes back as it was given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidings.backends.nats import codec
from tidings.errors import InvalidArgument


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"plain",
        "v\u00e9".encode(),
        b"\x00\xff",
        b" padded ",
        b"line\r\nbreak",
        b"~b64:looks encoded",
        b"\t",
    ],
)
def test_values_round_trip(value: bytes) -> None:
    text = codec.encode_value(value)
    assert "\r" not in text and "\n" not in text and text == text.strip()
    assert codec.decode_value(text) == value


def test_plain_text_is_left_readable() -> None:
    assert codec.encode_value("order-7") == "order-7"
    assert codec.encode_value(b"\x00").startswith(codec.B64_MARKER)


def test_outgoing_and_incoming() -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    raw = codec.outgoing_headers({"trace": "t-1", "bin": b"\x00"}, key=b"\xffk", msg_id="pay-1", now=now)
    assert raw[codec.MSG_ID] == "pay-1"
    back = codec.incoming(raw)
    assert dict(back.headers) == {"trace": b"t-1", "bin": b"\x00"}
    assert back.key == b"\xffk" and back.msg_id == "pay-1" and back.timestamp == now


def test_a_generated_id_is_stored_but_not_shown() -> None:
    raw = codec.outgoing_headers(None, key=None, msg_id=None)
    assert raw[codec.MSG_ID].startswith(codec.AUTO_ID_PREFIX)
    back = codec.incoming(raw)
    assert back.msg_id is None and back.key is None and dict(back.headers) == {}
    assert codec.raw_msg_id(raw) == raw[codec.MSG_ID]


@pytest.mark.parametrize(
    "name", ["Nats-Msg-Id", "nats-expected-stream", "Tidings-Key", "bad name", "x:y", ""]
)
def test_reserved_or_invalid_header_names(name: str) -> None:
    with pytest.raises(InvalidArgument):
        codec.outgoing_headers({name: "v"}, key=None, msg_id=None)


@pytest.mark.parametrize("msg_id", ["", " padded", "~auto:mine", "tab\there"])
def test_bad_msg_ids(msg_id: str) -> None:
    with pytest.raises(InvalidArgument):
        codec.outgoing_headers(None, key=None, msg_id=msg_id)
