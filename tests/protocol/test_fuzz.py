"""Fuzzing: whatever bytes arrive, in whatever reads, only ``ProtocolError`` subclasses escape.

Four sources of input, from blind to structured: random bytes; random
headers behind a well-formed prefix; random msgpack values as headers of
real kinds; and mutations of valid conversations. Plus the property the
owner relies on: how the bytes are cut into reads never changes the frames.
Example counts are bounded so the whole protocol suite stays well under 30 s;
``TIDINGS_FUZZ_EXAMPLES=5000 pytest tests/protocol/test_fuzz.py`` digs deeper.
"""

from __future__ import annotations

import itertools
import os

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.protocol.strategies import FRAMES
from tidings.errors import ProtocolError
from tidings.protocol import Connection, Error, Frame, FrameKind, Role, State, decode_frame, encode_bytes
from tidings.protocol.codec import PREFIX
from tidings.protocol.state import SENDS
from tidings.testing import ConnectionPair, default_hello

FUZZ = settings(
    max_examples=int(os.environ.get("TIDINGS_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def receiver(kind: str) -> Connection:
    """A connection at an interesting point of its life, ready to receive."""
    if kind == "fresh-server":
        return Connection(Role.SERVER)
    pair = ConnectionPair()
    if kind == "client-in-handshake":
        pair.send(Role.CLIENT, default_hello(pair.client))
        return pair.client
    pair.handshake()
    return pair.server if kind == "open-server" else pair.client


receivers = st.sampled_from(["fresh-server", "client-in-handshake", "open-server", "open-client"])


def cut(data: bytes, points: list[int]) -> list[bytes]:
    """``data`` cut at ``points`` (taken modulo its length): the reads a socket might return."""
    edges = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def drive(conn: Connection, reads: list[bytes]) -> list[Frame]:
    """Feed ``reads`` as a pump would. A ProtocolError must leave the connection ERROR or CLOSED."""
    received: list[Frame] = []
    try:
        for data in reads:
            conn.receive_data(data)
            received.extend(conn.events())
    except ProtocolError:
        assert conn.state in (State.ERROR, State.CLOSED)
        if conn.state is State.ERROR:
            # The report of any error must itself be a valid frame.
            report = decode_frame(memoryview(b"".join(conn.send_error()))[4:])
            assert isinstance(report, Error) and report.fatal
    return received


@FUZZ
@given(who=receivers, data=st.binary(max_size=600), points=st.lists(st.integers(0, 600), max_size=6))
def test_random_bytes(who, data, points):
    drive(receiver(who), cut(data, points))


@FUZZ
@given(
    who=receivers,
    kind=st.sampled_from([*FrameKind, 0, 7, 99, 255]),
    header=st.binary(max_size=80),
    payload=st.binary(max_size=150),
)
def test_random_headers_behind_a_valid_prefix(who, kind, header, payload):
    data = PREFIX.pack(5 + len(header) + len(payload), kind, len(header)) + header + payload
    drive(receiver(who), [data])


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.binary(max_size=12),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=15,
)


@FUZZ
@given(who=receivers, kind=st.sampled_from(FrameKind), header=msgpack_values, payload=st.binary(max_size=100))
def test_random_msgpack_headers_of_real_kinds(who, kind, header, payload):
    encoded = msgspec.msgpack.encode(header)
    data = PREFIX.pack(5 + len(encoded) + len(payload), kind, len(encoded)) + encoded + payload
    drive(receiver(who), [data])


def ordinary_frames(role: Role) -> st.SearchStrategy[Frame]:
    """Frames ``role`` may send on an open connection (request-scoped errors only)."""
    kinds = sorted(SENDS[role])
    return st.one_of(*(FRAMES[k] for k in kinds)).filter(lambda f: not (isinstance(f, Error) and f.fatal))


@st.composite
def conversations(draw: st.DrawFn) -> tuple[Role, list[Frame], bytes]:
    sender = draw(st.sampled_from(Role))
    frames = draw(st.lists(ordinary_frames(sender), min_size=1, max_size=5))
    return sender, frames, b"".join(encode_bytes(f) for f in frames)


def open_receiver(sender: Role) -> Connection:
    pair = ConnectionPair()
    pair.handshake()
    return pair.of(sender.peer)


@FUZZ
@given(conversation=conversations(), points=st.lists(st.integers(0, 5000), max_size=12))
def test_any_cut_of_a_valid_stream_gives_the_same_frames(conversation, points):
    sender, frames, stream = conversation
    conn = open_receiver(sender)
    received = []
    for data in cut(stream, points):
        conn.receive_data(data)
        received.extend(conn.events())
    assert received == frames
    assert conn.buffered == 0 and conn.state is State.OPEN


@st.composite
def mutations(draw: st.DrawFn, stream: bytes) -> bytes:
    data = bytearray(stream)
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if operation == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif operation == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xC1, 0xFF, 0x90, 0xDD]))
        elif operation == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif operation == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        elif operation == "truncate":
            del data[at:]
    return bytes(data)


@FUZZ
@given(conversation=conversations(), data=st.data(), points=st.lists(st.integers(0, 5000), max_size=6))
def test_mutated_valid_streams(conversation, data, points):
    sender, _, stream = conversation
    mutated = data.draw(mutations(stream))
    drive(open_receiver(sender), cut(mutated, points))
