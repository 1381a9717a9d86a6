"""The frame byte layout: round trips of every kind, zero-copy payloads, and malformed input."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.strategies import FRAMES, any_frame, batch
from tidings.errors import FrameTooLarge, MalformedFrame
from tidings.protocol import (
    Ack,
    AdminRequest,
    CreateTopic,
    Deliver,
    DeliverySpan,
    Error,
    Frame,
    FrameKind,
    OffsetRange,
    PartitionRanges,
    Ping,
    Produce,
    Reply,
    Request,
    decode_frame,
    encode,
    encode_bytes,
    partition_ranges,
)
from tidings.protocol.codec import FRAME_TYPES, PREFIX, PREFIX_SIZE
from tidings.records import check_batch, iter_records


def decode_bytes(data: bytes) -> Frame:
    """Decode one whole encoded frame (prefix included)."""
    (length,) = struct.unpack_from("<I", data)
    assert length == len(data) - 4
    return decode_frame(memoryview(data)[4:])


def raw_frame(kind: int, header: bytes, payload: bytes = b"") -> bytes:
    return PREFIX.pack(5 + len(header) + len(payload), kind, len(header)) + header + payload


def body(kind: int, header: bytes, payload: bytes = b"") -> bytes:
    """A frame without its length prefix: what ``decode_frame`` takes."""
    return raw_frame(kind, header, payload)[4:]


def header_of(*fields: object) -> bytes:
    return msgspec.msgpack.encode(list(fields))


# -- round trips ----------------------------------------------------------------------------


def test_every_kind_has_a_strategy_and_a_codec():
    assert set(FRAMES) == set(FrameKind) == set(FRAME_TYPES)


@pytest.mark.parametrize("kind", list(FrameKind), ids=lambda k: k.name)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_round_trip_of_every_kind(kind, data):
    frame = data.draw(FRAMES[kind])
    encoded = encode_bytes(frame)
    assert encoded[4] == kind
    decoded = decode_bytes(encoded)
    assert type(decoded) is type(frame)
    assert decoded == frame
    assert encode_bytes(decoded) == encoded  # decoding loses nothing: re-encoding gives the same bytes


@settings(max_examples=100, deadline=None)
@given(frame=any_frame)
def test_layout_prefix_fields(frame):
    buffers = encode(frame)
    length, kind, header_length = PREFIX.unpack_from(buffers[0])
    assert kind == frame.kind
    assert len(buffers[0]) == PREFIX_SIZE + header_length
    assert length == sum(len(b) for b in buffers) - 4


def test_known_bytes_of_a_ping():
    # uint32 length 7 | kind 5 | header_length 2 | msgpack [42] = 0x91 0x2a
    assert encode_bytes(Ping(nonce=42)) == b"\x07\x00\x00\x00\x05\x02\x00\x00\x00\x91\x2a"


# -- payloads: no copies, real batches --------------------------------------------------------


def test_encode_hands_back_the_callers_batch_buffers_uncopied():
    first, second = batch(b"a", b"b"), batch(b"c")
    view = memoryview(second)
    buffers = encode(Produce(request_id=1, topic="orders", batches=(first, view)))
    assert len(buffers) == 3
    assert buffers[1] is first and buffers[2] is view


def test_decoded_batches_are_readonly_views_of_the_frame_bytes():
    batches = (batch(b"hello", b"world"), batch(b"x"))
    data = encode_bytes(Produce(request_id=7, topic="orders", batches=batches))
    frame = decode_bytes(data)
    assert isinstance(frame, Produce)
    for got, sent in zip(frame.batches, batches, strict=True):
        assert isinstance(got, memoryview) and got.readonly
        assert got.obj is data  # a slice of the received bytes, not a copy
        assert got == sent
        header = check_batch(got)
        assert [r.value for r in iter_records(got, header=header)] == [r.value for r in iter_records(sent)]


def test_request_and_reply_carry_exactly_one_batch():
    one = batch(b"question")
    request = decode_bytes(encode_bytes(Request(request_id=1, topic="pay", timeout_ms=500, batch=one)))
    assert isinstance(request, Request) and request.batch == one and isinstance(request.batch, memoryview)
    two = raw_frame(FrameKind.REPLY, header_of(1), one + one)
    with pytest.raises(MalformedFrame, match="carries 2 batches; it carries exactly one"):
        decode_bytes(two)
    with pytest.raises(MalformedFrame, match="carries 0 batches"):
        decode_bytes(raw_frame(FrameKind.REPLY, header_of(1)))


def test_encode_refuses_a_buffer_that_is_not_one_whole_batch():
    good = batch(b"a")
    with pytest.raises(MalformedFrame, match="not one whole record batch"):
        encode(Reply(request_id=1, batch=good + b"extra"))
    with pytest.raises(MalformedFrame, match="not one whole record batch"):
        encode(Produce(request_id=1, topic="t", batches=(good[:40],)))


def test_encode_refuses_a_frame_over_the_peer_limit():
    big = batch(b"x" * 70_000)
    frame = Produce(request_id=1, topic="t", batches=(big,))
    with pytest.raises(FrameTooLarge, match="exceeds the peer's limit of 65536"):
        encode(frame, max_frame_size=65_536)
    assert len(encode_bytes(frame, max_frame_size=1 << 20)) > 70_000


# -- acks are compact -----------------------------------------------------------------------


def test_ten_thousand_contiguous_acks_fit_in_a_few_dozen_bytes():
    ranges = partition_ranges(("orders", 3, offset) for offset in range(1_000_000, 1_010_000))
    assert ranges == (
        PartitionRanges(topic="orders", partition=3, ranges=(OffsetRange(first=1_000_000, last=1_009_999),)),
    )
    assert len(encode_bytes(Ack(subscription_id=1, offsets=ranges))) < 40


def test_scattered_acks_cost_about_one_range_each():
    offsets = range(1_000_000, 1_020_000, 2)  # 10,000 gaps: the worst case
    frame = Ack(subscription_id=1, offsets=partition_ranges(("orders", 0, o) for o in offsets))
    assert len(frame.offsets[0].ranges) == 10_000
    assert len(encode_bytes(frame)) < 10_000 * 12
    assert decode_bytes(encode_bytes(frame)) == frame


# -- malformed input: always MalformedFrame, naming the problem --------------------------------

VALID_BATCH = batch(b"v")

MALFORMED = {  # frame bodies (the bytes after the length prefix) and what the error must say
    "too short": (b"\x05\x00\x00", "shorter than the 5-byte minimum"),
    "unknown kind": (body(99, header_of()), "unknown frame kind 99"),
    "header longer than frame": (struct.pack("<BI", FrameKind.PING, 10), "header length 10 exceeds"),
    "bad msgpack": (body(FrameKind.PING, b"\xc1"), "bad Ping header"),
    "truncated msgpack": (body(FrameKind.PING, b"\x92\x01"), "bad Ping header"),
    "trailing bytes in header": (body(FrameKind.PING, header_of(1) + b"\x00"), "bad Ping header"),
    "wrong type": (body(FrameKind.PING, header_of("one")), "Expected `int`, got `str`"),
    "missing field": (body(FrameKind.PING, header_of()), "at least length 1"),
    "negative partition": (
        body(FrameKind.PRODUCE, header_of(1, "orders", -1, 1), VALID_BATCH),
        "Expected `int` >= 0",
    ),
    "bad topic name": (
        body(FrameKind.PRODUCE, header_of(1, "orders..eu", None, 1), VALID_BATCH),
        r"matching regex .* at `\$\[1\]`",
    ),
    "unknown ack mode": (body(FrameKind.PRODUCE, header_of(1, "orders", None, 9), VALID_BATCH), "enum"),
    "produce without batches": (body(FrameKind.PRODUCE, header_of(1, "orders", None, 1)), "at least one"),
    "payload on a ping": (body(FrameKind.PING, header_of(1), b"\x00"), "it has no payload"),
    "partial batch header": (
        body(FrameKind.PRODUCE, header_of(1, "t", None, 1), VALID_BATCH + b"\x00" * 10),
        "less than a 64-byte batch header",
    ),
    "batch longer than payload": (
        body(FrameKind.PRODUCE, header_of(1, "t", None, 1), VALID_BATCH[:-1]),
        "claims",
    ),
    "batch length below header size": (
        body(FrameKind.PRODUCE, header_of(1, "t", None, 1), b"\x00" * 64),
        "claims 0 bytes",
    ),
    "span beyond batches": (
        body(FrameKind.DELIVER, header_of(1, "t", 0, [[3, 0, 0, 1]]), VALID_BATCH),
        "names batch 3 of 1",
    ),
    "batch without a span": (
        body(FrameKind.DELIVER, header_of(1, "t", 0, [[0, 0, 0, 1]]), VALID_BATCH + VALID_BATCH),
        r"batches \[1\] have no delivery span",
    ),
    "span backwards": (
        body(FrameKind.DELIVER, header_of(1, "t", 0, [[0, 5, 4, 1]]), VALID_BATCH),
        "last 4 < first 5",
    ),
    "overlapping ack ranges": (
        body(FrameKind.ACK, header_of(1, [["t", 0, [[1, 5], [5, 9]]]])),
        "overlapping or adjacent",
    ),
    "adjacent ack ranges": (
        body(FrameKind.ACK, header_of(1, [["t", 0, [[1, 5], [6, 9]]]])),
        "overlapping or adjacent",
    ),
    "empty ack": (body(FrameKind.ACK, header_of(1, [])), "no partitions"),
    "partition acked twice": (
        body(FrameKind.ACK, header_of(1, [["t", 0, [[1, 1]]], ["t", 0, [[3, 3]]]])),
        "appears twice",
    ),
    "unknown admin body": (body(FrameKind.ADMIN_REQUEST, header_of(1, [42, "x"])), "Invalid value 42"),
    "half a producer claim": (
        body(FrameKind.HELLO, header_of(1, "svc", "c", 1 << 20, None, [5, None])),
        "both producer_id and producer_epoch",
    ),
    "frame limit below minimum": (body(FrameKind.HELLO, header_of(1, "svc", "c", 100)), ">= 65536"),
    "bad error code": (body(FrameKind.ERROR, header_of("Not Snake", "m")), "matching regex"),
}


@pytest.mark.parametrize(("data", "problem"), list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_frames_are_named(data, problem):
    with pytest.raises(MalformedFrame, match=problem):
        decode_frame(memoryview(data))


def test_newer_peers_may_append_fields():
    frame = decode_bytes(raw_frame(FrameKind.PING, header_of(42, "a field from a newer version")))
    assert frame == Ping(nonce=42)


def test_optional_fields_may_be_left_out():
    frame = decode_bytes(raw_frame(FrameKind.ERROR, header_of("busy", "try later")))
    assert frame == Error(code="busy", message="try later", request_id=None)


def test_admin_bodies_are_tagged():
    frame = AdminRequest(
        request_id=3, body=CreateTopic(name="orders", partitions=4, config={"fsync": "always"})
    )
    data = encode_bytes(frame)
    assert msgspec.msgpack.decode(data[PREFIX_SIZE:]) == [3, [0, "orders", 4, {"fsync": "always"}]]
    assert decode_bytes(data) == frame


def test_deliver_spans_name_their_batch():
    b0, b1 = batch(b"a"), batch(b"b", b"c")
    frame = Deliver(
        subscription_id=2,
        topic="orders",
        partition=1,
        spans=(
            DeliverySpan(batch=0, first=10, last=10),
            DeliverySpan(batch=1, first=11, last=11, delivery=3),
        ),
        batches=(b0, b1),
    )
    assert decode_bytes(encode_bytes(frame)) == frame
