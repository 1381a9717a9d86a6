"""Encoding records into a batch, and decoding them back.

Producers call ``BatchBuilder``; consumers (and the broker's slow paths: dead
letters, the event browser) call ``iter_records``. The layout is in
``tidings.records.layout``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import repeat

from tidings.errors import InvalidBatchError
from tidings.records import layout as L
from tidings.records.batch import BatchHeader, Buffer, check_batch, crc32c

Headers = Mapping[str, bytes] | Sequence[tuple[str, bytes]]

_Queued = tuple[bytes | None, bytes, bytes, int]
"""A record waiting in a builder: key, value, encoded headers, producer time (ms)."""

_records_build_c: Callable[[list[_Queued], int, int, int], bytes | None] | None
try:  # the same encoding in one C pass; ``BatchBuilder._build_python`` is the reference
    from tidings._speedups import records_build as _records_build_c
except ImportError:  # pragma: no cover - the extension is optional
    _records_build_c = None


@dataclass(frozen=True, slots=True)
class Record:
    """One event as stored: immutable, with its place in the log."""

    offset: int
    timestamp: int  # the producer's time, ms since the epoch
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()
    append_time: int = 0  # the log's time, ms since the epoch
    sequence: int = -1  # producer sequence, -1 when not idempotent

    def header(self, name: str) -> bytes | None:
        """The value of the first header called ``name``, or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def encode_headers(headers: Headers | None) -> bytes:
    if not headers:
        return b""
    items = headers.items() if isinstance(headers, Mapping) else headers
    parts = [b""]
    count = 0
    for name, value in items:
        encoded = name.encode()
        if len(encoded) > 0xFFFF:
            raise InvalidBatchError(f"header name of {len(encoded)} bytes is too long (max 65535)")
        parts.append(L.HEADER_NAME_LENGTH.pack(len(encoded)))
        parts.append(encoded)
        parts.append(L.HEADER_VALUE_LENGTH.pack(len(value)))
        parts.append(bytes(value))
        count += 1
    if count > 0xFFFF:
        raise InvalidBatchError(f"{count} headers on one record (max 65535)")
    parts[0] = L.HEADER_COUNT.pack(count)
    return b"".join(parts)


def decode_headers(buf: Buffer) -> tuple[tuple[str, bytes], ...]:
    if not buf:
        return ()
    view = memoryview(buf)
    cursor = L.HEADER_COUNT.size
    out: list[tuple[str, bytes]] = []
    try:
        (count,) = L.HEADER_COUNT.unpack_from(view, 0)
        for _ in range(count):
            (name_len,) = L.HEADER_NAME_LENGTH.unpack_from(view, cursor)
            cursor += L.HEADER_NAME_LENGTH.size
            name = bytes(view[cursor : cursor + name_len]).decode()
            cursor += name_len
            (value_len,) = L.HEADER_VALUE_LENGTH.unpack_from(view, cursor)
            cursor += L.HEADER_VALUE_LENGTH.size
            if cursor + value_len > len(view):
                raise InvalidBatchError("record header value runs past the headers section")
            out.append((name, bytes(view[cursor : cursor + value_len])))
            cursor += value_len
    except (struct.error, ValueError) as exc:  # struct.error is not a ValueError; UnicodeDecodeError is
        raise InvalidBatchError(f"malformed record headers: {exc}") from exc
    if cursor != len(view):
        raise InvalidBatchError(f"{len(view) - cursor} stray bytes after the record headers")
    return tuple(out)


@dataclass(slots=True)
class BatchBuilder:
    """Accumulates records, then encodes them into one batch in a single pass.

    ``size`` is known before ``build`` so a producer can cap batches by bytes.
    Encoding runs in C when ``tidings._speedups`` is built (one pass, no
    per-record Python work: the producer's largest cost before), else in
    Python; both give the same bytes.
    """

    _records: list[_Queued] = field(default_factory=list)
    size: int = L.HEADER_SIZE
    _low: int | None = None
    _high: int | None = None
    """The smallest and largest record times given explicitly (copies of history carry old ones)."""

    def __len__(self) -> int:
        return len(self._records)

    def fits(self, timestamp: int | None) -> bool:
        """Whether a record at ``timestamp`` (None: now) keeps the batch within the format's time span.

        Records of one batch store their times as 31-bit deltas from the smallest (about 24 days);
        a producer seals the batch and starts another when a record would not fit. Only batches
        holding an explicit time need the check: times of "now" within one batch are close.
        """
        if self._low is None or self._high is None:
            return True
        stamp = now_ms() if timestamp is None else timestamp
        return max(self._high, stamp) - min(self._low, stamp) <= L.MAX_TIMESTAMP_DELTA

    def add(
        self,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        timestamp: int | None = None,
    ) -> int:
        """Queue one record; returns the batch's size in bytes with it included."""
        encoded_headers = encode_headers(headers)
        if timestamp is None:
            stamp = now_ms()
            if self._low is not None:  # a batch with explicit times tracks the span of all its times
                self._note(stamp)
        else:
            stamp = timestamp
            if self._low is None and self._records:
                first = min(record[3] for record in self._records)
                last = max(record[3] for record in self._records)
                self._low, self._high = first, last
            self._note(stamp)
        self._records.append((key, value, encoded_headers, stamp))
        self.size += L.RECORD_PREFIX_SIZE + len(key or b"") + len(value) + len(encoded_headers)
        return self.size

    def _note(self, stamp: int) -> None:
        self._low = stamp if self._low is None else min(self._low, stamp)
        self._high = stamp if self._high is None else max(self._high, stamp)

    def add_many(
        self,
        values: Sequence[bytes],
        *,
        key: bytes | None = None,
        headers: Headers | None = None,
        timestamp: int | None = None,
        value_bytes: int | None = None,
    ) -> int:
        """Queue one record per value, all with the same key, headers and time; returns the size.

        The batch call of a producer: the headers are encoded once and the
        records are queued without a Python-level loop. ``value_bytes``, the
        sum of the values' lengths, saves a pass over them when the caller
        has counted already (the producer has, to cut its batches).
        """
        encoded_headers = encode_headers(headers)
        stamp = now_ms() if timestamp is None else timestamp
        self._records.extend(zip(repeat(key), values, repeat(encoded_headers), repeat(stamp)))
        per_record = L.RECORD_PREFIX_SIZE + len(key or b"") + len(encoded_headers)
        if value_bytes is None:
            value_bytes = sum(map(len, values))
        self.size += per_record * len(values) + value_bytes
        return self.size

    def build(
        self,
        *,
        producer_id: int = L.NO_PRODUCER,
        producer_epoch: int = -1,
        base_sequence: int = -1,
    ) -> bytes:
        """Encode the queued records into a batch with base offset 0, unstamped.

        ``first_timestamp`` is the smallest record time, so every delta is >= 0.
        """
        if not self._records:
            raise InvalidBatchError("cannot build a batch with no records")
        if _records_build_c is not None:
            built = _records_build_c(self._records, producer_id, producer_epoch, base_sequence)
            if built is not None:
                return built
            # None: the batch breaks a limit of the format; the Python encoder says which
        return self._build_python(
            producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence
        )

    def _build_python(self, *, producer_id: int, producer_epoch: int, base_sequence: int) -> bytes:
        """The reference encoding (and the fallback without the C extension)."""
        if not self._records:
            raise InvalidBatchError("cannot build a batch with no records")
        stamps = [record[3] for record in self._records]
        first, highest = min(stamps), max(stamps)
        if highest - first > L.MAX_TIMESTAMP_DELTA:
            raise InvalidBatchError("records of one batch span more than 2**31 ms")
        pack = L.RECORD_PREFIX.pack
        body: list[bytes] = []
        for index, (key, value, headers, stamp) in enumerate(self._records):
            key_len = L.NO_KEY if key is None else len(key)
            length = L.RECORD_PREFIX_SIZE + max(key_len, 0) + len(value) + len(headers)
            body.append(pack(length, index, stamp - first, key_len, len(value), len(headers)))
            if key:
                body.append(key)
            body.append(value)
            if headers:
                body.append(headers)
        records = b"".join(body)
        length = L.HEADER_SIZE + len(records)
        if length > L.MAX_BATCH_SIZE:
            raise InvalidBatchError(f"batch of {length} bytes exceeds the format's 2 GiB limit")
        fields = (L.MAGIC, L.COMPRESSION_NONE, len(self._records), first, highest)
        tail = L.HEADER.pack(0, 0, length, 0, 0, *fields, producer_id, producer_epoch, base_sequence)[
            L.CRC_START :
        ]
        crc = crc32c(tail + records)
        stamped = L.STAMPED.pack(0, 0, length, crc)
        return b"".join((stamped, L.HEADER_CRC.pack(crc32c(stamped)), tail, records))


def build_batch(
    values: Sequence[bytes],
    *,
    keys: Sequence[bytes | None] | None = None,
    timestamp: int | None = None,
    producer_id: int = L.NO_PRODUCER,
    producer_epoch: int = -1,
    base_sequence: int = -1,
) -> bytes:
    """Encode ``values`` (with optional ``keys``) as one batch: a convenience for tests and tools."""
    builder = BatchBuilder()
    stamp = now_ms() if timestamp is None else timestamp
    for index, value in enumerate(values):
        builder.add(value, key=None if keys is None else keys[index], timestamp=stamp)
    return builder.build(producer_id=producer_id, producer_epoch=producer_epoch, base_sequence=base_sequence)


def iter_records(buf: Buffer, position: int = 0, header: BatchHeader | None = None) -> Iterator[Record]:
    """Decode the records of the (already checked, unless ``header`` is None) batch at ``position``."""
    if header is None:
        header = check_batch(buf, position)
    records, _ = decode_records(buf, header, position + L.HEADER_SIZE, header.record_count, position=position)
    yield from records


def decode_records(
    buf: Buffer, header: BatchHeader, cursor: int, count: int, *, position: int = 0
) -> tuple[list[Record], int]:
    """Decode ``count`` records of the checked batch at ``position``, from the one at byte ``cursor``.

    Returns them and the byte position after the last, where the next span may start.

    Every consumer runs this for every record it receives, so the loop keeps
    per-record work to one prefix unpack, two slices and the ``Record``:
    slices come straight from ``bytes`` (one copy each, no memoryview
    objects), and records without headers skip the headers decoder. A span
    from the middle of a batch starts at the cursor ``skip_records`` gives.
    """
    data = buf if isinstance(buf, bytes) else memoryview(buf)
    end = position + header.length
    unpack = L.RECORD_PREFIX.unpack_from
    prefix, no_key = L.RECORD_PREFIX_SIZE, L.NO_KEY
    base_offset, first_timestamp, append_time = header.base_offset, header.first_timestamp, header.append_time
    base_sequence = header.base_sequence if header.idempotent else None
    records: list[Record] = []
    append = records.append
    for _ in range(count):
        if end - cursor < prefix:
            raise InvalidBatchError(f"record truncated at position {cursor}")
        length, delta, ts_delta, key_len, value_len, headers_len = unpack(data, cursor)
        if cursor + length > end or length < prefix:
            raise InvalidBatchError(f"record at position {cursor} runs past its batch")
        start = cursor + prefix
        if key_len == no_key:
            key = None
            key_end = start
        else:
            key_end = start + max(key_len, 0)
            key = bytes(data[start:key_end])
        value_end = key_end + value_len
        append(
            Record(
                base_offset + delta,
                first_timestamp + ts_delta,
                key,
                bytes(data[key_end:value_end]),
                decode_headers(data[value_end : value_end + headers_len]) if headers_len else (),
                append_time,
                -1 if base_sequence is None else base_sequence + delta,
            )
        )
        cursor += length
    return records, cursor
