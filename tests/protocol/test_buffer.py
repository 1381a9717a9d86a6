"""The bounded receive buffer: reassembly, limits checked from the prefix alone, zero-copy slices."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.strategies import batch
from tidings.errors import FrameTooLarge, MalformedFrame
from tidings.protocol import (
    HANDSHAKE_MAX_FRAME_SIZE,
    NEED_DATA,
    Connection,
    Ping,
    Produce,
    Role,
    State,
    decode_frame,
    encode_bytes,
)
from tidings.protocol.buffer import ReceiveBuffer
from tidings.protocol.codec import LENGTH
from tidings.testing import ConnectionPair

MiB = 1024 * 1024


def frames_of(buffer: ReceiveBuffer) -> list[memoryview]:
    out = []
    while (body := buffer.next_frame()) is not None:
        out.append(body)
    return out


def test_length_prefix_split_byte_by_byte():
    data = encode_bytes(Produce(request_id=1, topic="orders", batches=(batch(b"a" * 100),)))
    buffer = ReceiveBuffer(MiB)
    for index in range(len(data) - 1):
        buffer.feed(data[index : index + 1])
        assert buffer.next_frame() is None
        assert len(buffer) == index + 1
    buffer.feed(data[-1:])
    body = buffer.next_frame()
    assert body is not None and bytes(body) == data[4:]
    assert len(buffer) == 0


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 300), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 400), max_size=20),
)
def test_any_split_yields_the_same_frame_bodies(sizes, cuts):
    frames = [
        encode_bytes(Ping(nonce=n))
        if n % 3
        else encode_bytes(Produce(request_id=n, topic="t", batches=(batch(b"x" * n),)))
        for n in sizes
    ]
    stream = b"".join(frames)
    buffer = ReceiveBuffer(MiB)
    got: list[bytes] = []
    position = 0
    for cut in [*cuts, len(stream)]:
        buffer.feed(stream[position : position + cut])
        position += cut
        got.extend(bytes(body) for body in frames_of(buffer))
        if position >= len(stream):
            break
    assert got == [f[4:] for f in frames]
    assert len(buffer) == 0


def test_a_frame_inside_one_read_is_a_view_of_that_read():
    data = encode_bytes(Ping(nonce=1)) + encode_bytes(Ping(nonce=2))
    buffer = ReceiveBuffer(MiB)
    buffer.feed(data)
    first, second = frames_of(buffer)
    assert first.obj is data and second.obj is data


def test_a_frame_straddling_reads_is_copied_out_once():
    data = encode_bytes(Ping(nonce=1))
    buffer = ReceiveBuffer(MiB)
    buffer.feed(data[:5])
    buffer.feed(data[5:])
    (body,) = frames_of(buffer)
    assert isinstance(body.obj, bytes) and body.obj == data[4:]


def test_mutable_reads_are_copied_so_the_owner_may_reuse_them():
    data = bytearray(encode_bytes(Ping(nonce=1)))
    buffer = ReceiveBuffer(MiB)
    buffer.feed(data)
    data[:] = b"\xff" * len(data)
    (body,) = frames_of(buffer)
    assert decode_frame(body) == Ping(nonce=1)


def test_oversized_prefix_is_refused_alone_without_allocating():
    pair = ConnectionPair()
    pair.handshake()
    tracemalloc.start()
    try:
        with pytest.raises(FrameTooLarge, match="104857600-byte frame; the limit is 8388608"):
            pair.server.receive_data(LENGTH.pack(100 * MiB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    assert pair.server.state is State.ERROR
    assert pair.server.buffered == 0


def test_oversized_prefix_split_across_reads_is_refused_when_complete():
    conn = Connection(Role.SERVER)
    prefix = LENGTH.pack(100 * MiB)
    conn.receive_data(prefix[:2])
    assert conn.next_event() is NEED_DATA
    with pytest.raises(FrameTooLarge):
        conn.receive_data(prefix[2:])
    with pytest.raises(FrameTooLarge):
        conn.next_event()  # the error sticks


def test_oversized_prefix_behind_a_valid_frame_is_refused_by_next_event():
    pair = ConnectionPair()
    pair.handshake()
    pair.server.receive_data(encode_bytes(Ping(nonce=1)) + LENGTH.pack(9 * MiB))
    assert pair.server.next_event() == Ping(nonce=1)
    with pytest.raises(FrameTooLarge):
        pair.server.next_event()


def test_handshake_frames_are_limited_to_64_kib():
    conn = Connection(Role.SERVER)
    with pytest.raises(FrameTooLarge, match=f"limit is {HANDSHAKE_MAX_FRAME_SIZE}"):
        conn.receive_data(LENGTH.pack(HANDSHAKE_MAX_FRAME_SIZE + 1))


def test_the_limit_is_the_connections_after_the_handshake():
    pair = ConnectionPair(server_max_frame_size=2 * MiB)
    pair.handshake()
    big = batch(b"x" * (MiB + 1))
    frames = pair.send(Role.CLIENT, Produce(request_id=1, topic="t", batches=(big,)))
    assert frames[0].batches == (big,)
    with pytest.raises(FrameTooLarge):
        pair.server.receive_data(LENGTH.pack(2 * MiB + 1))


def test_length_too_short_for_a_frame_is_malformed_at_once():
    conn = Connection(Role.SERVER)
    with pytest.raises(MalformedFrame, match="4-byte frame; the minimum is 5"):
        conn.receive_data(LENGTH.pack(4))


def test_feeding_without_draining_is_refused():
    conn = Connection(Role.SERVER)
    conn.receive_data(encode_bytes(Ping(nonce=1)))
    with pytest.raises(RuntimeError, match="until it returns NEED_DATA"):
        conn.receive_data(b"\x00")


def test_buffer_never_exceeds_one_frame_plus_one_read():
    """Fed in 64 KiB reads and drained each time, the buffer stays under limit + prefix + read."""
    pair = ConnectionPair(server_max_frame_size=MiB)
    pair.handshake()
    produce = Produce(request_id=1, topic="t", batches=(batch(b"x" * (MiB - 200)),))
    stream = b"".join(encode_bytes(produce, max_frame_size=MiB) for _ in range(3))
    read = 64 * 1024
    high_water = 0
    received = 0
    for start in range(0, len(stream), read):
        pair.server.receive_data(stream[start : start + read])
        high_water = max(high_water, pair.server.buffered)
        received += len(list(pair.server.events()))
    assert received == 3
    assert high_water <= MiB + 4 + read
