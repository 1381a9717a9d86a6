"""Reading, checking and stamping record batches without decoding their records.

These are the functions the broker runs on every batch it receives or serves,
so each does a fixed amount of work per batch (one header unpack, one or two
CRC32C runs in C); only ``validate_records`` walks the records, and it reads
their 24-byte prefixes, never their contents. The layout is in
``tidings.records.layout``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import crc32c as _crc32c

from tidings.errors import CorruptBatchError, InvalidBatchError
from tidings.records import layout as L

Buffer = bytes | bytearray | memoryview

_records_tile_c: Callable[[Buffer, int, int, int, int], bool] | None
_headers_over_c: Callable[[Buffer, int, int, int], int] | None
_records_skip_c: Callable[[Buffer, int, int, int], int] | None
try:  # the C walks of record prefixes; the Python ones below give the same answers
    from tidings._speedups import records_headers_over as _headers_over_c
    from tidings._speedups import records_skip as _records_skip_c
    from tidings._speedups import records_tile as _records_tile_c
except ImportError:  # pragma: no cover - the extension is optional
    _records_tile_c = _headers_over_c = _records_skip_c = None

SPEEDUPS = _records_tile_c is not None


def crc32c(data: Buffer) -> int:
    """CRC32C (Castagnoli), the checksum of iSCSI, ext4 and Kafka, computed in C (SSE4.2).

    Takes any buffer, so a slice of a ``memoryview`` is checked without a copy.
    """
    return int(_crc32c.crc32c(data))


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The 64-byte header of a record batch, decoded."""

    base_offset: int
    append_time: int
    length: int
    crc: int
    header_crc: int
    magic: int
    attributes: int
    record_count: int
    first_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.record_count - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.record_count

    @property
    def compression(self) -> int:
        return self.attributes & L.COMPRESSION_MASK

    @property
    def idempotent(self) -> bool:
        return self.producer_id != L.NO_PRODUCER


def read_header(buf: Buffer, position: int = 0) -> BatchHeader:
    """Decode the header at ``position``; checks only that 64 bytes are there."""
    if len(buf) - position < L.HEADER_SIZE:
        raise InvalidBatchError(
            f"truncated batch header at position {position}: "
            f"{len(buf) - position} bytes, need {L.HEADER_SIZE}"
        )
    return BatchHeader(*L.HEADER.unpack_from(buf, position))


def header_crc_of(buf: Buffer, position: int = 0) -> int:
    return crc32c(memoryview(buf)[position : position + L.HEADER_CRC_OFFSET])


def check_batch(buf: Buffer, position: int = 0, *, available: int | None = None) -> BatchHeader:
    """Check the batch at ``position`` against both checksums and return its header.

    ``available`` bounds how many bytes from ``position`` belong to the caller
    (default: to the end of ``buf``); a batch that claims more is truncated.
    This is the check a log runs on every batch it appends or serves: it costs
    two CRC32C runs and no per-record work.
    """
    end_of_data = len(buf) if available is None else min(len(buf), position + available)
    header = read_header(buf, position)
    if header.header_crc != header_crc_of(buf, position):
        raise CorruptBatchError(
            f"batch header checksum mismatch at position {position} (stored {header.header_crc:#010x})"
        )
    if header.magic != L.MAGIC:
        raise InvalidBatchError(
            f"unknown batch format version {header.magic} at position {position} "
            f"(this build reads version {L.MAGIC})"
        )
    if header.length < L.HEADER_SIZE + L.RECORD_PREFIX_SIZE:
        raise InvalidBatchError(f"batch length {header.length} at position {position} too small")
    if position + header.length > end_of_data:
        raise InvalidBatchError(
            f"truncated batch at position {position}: length {header.length}, "
            f"only {end_of_data - position} bytes present"
        )
    if header.record_count < 1:
        raise InvalidBatchError(f"batch at position {position} holds no records")
    if header.attributes & ~L.COMPRESSION_MASK:
        raise InvalidBatchError(
            f"batch at position {position} sets reserved attribute bits {header.attributes:#04x}"
        )
    if header.compression != L.COMPRESSION_NONE:
        raise InvalidBatchError(
            f"batch at position {position} uses unsupported compression codec {header.compression}"
        )
    if header.max_timestamp < header.first_timestamp:
        raise InvalidBatchError(
            f"batch at position {position}: max_timestamp {header.max_timestamp} "
            f"< first_timestamp {header.first_timestamp}"
        )
    body = memoryview(buf)[position + L.CRC_START : position + header.length]
    if crc32c(body) != header.crc:
        raise CorruptBatchError(
            f"batch checksum mismatch at position {position} "
            f"(base offset {header.base_offset}, {header.record_count} records)"
        )
    return header


def validate_records(buf: Buffer, header: BatchHeader, position: int = 0) -> None:
    """Walk the record prefixes and check that they tile the batch exactly.

    Run on batches arriving from the network (a producer with a bug can send a
    batch whose CRC matches garbage); batches read back from disk were checked
    on the way in and only need ``check_batch``.

    This is the only per-record work of an append, so a tight loop answers
    yes or no first (in C when ``tidings._speedups`` is built, else
    ``_records_tile``); only a batch it rejects is walked a second time, by
    ``_walk_records``, which has the last word and says what is wrong.
    """
    if _records_tile_c is not None:
        span = header.max_timestamp - header.first_timestamp
        start = position + L.HEADER_SIZE
        if _records_tile_c(buf, start, position + header.length, header.record_count, span):
            return
    elif _records_tile(buf, header, position):
        return
    _walk_records(buf, header, position)


def _records_tile(buf: Buffer, header: BatchHeader, position: int) -> bool:
    """True when ``_walk_records`` would find nothing wrong; the fast half of ``validate_records``.

    The same checks, in one ``struct`` call and a few comparisons per record:
    bounds are left to ``unpack_from`` on a view that ends with the batch.
    False also when ``buf`` is shorter than the batch: the slow walk decides.
    """
    start = position + L.HEADER_SIZE
    view = memoryview(buf)[start : position + header.length]
    if len(view) != header.length - L.HEADER_SIZE:
        return False
    span = header.max_timestamp - header.first_timestamp
    unpack = L.RECORD_PREFIX.unpack_from
    prefix, no_key = L.RECORD_PREFIX_SIZE, L.NO_KEY
    cursor = 0
    try:
        for index in range(header.record_count):
            length, delta, ts_delta, key_len, value_len, headers_len = unpack(view, cursor)
            if delta != index or ts_delta < 0 or ts_delta > span or key_len < no_key:
                return False
            if key_len > 0:
                value_len += key_len
            if length != prefix + value_len + headers_len:
                return False
            cursor += length
    except struct.error:  # a prefix runs past the batch
        return False
    return cursor == len(view)


def _walk_records(buf: Buffer, header: BatchHeader, position: int) -> None:
    """The record walk, one check at a time: raises ``InvalidBatchError`` naming the first fault, if any."""
    cursor = position + L.HEADER_SIZE
    end = position + header.length
    span = header.max_timestamp - header.first_timestamp
    unpack = L.RECORD_PREFIX.unpack_from
    for index in range(header.record_count):
        if end - cursor < L.RECORD_PREFIX_SIZE:
            raise InvalidBatchError(
                f"record {index} of batch at position {position} is truncated at {cursor}"
            )
        length, delta, ts_delta, key_len, value_len, headers_len = unpack(buf, cursor)
        if delta != index:
            raise InvalidBatchError(
                f"record {index} of batch at position {position} has offset delta {delta}"
            )
        if not 0 <= ts_delta <= span:
            raise InvalidBatchError(
                f"record {index} of batch at position {position} has timestamp delta {ts_delta} "
                f"outside the batch's range 0..{span}"
            )
        body = max(key_len, 0) + value_len + headers_len
        if key_len < L.NO_KEY or length != L.RECORD_PREFIX_SIZE + body or cursor + length > end:
            raise InvalidBatchError(
                f"record {index} of batch at position {position} has inconsistent lengths "
                f"(record {length}, key {key_len}, value {value_len}, headers {headers_len})"
            )
        cursor += length
    if cursor != end:
        raise InvalidBatchError(
            f"batch at position {position} has {end - cursor} bytes after its {header.record_count} records"
        )


def skip_records(buf: Buffer, cursor: int, end: int, count: int) -> int:
    """The byte position ``count`` records after the record at ``cursor``, in a batch ending at ``end``.

    Reads only each prefix's length, so a consumer handed a span from the
    middle of a batch of thousands of records reaches the span without
    decoding what lies before it. ``InvalidBatchError`` when the records do not
    fit (a batch that was checked, ``check_batch`` and ``validate_records``,
    never fails here). In C when ``tidings._speedups`` is built; the Python
    walk is the reference, held to the same answers by a test.
    """
    if count <= 0:
        return cursor
    if _records_skip_c is not None:
        found = _records_skip_c(buf, cursor, end, count)
    else:
        found = _skip_records(buf, cursor, end, count)
    if found < 0:
        raise InvalidBatchError(f"records from position {cursor} run past their batch (end {end})")
    return found


def _skip_records(buf: Buffer, cursor: int, end: int, count: int) -> int:
    if not 0 <= cursor <= end <= len(buf):
        return -1
    unpack = _LENGTH_AND_HEADERS.unpack_from
    for _ in range(count):
        if end - cursor < L.RECORD_PREFIX_SIZE:
            return -1
        length = unpack(buf, cursor)[0]
        if length < L.RECORD_PREFIX_SIZE or end - cursor < length:
            return -1
        cursor += length
    return cursor


def stamped_header(buf: Buffer, base_offset: int, append_time: int, position: int = 0) -> bytes:
    """Return the batch's 64-byte header with a new base offset and append time.

    Only the stamped fields and ``header_crc`` change; the records and their
    ``crc`` are untouched, so the caller can write this header followed by
    the original bytes from ``position + 64`` without copying them.
    """
    header = bytearray(buf[position : position + L.HEADER_SIZE])
    L.STAMPED.pack_into(
        header,
        0,
        base_offset,
        append_time,
        *L.STAMPED.unpack_from(header, 0)[2:],
    )
    L.HEADER_CRC.pack_into(header, L.HEADER_CRC_OFFSET, crc32c(memoryview(header)[: L.HEADER_CRC_OFFSET]))
    return bytes(header)


def iter_batches(buf: Buffer) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` for each checked batch in a concatenation of batches."""
    position = 0
    while position < len(buf):
        header = check_batch(buf, position)
        yield position, header
        position += header.length


_LENGTH_AND_HEADERS = struct.Struct("<I16xI")
"""A record prefix's ``length`` (offset 0) and ``headers_length`` (offset 20), and nothing between."""
assert _LENGTH_AND_HEADERS.size == L.RECORD_PREFIX_SIZE


def record_with_headers_over(buf: Buffer, count: int, limit: int) -> tuple[int, int] | None:
    """The first of the ``count`` records after the header whose headers section exceeds ``limit``.

    Returns ``(index, headers_length)``, or None when every record is within
    the limit, and also when the prefixes stop making sense before one is
    found: this walk gives no verdict on a malformed batch, whose checks come
    after it (``validate_records`` says what is wrong). It is a per-record
    loop, so it runs in C when ``tidings._speedups`` is built; the Python walk
    below is the reference, held to the same answers by a test.
    """
    if _headers_over_c is not None:
        found = _headers_over_c(buf, L.HEADER_SIZE, count, limit)
        index = found if found >= 0 else None
    else:
        index = _headers_over(buf, count, limit)
    if index is None:
        return None
    cursor = L.HEADER_SIZE
    for _ in range(index):
        cursor += _LENGTH_AND_HEADERS.unpack_from(buf, cursor)[0]
    return index, _LENGTH_AND_HEADERS.unpack_from(buf, cursor)[1]


def _headers_over(buf: Buffer, count: int, limit: int) -> int | None:
    unpack = _LENGTH_AND_HEADERS.unpack_from
    cursor = L.HEADER_SIZE
    try:
        for index in range(count):
            length, headers_len = unpack(buf, cursor)
            if headers_len > limit:
                return index
            if length < L.RECORD_PREFIX_SIZE:
                return None
            cursor += length
    except struct.error:  # a record runs past the batch
        return None
    return None
