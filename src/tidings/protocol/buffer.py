"""The bounded receive buffer: bytes in, one frame body at a time out.

The bound: the buffer never holds more than one maximum-size frame plus one
read chunk. Two rules give it:

1. The owner drains complete frames (``next_frame`` until it returns None)
   before it feeds more bytes. ``feed`` refuses to add to a buffer that still
   holds a complete frame. A peer that sends faster than the owner consumes
   therefore stalls in the socket, which is TCP's own backpressure, and not
   in our memory.
2. A length prefix is checked as soon as its four bytes are here. A frame
   longer than ``max_frame_size`` raises ``FrameTooLarge`` then, before any
   of it is buffered, so a 4-byte lie cannot make us allocate 100 MiB.

Zero copy where possible. A read chunk (``bytes``) that arrives when nothing
is buffered is kept as it is, and frames that lie wholly inside it come out
as ``memoryview`` slices of it. That is the common case: small frames, or a
read as large as the frame. Only the bytes of a frame that straddles reads
go to a carry-over ``bytearray``, and each such frame is copied out of it
once, into ``bytes``, because a ``bytearray`` that has exported a view can
no longer be resized. A view of a chunk keeps the whole chunk alive: owners
that hold on to batches for long should copy them.
"""

from __future__ import annotations

from tidings.errors import FrameTooLarge, MalformedFrame
from tidings.protocol.codec import LENGTH, LENGTH_SIZE, MIN_FRAME_LENGTH
from tidings.records import Buffer


class ReceiveBuffer:
    """Accumulates received bytes and cuts them into frame bodies."""

    __slots__ = ("_data", "_position", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        """The largest ``length`` field accepted. The connection lowers it during the handshake."""
        self._data: bytes | bytearray = b""
        self._position = 0

    def __len__(self) -> int:
        """Bytes received and not yet returned as frames."""
        return len(self._data) - self._position

    def __repr__(self) -> str:
        return f"<ReceiveBuffer {len(self)} bytes buffered, limit {self.max_frame_size}>"

    def feed(self, data: Buffer) -> None:
        """Add a read chunk. Raises ``RuntimeError`` if a complete frame is still waiting to be taken.

        That is a bug in the owner, not the peer. Without the check the buffer
        would be unbounded.
        """
        if not data:
            return
        if self.frame_ready():
            raise RuntimeError(
                "receive_data() called while a complete frame is buffered: "
                "call next_event() until it returns NEED_DATA first"
            )
        if not len(self):
            # Keep the chunk itself: frames inside it are sliced out without a copy. A mutable
            # buffer is copied once, because the owner may reuse it after this call.
            self._data = data if type(data) is bytes else bytes(data)
            self._position = 0
            return
        if isinstance(self._data, bytes):
            carry = bytearray(memoryview(self._data)[self._position :])
        else:
            carry = self._data
            del carry[: self._position]
        carry += data
        self._data = carry
        self._position = 0

    def head_length(self) -> int | None:
        """The ``length`` field of the next frame, once its four bytes are here, after checking it.

        Raises ``FrameTooLarge`` or ``MalformedFrame`` (a length too short to
        hold a kind and a header length) as soon as the prefix is complete.
        """
        if len(self) < LENGTH_SIZE:
            return None
        (length,) = LENGTH.unpack_from(self._data, self._position)
        if length > self.max_frame_size:
            raise FrameTooLarge(f"peer announced a {length}-byte frame; the limit is {self.max_frame_size}")
        if length < MIN_FRAME_LENGTH:
            raise MalformedFrame(f"peer announced a {length}-byte frame; the minimum is {MIN_FRAME_LENGTH}")
        return int(length)

    def frame_ready(self) -> bool:
        """Whether a whole frame is buffered (without checking its prefix against the limits)."""
        if len(self) < LENGTH_SIZE:
            return False
        (length,) = LENGTH.unpack_from(self._data, self._position)
        return bool(len(self) >= LENGTH_SIZE + length)

    def next_frame(self) -> memoryview | None:
        """The next frame's body (the ``length`` bytes after its prefix), or None until it is all here."""
        length = self.head_length()
        if length is None or len(self) < LENGTH_SIZE + length:
            return None
        start = self._position + LENGTH_SIZE
        end = start + length
        data = self._data
        if end == len(data):
            self._data = b""  # drop our reference: the frame's views keep what they need alive
            self._position = 0
        else:
            self._position = end
        if isinstance(data, bytes):
            return memoryview(data)[start:end]
        return memoryview(bytes(memoryview(data)[start:end]))
