"""Large frames are assembled in a buffer of their own size, filled by copies or by direct reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.protocol.strategies import batch
from tidings.protocol import NEED_DATA, Ping, Produce, encode_bytes
from tidings.protocol.buffer import ASSEMBLE_BYTES, ReceiveBuffer
from tidings.testing import ConnectionPair

MiB = 1024 * 1024


def big_produce(request_id: int, size: int) -> bytes:
    return encode_bytes(Produce(request_id=request_id, topic="t", batches=(batch(b"x" * size),)))


def test_a_large_frame_comes_out_of_one_buffer_of_its_size_without_a_final_copy():
    data = big_produce(1, 300_000)
    buffer = ReceiveBuffer(MiB)
    for start in range(0, len(data), 65_536):
        assert buffer.next_frame() is None
        buffer.feed(data[start : start + 65_536])
    body = buffer.next_frame()
    assert body is not None and bytes(body) == data[4:]
    assert isinstance(body.obj, bytearray) and len(body.obj) == len(data) - 4
    assert len(buffer) == 0


def test_reads_straight_into_the_frame_then_the_next_frame_as_usual():
    first, second = big_produce(1, 200_000), encode_bytes(Ping(nonce=9))
    stream = first + second
    buffer = ReceiveBuffer(MiB)
    buffer.feed(stream[: ASSEMBLE_BYTES + 10])
    position = ASSEMBLE_BYTES + 10
    while (view := buffer.writable()) is not None:
        count = min(len(view), 50_000)
        view[:count] = stream[position : position + count]
        buffer.wrote(count)
        position += count
    assert position == len(first)  # a direct read never goes past the frame
    body = buffer.next_frame()
    assert body is not None and bytes(body) == first[4:]
    buffer.feed(stream[position:])
    tail = buffer.next_frame()
    assert tail is not None and bytes(tail) == second[4:]


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0, 10, 70_000, 200_000]), min_size=1, max_size=5),
    cuts=st.lists(st.integers(1, 150_000), max_size=30),
    direct=st.booleans(),
)
def test_any_split_of_large_and_small_frames_yields_the_same_bodies(sizes, cuts, direct):
    frames = [big_produce(n, size) if size else encode_bytes(Ping(nonce=n)) for n, size in enumerate(sizes)]
    stream = b"".join(frames)
    pair = ConnectionPair()
    pair.handshake()
    conn = pair.server
    got: list[bytes] = []
    position = 0
    cuts = [*cuts, len(stream)]
    while position < len(stream):
        cut = cuts.pop(0) if cuts else len(stream)
        view = conn.receive_into() if direct else None
        if view is not None:
            count = min(cut, len(view))
            view[:count] = stream[position : position + count]
            conn.received_into(count)
        else:
            count = cut
            conn.receive_data(stream[position : position + count])
        position += count
        while (frame := conn.next_event()) is not NEED_DATA:
            got.append(encode_bytes(frame))
    assert got == frames
    assert conn.buffered == 0
