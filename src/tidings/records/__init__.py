"""The record-batch format, pure: build, check, stamp and read batches.

Shared by the client, the protocol and the storage engine so that a batch is
encoded once by its producer and never re-encoded. Byte layout:
``tidings.records.layout`` and docs/format.md.
"""

from tidings.records.batch import (
    BatchHeader,
    Buffer,
    check_batch,
    crc32c,
    iter_batches,
    read_header,
    stamped_header,
    validate_records,
)
from tidings.records.builder import BatchBuilder, Record, build_batch, iter_records, now_ms
from tidings.records.layout import HEADER_SIZE, MAGIC
from tidings.records.partitioning import partition_for_key

__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "BatchBuilder",
    "BatchHeader",
    "Buffer",
    "Record",
    "build_batch",
    "check_batch",
    "crc32c",
    "iter_batches",
    "iter_records",
    "now_ms",
    "partition_for_key",
    "read_header",
    "stamped_header",
    "validate_records",
]
