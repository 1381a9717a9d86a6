"""One exception hierarchy for everything Tidings raises.

Users catch ``TidingsError`` (or a subclass) and never see an ``OSError``,
a ``struct.error`` or a third-party client's exception: each layer translates
its failures once, at its boundary, into one of these.  Every message names
the thing that went wrong (file, offset, position, topic) so that a log line
alone is enough to act on.
"""

from __future__ import annotations


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
