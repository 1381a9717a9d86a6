"""One exception hierarchy for everything Tidings raises.

Users catch ``TidingsError`` (or a subclass) and never see an ``OSError``,
a ``struct.error`` or a third-party client's exception: each layer translates
its failures once, at its boundary, into one of these.  Every message names
the thing that went wrong (file, offset, position, topic) so that a log line
alone is enough to act on.
"""

from __future__ import annotations

from typing import ClassVar


class TidingsError(Exception):
    """Base class of every error Tidings raises on purpose."""


# -- record batches ---------------------------------------------------------------


class InvalidBatchError(TidingsError):
    """Bytes that claim to be a record batch are not one (bad length, magic, CRC, records)."""


class CorruptBatchError(InvalidBatchError):
    """A batch's CRC32C does not match its contents: the bytes were damaged."""


# -- storage ----------------------------------------------------------------------


class StorageError(TidingsError):
    """A partition log cannot do what was asked of it."""


class LogCorruptedError(StorageError):
    """Corruption was found inside data the log had already made durable.

    The log keeps serving everything before the damaged batch and refuses to
    serve past it, or to append, until an operator decides what to do (see
    ``PartitionLog.truncate_corrupt``): nothing is deleted behind their back.
    """

    def __init__(self, message: str, *, path: str, position: int, offset: int) -> None:
        super().__init__(message)
        self.path = path
        self.position = position
        self.offset = offset


class LogFailedError(StorageError):
    """A write or fsync failed in a way that may have lost data (EIO and the like).

    After a failed fsync the kernel may have dropped dirty pages and cleared the
    error (the PostgreSQL fsync lesson), so retrying the fsync could falsely
    report success. The log stops accepting writes until it is reopened, which
    re-reads what actually reached the disk.
    """


class DiskFullError(StorageError):
    """The file system has no space left. The append was rolled back; reads go on."""


class OffsetOutOfRangeError(StorageError):
    """The requested offset is before the log start or after the log end."""


class LogClosedError(StorageError):
    """The log was closed; it must be reopened before use."""


# -- protocol ---------------------------------------------------------------------


class ProtocolError(TidingsError):
    """The wire conversation broke its rules, so the connection cannot go on.

    ``code`` is a stable string, sent in the fatal Error frame that tells the
    peer why the connection is closing. The peer's code can also tell which
    error to raise on its side. Codes never change once released; messages may.
    """

    code: ClassVar[str] = "protocol_error"


class FrameTooLarge(ProtocolError):
    """A frame is longer than the receiver's limit.

    Raised from the length prefix alone, before any of the frame is buffered,
    so a peer cannot make us hold more than one maximum-size frame. Also raised
    by ``send`` when the peer's announced limit is too small for the frame.
    """

    code: ClassVar[str] = "frame_too_large"


class MalformedFrame(ProtocolError):
    """The bytes do not decode as a frame: bad msgpack, unknown kind, wrong types, bad lengths."""

    code: ClassVar[str] = "malformed_frame"


class UnexpectedFrame(ProtocolError):
    """A well-formed frame that the connection's state or the sender's role forbids.

    For example: a frame before the handshake, a server sending Produce, or
    anything sent after Close.
    """

    code: ClassVar[str] = "unexpected_frame"


class HandshakeRejected(ProtocolError):
    """The handshake failed. The peer refused it, or no protocol version suits both sides.

    ``reason`` holds the code the refusing side gave, such as ``not_authorized``
    from a broker that rejected the token, or ``handshake_rejected`` itself.
    """

    code: ClassVar[str] = "handshake_rejected"

    def __init__(self, message: str, *, reason: str = "handshake_rejected") -> None:
        super().__init__(message)
        self.reason = reason
