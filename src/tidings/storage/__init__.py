"""The log storage engine: synchronous, file-based, and blind to the network.

A topic partition is a ``PartitionLog``: a directory of segments holding
record batches (``tidings.records``) with sparse offset and time indexes,
crash recovery from a checkpoint, retention, and a durability policy with
group commit. The broker drives it from threads; nothing here awaits.
Byte layouts: the docstrings of ``segment``, ``index``, ``checkpoint`` and ``mark``,
and docs/format.md.
"""

from tidings.storage.config import FsyncPolicy, LogConfig, RetentionPolicy, SyncMode
from tidings.storage.fileio import File, FileSystem, OsFileSystem
from tidings.storage.log import PartitionLog
from tidings.storage.results import AppendResult, CorruptionReport, ReadResult, RollParams, SegmentInfo

__all__ = [
    "AppendResult",
    "CorruptionReport",
    "File",
    "FileSystem",
    "FsyncPolicy",
    "LogConfig",
    "OsFileSystem",
    "PartitionLog",
    "ReadResult",
    "RetentionPolicy",
    "RollParams",
    "SegmentInfo",
    "SyncMode",
]
