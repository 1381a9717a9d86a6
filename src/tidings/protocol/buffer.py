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
as ``memoryview`` slices of it. That is the common case for small frames.
A small frame that straddles reads goes to a carry-over ``bytearray`` and is
copied out of it once, into ``bytes``, because a ``bytearray`` that has
exported a view can no longer be resized.

A large frame (``ASSEMBLE_BYTES`` and more, e.g. a Produce of a 1 MiB
batch) straddles many reads. Once ``ASSEMBLE_BYTES`` of it are here, it gets
a ``bytearray`` of exactly its size, the bytes so far are moved there once,
and the rest of the frame is written into it in place: either copied from
each read chunk (``feed``), or read straight into it by the transport
(``writable`` and ``wrote``, for ``asyncio.BufferedProtocol``), which copies
nothing at all. The frame comes out as a view of that buffer, which is never
resized. Waiting for ``ASSEMBLE_BYTES`` before allocating keeps a peer from
making us allocate a whole frame with a four-byte prefix.

A view of a chunk keeps the whole chunk alive: owners that hold on to
batches for long should copy them.
"""

from __future__ import annotations

from tidings.errors import FrameTooLarge, MalformedFrame
from tidings.protocol.codec import LENGTH, LENGTH_SIZE, MIN_FRAME_LENGTH
from tidings.records import Buffer

ASSEMBLE_BYTES = 64 * 1024
"""A frame at least this long is assembled in a buffer of its own once this much of it is here."""


class ReceiveBuffer:
    """Accumulates received bytes and cuts them into frame bodies."""

    __slots__ = ("_data", "_filled", "_frame", "_position", "max_frame_size")

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        """The largest ``length`` field accepted. The connection lowers it during the handshake."""
        self._data: bytes | bytearray = b""
        self._position = 0
        self._frame: bytearray | None = None
        """The body of the large frame being assembled (see the module), or None."""
        self._filled = 0
        """Bytes of ``_frame`` received so far."""

    def __len__(self) -> int:
        """Bytes received and not yet returned as frames."""
        if self._frame is not None:
            return LENGTH_SIZE + self._filled + len(self._data) - self._position
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
        if self._frame is not None:
            self._fill(data)
            return
        if self._position == len(self._data):
            # Keep the chunk itself: frames inside it are sliced out without a copy. A mutable
            # buffer is copied once, because the owner may reuse it after this call.
            self._data = data if type(data) is bytes else bytes(data)
            self._position = 0
            self._assemble()
            return
        if isinstance(self._data, bytes):
            carry = bytearray(memoryview(self._data)[self._position :])
        else:
            carry = self._data
            del carry[: self._position]
        carry += data
        self._data = carry
        self._position = 0
        self._assemble()

    def writable(self) -> memoryview | None:
        """Where the next read may go directly: the rest of the frame being assembled, or None."""
        if self._frame is None or self._filled == len(self._frame):
            return None
        return memoryview(self._frame)[self._filled :]

    def wrote(self, nbytes: int) -> None:
        """``nbytes`` were read into the view ``writable`` returned."""
        assert self._frame is not None and self._filled + nbytes <= len(self._frame)
        self._filled += nbytes

    def _fill(self, data: Buffer) -> None:
        """Copy a chunk into the frame being assembled; what follows the frame is buffered as usual."""
        assert self._frame is not None
        take = min(len(data), len(self._frame) - self._filled)
        view = memoryview(data)
        self._frame[self._filled : self._filled + take] = view[:take]
        self._filled += take
        if take < len(data):
            if type(data) is bytes:
                self._data, self._position = data, take  # the rest stays in the chunk, uncopied
            else:
                self._data, self._position = bytes(view[take:]), 0

    def _assemble(self) -> None:
        """Move a large incomplete frame into a buffer of its own size (see the module)."""
        buffered = len(self._data) - self._position
        if buffered < LENGTH_SIZE + ASSEMBLE_BYTES:
            return
        (length,) = LENGTH.unpack_from(self._data, self._position)
        if not ASSEMBLE_BYTES <= length <= self.max_frame_size or buffered >= LENGTH_SIZE + length:
            return  # small, complete, or refused by head_length
        frame = bytearray(length)
        start = self._position + LENGTH_SIZE
        frame[: buffered - LENGTH_SIZE] = memoryview(self._data)[start:]
        self._frame, self._filled = frame, buffered - LENGTH_SIZE
        self._data, self._position = b"", 0

    def head_length(self) -> int | None:
        """The ``length`` field of the next frame, once its four bytes are here, after checking it.

        Raises ``FrameTooLarge`` or ``MalformedFrame`` (a length too short to
        hold a kind and a header length) as soon as the prefix is complete.
        """
        if self._frame is not None:
            return len(self._frame)  # checked before it was allocated
        if len(self._data) - self._position < LENGTH_SIZE:
            return None
        (length,) = LENGTH.unpack_from(self._data, self._position)
        if length > self.max_frame_size:
            raise FrameTooLarge(f"peer announced a {length}-byte frame; the limit is {self.max_frame_size}")
        if length < MIN_FRAME_LENGTH:
            raise MalformedFrame(f"peer announced a {length}-byte frame; the minimum is {MIN_FRAME_LENGTH}")
        return int(length)

    def frame_ready(self) -> bool:
        """Whether a whole frame is buffered (without checking its prefix against the limits)."""
        if self._frame is not None:
            return self._filled == len(self._frame)
        if len(self) < LENGTH_SIZE:
            return False
        (length,) = LENGTH.unpack_from(self._data, self._position)
        return bool(len(self) >= LENGTH_SIZE + length)

    def next_frame(self) -> memoryview | None:
        """The next frame's body (the ``length`` bytes after its prefix), or None until it is all here."""
        frame = self._frame
        if frame is not None:
            if self._filled < len(frame):
                return None
            self._frame, self._filled = None, 0  # never resized again: the view may be kept
            if len(self._data) - self._position:
                self._assemble()
            return memoryview(frame)
        length = self.head_length()
        if length is None:
            return None
        data, start = self._data, self._position + LENGTH_SIZE
        end = start + length
        if len(data) < end:
            return None
        if end == len(data):
            self._data = b""  # drop our reference: the frame's views keep what they need alive
            self._position = 0
        else:
            self._position = end
        if isinstance(data, bytes):
            return memoryview(data)[start:end]
        return memoryview(bytes(memoryview(data)[start:end]))
