"""One segment of a partition log: a .log file of whole batches and its two indexes.

A segment is named after the offset of its first record, zero-padded to 20
digits so that names sort like offsets (Kafka's convention)::

    00000000000000000000.log        batches, back to back, exactly as appended
    00000000000000000000.index      offset -> position (see tidings.storage.index)
    00000000000000000000.timeindex  append time -> offset

The .log holds only whole batches in offset order with no gaps. Bytes past
``size`` are not part of the segment: an append in progress, a torn write
that recovery cuts off, or zeros. The active segment's file may run past
``size`` into zero-filled room the log preallocated (``prealloc_end``, see
``PartitionLog.preallocate``), so the file's size is not the segment's end:
``size`` is, tracked in memory, and the file is cut back to it when the
segment is sealed. A batch never starts with zeros (its length is at least
``MIN_BATCH`` and its header CRC of zeros is not zero), so recovery tells
room that was never written from a batch without doubt. A segment knows
nothing of durability policy or of other segments; ``PartitionLog`` decides
when to sync, roll, preallocate and delete.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from tidings.errors import InvalidBatchError
from tidings.records import HEADER_SIZE, BatchHeader, check_batch, read_header
from tidings.records.batch import header_crc_of
from tidings.storage.fileio import File, FileSystem
from tidings.storage.index import SparseIndex
from tidings.storage.results import CorruptionReport, SegmentInfo

SCAN_CHUNK = 1 << 20
MIN_BATCH = HEADER_SIZE + 24
ZERO_CHUNK = 256 * 1024  # one write of preallocated zeros, and one read of a zero tail at recovery
_ZEROS = bytes(ZERO_CHUNK)


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


def parse_segment_name(filename: str) -> int | None:
    stem, _, extension = filename.partition(".")
    if extension != "log" or len(stem) != 20 or not stem.isdigit():
        return None
    return int(stem)


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """What a recovery scan of a segment found."""

    end: int  # position after the last good batch
    next_offset: int
    torn_bytes: int  # bytes after ``end`` that were not a whole, valid batch, up to the zeros
    corruption: CorruptionReport | None  # a damaged batch with good batches after it
    zero_bytes: int = 0  # all-zero bytes at the end of the file: preallocated room, never written


class IndexMismatch(Exception):
    """An index entry pointed at a batch that is not there; the index is rebuilt."""


class Segment:
    __slots__ = (
        "_bytes_since_index",
        "_index_interval",
        "_last_batch_offset",
        "base_offset",
        "file",
        "first_append_time",
        "max_append_time",
        "next_offset",
        "offset_index",
        "path",
        "prealloc_end",
        "size",
        "time_index",
    )

    def __init__(self, fs: FileSystem, directory: str, base_offset: int, index_interval: int) -> None:
        stem = os.path.join(directory, segment_name(base_offset))
        self.base_offset = base_offset
        self.path = stem + ".log"
        self.file: File = fs.open(self.path)
        self.offset_index = SparseIndex.offsets(fs.open(stem + ".index"))
        self.time_index = SparseIndex.times(fs.open(stem + ".timeindex"))
        self.size = 0
        # Where the zero-filled room this process wrote ahead of ``size`` ends (``size``: none).
        # Only this much is ever cut at a seal: bytes past it that the log did not zero itself
        # (damage recovery left in place) are not the log's to cut.
        self.prealloc_end = 0
        self.next_offset = base_offset
        self.first_append_time = -1
        self.max_append_time = -1
        self._bytes_since_index = 0
        self._index_interval = index_interval
        self._last_batch_offset = base_offset

    def __repr__(self) -> str:
        return (
            f"<Segment {segment_name(self.base_offset)} offsets {self.base_offset}..{self.next_offset} "
            f"size={self.size}>"
        )

    @property
    def last_batch_offset(self) -> int:
        return self._last_batch_offset

    @property
    def info(self) -> SegmentInfo:
        return SegmentInfo(
            self.base_offset, self.next_offset, self.size, self.first_append_time, self.max_append_time
        )

    # -- writing -------------------------------------------------------------------

    def append(self, header: bytes, body: memoryview, stamped: BatchHeader) -> None:
        """Write a stamped header and the batch's untouched body at the end of the segment."""
        self.file.write_at([header, body], self.size)
        self._track(self.size, stamped)
        self.size += stamped.length
        self.prealloc_end = max(self.prealloc_end, self.size)  # past the room, the file grew

    @property
    def room(self) -> int:
        """Preallocated bytes left ahead of the end: appends there do not grow the file."""
        return self.prealloc_end - self.size

    def zero_fill(self, stop: int) -> int:
        """Write zeros from ``prealloc_end`` towards ``stop``, one chunk at most; returns the new end.

        One chunk, so that the caller, which must hold off appends while it
        writes here, holds them off briefly; it syncs the zeros afterwards.
        On an error, ``prealloc_end`` still says how far the file now reaches
        (a full disk takes part of the write), so a seal cuts all of it.
        """
        start = self.prealloc_end
        stop = min(stop, start + ZERO_CHUNK)
        if stop <= start:
            return start
        try:
            self.file.write_at([memoryview(_ZEROS)[: stop - start]], start)
        except OSError:
            self.prealloc_end = max(self.prealloc_end, self.file.size())
            raise
        self.prealloc_end = stop
        return stop

    def _track(self, position: int, header: BatchHeader) -> None:
        """Account for a batch now in the segment: offsets, times, sparse index entries."""
        relative = header.base_offset - self.base_offset
        if position == 0:
            self.first_append_time = header.append_time
        elif self._bytes_since_index >= self._index_interval:
            self.offset_index.append(relative, position)
            self.time_index.append(header.append_time, relative)
            self._bytes_since_index = 0
        self._bytes_since_index += header.length
        self.next_offset = header.next_offset
        self.max_append_time = max(self.max_append_time, header.append_time)
        self._last_batch_offset = header.base_offset

    def seal(self) -> None:
        """Finish the segment before a roll or close: final time entry, indexes and data synced."""
        if self.size and self._last_batch_offset >= self.base_offset:
            self.time_index.append(self.max_append_time, self._last_batch_offset - self.base_offset)
        if self.prealloc_end > self.size:  # a sealed segment is exact: its file ends at its last batch
            self.file.truncate(self.size)
            self.prealloc_end = self.size
        self.file.sync()
        self.flush_indexes()

    def flush_indexes(self) -> None:
        self.offset_index.flush()
        self.time_index.flush()

    def truncate(self, position: int) -> None:
        """Cut the .log at ``position`` (a batch boundary) and re-derive the indexes.

        Only for an operator's decision after corruption, or a rolled-back
        append: rare enough that a full scan of the segment is the simple way.
        """
        self.file.truncate(position)
        self.size = self.prealloc_end = position
        self.rebuild_indexes()

    # -- reading -------------------------------------------------------------------

    def headers_from(
        self, position: int, end: int, expected_offset: int
    ) -> Iterator[tuple[int, BatchHeader]]:
        """Yield each batch header from ``position`` to ``end``, checking header CRCs and contiguity.

        Reads ahead in chunks so a scan costs one pread per MiB, not one per batch.
        ``expected_offset`` is the base offset the first batch must have (-1: any).
        Raises ``InvalidBatchError`` (a damaged header) or ``IndexMismatch``.
        """
        chunk = b""
        chunk_start = position
        while position < end:
            if position + HEADER_SIZE > chunk_start + len(chunk):
                chunk_start = position
                chunk = self.file.read_at(min(SCAN_CHUNK, end - position), position)
            at = position - chunk_start
            header = read_header(chunk, at)
            if header.header_crc != header_crc_of(chunk, at) or header.length < MIN_BATCH:
                raise InvalidBatchError(f"damaged batch header in {self.path} at position {position}")
            if expected_offset >= 0 and header.base_offset != expected_offset:
                raise IndexMismatch(
                    f"{self.path}: batch at position {position} has base offset "
                    f"{header.base_offset}, expected {expected_offset}"
                )
            yield position, header
            expected_offset = header.next_offset
            position += header.length

    def locate(self, offset: int) -> tuple[int, int]:
        """The (position, base offset) of the indexed batch at or before ``offset``."""
        slot = self.offset_index.floor(offset - self.base_offset)
        if slot < 0:
            return 0, self.base_offset
        return self.offset_index.values[slot], self.base_offset + self.offset_index.keys[slot]

    def locate_time(self, timestamp: int) -> tuple[int, int]:
        """The (position, base offset) of an indexed batch appended before ``timestamp``, or the start."""
        slot = self.time_index.floor(timestamp - 1)
        if slot < 0:
            return 0, self.base_offset
        return self.locate(self.base_offset + self.time_index.values[slot])

    def read_range(self, position: int, size: int) -> bytes:
        return self.file.read_at(size, position)

    # -- recovery ------------------------------------------------------------------

    def resume(self, position: int, next_offset: int, max_append_time: int, last_batch: int) -> None:
        """Take up the state a checkpoint (or a sealed segment's files) recorded."""
        self.offset_index.truncate_values(position)
        self.time_index.truncate_values(next_offset - self.base_offset)
        self.size = self.prealloc_end = position
        self.next_offset = next_offset
        self.max_append_time = max_append_time
        self._last_batch_offset = last_batch
        if position:
            self.first_append_time = read_header(self.file.read_at(HEADER_SIZE, 0)).append_time
        last_indexed = self.offset_index.values[-1] if len(self.offset_index) else 0
        self._bytes_since_index = position - last_indexed

    def recover(self, position: int, expected_offset: int, file_size: int) -> ScanOutcome:
        """Check every batch from ``position`` to the end of the file, fully (both CRCs).

        Index entries are re-derived for what it passes. At the first bad batch
        it decides between a torn tail, cut off, and corruption inside data
        that has good batches after it, which is reported and never cut: the
        caller stops serving there until an operator decides. Zeros from there
        to the end of the file are neither: preallocated room no write reached
        (``zero_bytes``); a torn write followed by zeros is a torn write
        (``torn_bytes``) and then room. The caller decides what to cut.
        """
        corruption: CorruptionReport | None = None
        zeros = file_size  # where the zeros at the end of the file start, once looked for
        while position < file_size:
            header = self._check_at(position, file_size, expected_offset)
            if header is None:
                zeros = self.zero_tail(position, file_size)
                if zeros == position:
                    break  # nothing but preallocated room from here
                skip = self._corrupt_extent(position, file_size, expected_offset)
                if skip is None:
                    break  # a torn tail: nothing good after it
                if corruption is None:
                    corruption = CorruptionReport(
                        self.path, position, expected_offset, "batch failed its checksum"
                    )
                position, expected_offset = skip
                continue
            self._track(position, header)
            expected_offset = header.next_offset
            position += header.length
        self.size = self.prealloc_end = position
        self.next_offset = expected_offset
        zeros = max(zeros, position)
        return ScanOutcome(position, expected_offset, zeros - position, corruption, file_size - zeros)

    def zero_tail(self, position: int, file_size: int) -> int:
        """Where the run of zeros that ends the file starts, at ``position`` or after it.

        Reads backwards from the end, a chunk at a time, and stops at the first
        chunk that is not all zeros: the cost is the length of the zero run
        (the preallocated room, a few MiB at most), never the whole segment.
        """
        end = file_size
        while end > position:
            start = max(position, end - ZERO_CHUNK)
            chunk = self.file.read_at(end - start, start)
            if len(chunk) < end - start:  # the file is shorter than it said: look at what is there
                end = start + len(chunk)
                continue
            if chunk != (_ZEROS if len(chunk) == ZERO_CHUNK else bytes(len(chunk))):
                return start + len(chunk.rstrip(b"\0"))
            end = start
        return end

    def _check_at(self, position: int, file_size: int, expected_offset: int) -> BatchHeader | None:
        head = self.file.read_at(HEADER_SIZE, position)
        if len(head) < HEADER_SIZE:
            return None
        length = read_header(head).length
        if length < MIN_BATCH or position + length > file_size:
            return None
        data = head + self.file.read_at(length - HEADER_SIZE, position + HEADER_SIZE)
        try:
            header = check_batch(data)
        except InvalidBatchError:
            return None
        return header if header.base_offset == expected_offset else None

    def _corrupt_extent(self, position: int, file_size: int, expected_offset: int) -> tuple[int, int] | None:
        """If the damaged batch at ``position`` is followed by a good one, where that one starts.

        Trusts the damaged batch's own length field only as far as the batch
        after it checks out: a good batch with a higher base offset right
        where the length says proves the damage is in the middle, not a tear.
        If the length is what was damaged, looks for the batch its record
        count says comes next (one read of the rest of the file, only here).
        """
        head = self.file.read_at(HEADER_SIZE, position)
        if len(head) < HEADER_SIZE:
            return None
        damaged = read_header(head)
        found = self._good_batch_at(position + damaged.length, file_size, expected_offset)
        if found is not None or damaged.record_count < 1 or position + 2 * MIN_BATCH > file_size:
            return found
        rest = self.file.read_at(file_size - position - MIN_BATCH, position + MIN_BATCH)
        needle = struct.pack("<q", expected_offset + damaged.record_count)
        at = rest.find(needle)
        while at >= 0 and found is None:
            found = self._good_batch_at(position + MIN_BATCH + at, file_size, expected_offset)
            at = rest.find(needle, at + 1)
        return found

    def _good_batch_at(self, after: int, file_size: int, expected_offset: int) -> tuple[int, int] | None:
        """(``after``, base offset) if a whole, valid batch past ``expected_offset`` starts at ``after``."""
        if after < 0 or after + MIN_BATCH > file_size:
            return None
        head_after = self.file.read_at(HEADER_SIZE, after)
        length_after = read_header(head_after).length
        if length_after < MIN_BATCH or after + length_after > file_size:
            return None
        candidate = head_after + self.file.read_at(length_after - HEADER_SIZE, after + HEADER_SIZE)
        try:
            header = check_batch(candidate)
        except InvalidBatchError:
            return None
        if header.base_offset <= expected_offset:
            return None
        return after, header.base_offset

    def rebuild_indexes(self) -> None:
        """Throw the index files away and derive them again from the .log."""
        self.offset_index.clear()
        self.time_index.clear()
        self._bytes_since_index = 0
        self.first_append_time = self.max_append_time = -1
        self.next_offset = self.base_offset
        for position, header in self.headers_from(0, self.size, self.base_offset):
            self._track(position, header)

    def close(self) -> None:
        self.file.close()
        self.offset_index.close()
        self.time_index.close()

    def paths(self) -> list[str]:
        return [self.path, self.offset_index.path, self.time_index.path]
