"""A partition log: an ordered, append-only, segmented sequence of record batches.

The log assigns offsets and append times, writes batches to the active
segment, rolls segments, applies retention, answers reads by offset and by
time, and tells apart what is written from what is durable:

* ``end_offset``: the next offset to assign. Everything below was written
  (it is in the OS page cache), which is not the same as durable.
* ``durable_offset``: everything below was fsynced.
* ``high_watermark``: everything below may be acknowledged to producers and
  delivered to consumers. Under ``always`` that is ``durable_offset``; under
  ``interval:MS`` and ``never`` the user chose speed over durability and it
  is ``end_offset``.

Group commit. ``commit(offset)`` blocks until ``offset`` is below the high
watermark. Under ``always``, callers take turns on one sync lock; the one
holding it fsyncs everything appended so far, outside the append lock, so
appends go on during the fsync and the callers queued behind it usually find
their offset already covered when their turn comes. One fsync thus serves
every append that arrived while the previous one ran, and throughput grows
with concurrency instead of being capped by the disk's fsync rate. After
each fsync of the active segment the log overwrites the durable mark
(``tidings.storage.mark``, no fsync of its own), so that recovery knows every
acknowledged batch as durable, not only those before the last checkpoint.

Preallocation. Under ``always`` the active segment's .log keeps zero-filled,
fsynced room ahead of its end (``LogConfig.prealloc_bytes``, see
``preallocate``), because on ext4 an fdatasync after appending to a growing
file also commits the new size and block allocation to the journal, about
twice the cost of one after overwriting blocks that were zeroed and synced
before (PostgreSQL zero-fills its WAL segments for the same reason). The end
of the segment is ``Segment.size``, kept in memory; the file is cut back to it
when the segment is sealed (roll, clean close), and recovery trims the zeros
a crash leaves (``tidings.storage.loader``).

Thread safety: every method may be called from any thread. Appends, reads and
structural changes (roll, retention, truncation) take ``_lock``; fsyncs take
``_sync_lock`` and run outside ``_lock``.

Failure. A full disk rolls the append back and raises ``DiskFullError``:
nothing is acknowledged, reads go on, and appends work again once space
returns. No room for index entries or a checkpoint (while sealing, rolling,
committing or closing) costs only recovery time: the old checkpoint stays
valid, so the commit of synced data still succeeds. Any other write or fsync
error (EIO), and any failed fsync of data, marks the log failed: a failed
fsync may have dropped dirty pages while clearing the error, so retrying it
could report success for lost data. Reopening the log re-reads what reached
the disk. Once corruption is found the log accepts no appends and writes no
checkpoint (one past the damage would make the next recovery cut it as a
torn tail) until ``truncate_corrupt``.
"""

from __future__ import annotations

import errno
import threading
import time
from bisect import bisect_right
from collections.abc import Callable

from tidings.errors import (
    DiskFullError,
    InvalidBatchError,
    LogClosedError,
    LogCorruptedError,
    LogFailedError,
    OffsetOutOfRangeError,
    StorageError,
)
from tidings.records import (
    HEADER_SIZE,
    BatchHeader,
    Buffer,
    check_batch,
    read_header,
    stamped_header,
    validate_records,
)
from tidings.storage import checkpoint as ckpt
from tidings.storage import loader
from tidings.storage import mark as durable_mark
from tidings.storage.config import LogConfig, SyncMode
from tidings.storage.fileio import FileSystem, OsFileSystem
from tidings.storage.results import AppendResult, CorruptionReport, ReadResult, RollParams, SegmentInfo
from tidings.storage.retention import segments_to_delete, should_roll, sync_due
from tidings.storage.segment import IndexMismatch, Segment

Clock = Callable[[], int]

PREALLOC_FREE_SHARE = 8  # zero-fill at most this fraction (1/8) of the free space at a time
MIN_PREALLOC = 64 * 1024  # below this much room to spare, a nearly full disk gets no zeros at all


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def monotonic_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class PartitionLog:
    def __init__(
        self,
        directory: str,
        config: LogConfig | None = None,
        *,
        fs: FileSystem | None = None,
        clock: Clock = wall_clock_ms,
        monotonic: Clock | None = None,
    ) -> None:
        self.directory = directory
        self.config = config or LogConfig()
        self._fs = fs or OsFileSystem()
        self._clock = clock
        # Retention by age and the interval fsync also need a clock that cannot jump (see
        # ``_observed_ages`` and ``tick``). An injected wall clock without a monotonic one is a test's
        # simulated time: the bound would only get in its way, so it is off.
        self._monotonic = (
            monotonic if monotonic is not None else (monotonic_ms if clock is wall_clock_ms else None)
        )
        self._aged: dict[int, tuple[int, int]] = {}  # segment base -> (its age then, monotonic ms then)
        self._lock = threading.RLock()
        self._sync_lock = threading.Lock()
        self._prealloc_lock = threading.Lock()  # one zero-fill at a time; never waited for
        self._closed = False
        self._failed: LogFailedError | None = None

        try:
            outcome = loader.load(self._fs, directory, self.config)
        except OSError as exc:  # not a directory, no permission, ...: translated at the boundary
            raise StorageError(f"cannot open partition log {directory}: {exc}") from exc
        self.recovery = outcome
        self._segments: list[Segment] = outcome.segments
        self._corruption: CorruptionReport | None = outcome.corruption
        self._end_offset = self._active.next_offset
        self._last_append_time = max(self._active.max_append_time, 0)
        self._checkpoint_position = 0
        self._last_sync_ms = clock()
        self._last_sync_mono = self._monotonic() if self._monotonic is not None else 0
        self._durable_offset = self._end_offset
        self._mark = durable_mark.MarkWriter(self._fs, directory)
        with self._lock:
            self._active.file.sync()
            self._write_checkpoint()  # flushes the indexes too; skipped on a full disk

    # -- state ---------------------------------------------------------------------

    @property
    def _active(self) -> Segment:
        return self._segments[-1]

    @property
    def start_offset(self) -> int:
        return self._segments[0].base_offset

    @property
    def end_offset(self) -> int:
        return self._end_offset

    @property
    def durable_offset(self) -> int:
        return self._durable_offset

    @property
    def high_watermark(self) -> int:
        if self.config.fsync.mode is SyncMode.ALWAYS:
            return self._durable_offset
        return self._end_offset

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def segments(self) -> list[SegmentInfo]:
        with self._lock:
            return [segment.info for segment in self._segments]

    @property
    def corruption(self) -> CorruptionReport | None:
        return self._corruption

    @property
    def failed(self) -> LogFailedError | None:
        return self._failed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "failed" if self._failed else "open"
        return (
            f"<PartitionLog {self.directory} {state} offsets {self.start_offset}..{self._end_offset} "
            f"durable={self._durable_offset} segments={len(self._segments)} fsync={self.config.fsync}>"
        )

    # -- appending -----------------------------------------------------------------

    def append(self, batch: Buffer, *, checked: BatchHeader | None = None) -> AppendResult:
        """Check ``batch``, stamp its offsets and time, and write it. Written, not yet durable.

        ``checked`` is the header a caller got from ``check_batch`` on these very
        bytes (the broker's produce path checks each batch before choosing its
        partition): the CRCs are then not computed a second time. The record
        walk and the length check still run here.
        """
        view = memoryview(batch)
        header = check_batch(view) if checked is None else checked
        if header.length != len(view):
            raise InvalidBatchError(f"batch says {header.length} bytes but {len(view)} were given")
        if self.config.validate_records:
            validate_records(view, header)
        with self._lock:
            self._check_writable()
            if self._corruption is not None:  # no appends past damage until an operator decides
                self._check_corruption(self._corruption.offset)
            now = max(self._clock(), self._last_append_time)
            active = self._active
            roll = RollParams(
                active.info,
                header.length,
                header.record_count,
                now,
                self.config.max_segment_bytes,
                self.config.max_segment_ms,
            )
            if should_roll(roll):
                active = self._roll()
            base = self._end_offset
            head = stamped_header(view, base, now)
            stamped = read_header(head)  # cheaper than dataclasses.replace, and matches the bytes
            try:
                active.append(head, view[HEADER_SIZE:], stamped)
            except OSError as exc:
                self._roll_back(active, exc)
            self._end_offset = stamped.next_offset
            self._last_append_time = now
            return AppendResult(base, stamped.last_offset, now, header.length)

    def _roll_back(self, segment: Segment, exc: OSError) -> None:
        """Undo a failed write: cut the bytes it may have left, then raise the right error."""
        try:
            segment.file.truncate(segment.size)  # the preallocated room goes too: a full disk wants it
            segment.prealloc_end = segment.size
        except OSError as cut:
            raise self._fail(f"cannot undo a failed write to {segment.path}: {cut}") from exc
        if _no_space(exc):
            raise DiskFullError(
                f"no space left to append to {segment.path} at position {segment.size} "
                f"(offset {self._end_offset}); the append was rolled back"
            ) from exc
        raise self._fail(f"write to {segment.path} at position {segment.size} failed: {exc}") from exc

    def _roll(self) -> Segment:
        """Seal the active segment and start a new one at the end offset (holding ``_lock``)."""
        old = self._active
        self._seal(old)
        if self._monotonic is not None and old.max_append_time >= 0:
            self._aged[old.base_offset] = (max(0, self._clock() - old.max_append_time), self._monotonic())
        try:
            segment = Segment(self._fs, self.directory, self._end_offset, self.config.index_interval_bytes)
            self._fs.sync_dir(self.directory)
        except OSError as exc:
            if _no_space(exc):
                raise DiskFullError(f"no space left to start a segment after {old.path}") from exc
            raise self._fail(f"cannot roll {old.path}: {exc}") from exc
        self._segments.append(segment)
        self._durable_offset = self._end_offset
        self._checkpoint_position = 0  # the last checkpoint is in an older segment until this one
        self._write_checkpoint()
        return segment

    def _seal(self, segment: Segment) -> None:
        """Seal ``segment`` (holding ``_lock``). Its data must be synced; its indexes need room.

        A failed fsync fails the log, even with ENOSPC (delayed allocation: the
        data is not on disk); no room for the index entries is a full disk.
        """
        try:
            segment.file.sync()
        except OSError as exc:
            raise self._fail(f"fsync of {segment.path} failed: {exc}") from exc
        try:
            segment.seal()
        except OSError as exc:
            if _no_space(exc):
                raise DiskFullError(f"no space left to seal {segment.path}; its data is synced") from exc
            raise self._fail(f"cannot seal {segment.path}: {exc}") from exc

    # -- durability ----------------------------------------------------------------

    def commit(self, offset: int, *, preallocate: bool = True) -> None:
        """Block until ``offset`` may be acknowledged: below the high watermark.

        Under ``always`` this joins or runs a group fsync; under ``interval:MS``
        it fsyncs only when the interval is due; under ``never`` it returns.
        Then, when the preallocated room runs low, it tops it up before
        returning (``preallocate``), unless told not to: a caller that can
        answer first and call ``preallocate`` afterwards (the broker's
        committer does) keeps that work off its waiters' path.
        """
        mode = self.config.fsync.mode
        if mode is SyncMode.INTERVAL:
            self.tick()
        if mode is not SyncMode.ALWAYS or self._durable_offset > offset:
            self._check_writable()
            return
        with self._sync_lock:
            if self._durable_offset <= offset:
                self._sync_locked()
        if self._durable_offset <= offset:
            self._check_writable()
            raise StorageError(f"offset {offset} is past the log end {self._end_offset}")
        if preallocate:
            self.preallocate()

    def preallocate(self) -> int:
        """Top up the zero-filled room ahead of the active segment's end; returns bytes zeroed.

        Does something only under ``fsync=always`` (elsewhere fsyncs are rare,
        and the zeros would double what is written for nothing), when less
        than ``prealloc_bytes`` of room is left: then it zero-fills up to
        ``prealloc_bytes`` more (never past ``max_segment_bytes``, never more
        than an eighth of the free space, none on a nearly full disk) and
        fsyncs the file, so that the next commits overwrite blocks whose
        allocation and the file's size are durable already. One caller at a
        time does it; the others return at once.

        Why it cannot lose an acknowledged write: zeros go only past
        ``prealloc_end``, which is never below the segment's end, each chunk
        written holding ``_lock`` (appends wait a chunk's write, 256 KiB, not
        the fsync), so no zero ever lands on a batch. Durability never
        depends on the zeros having been synced: an fdatasync makes durable
        every byte written before it and the metadata needed to read it back,
        room or no room; the zeros' own fsync only makes later ones cheaper.
        That fsync is a group commit like any other, taken under ``_sync_lock``:
        it covers the appended batches too (so it advances the durable offset),
        and an EIO fails the log before another fsync on the same file could
        return success for pages the failed one dropped (the kernel reports a
        writeback error once per open file).

        Never raises: a full disk only means no room this time (what did fit
        stays, and is used), and any other failure fails the log, which the
        next append or commit reports.
        """
        step = self.config.prealloc_bytes
        if step <= 0 or self.config.fsync.mode is not SyncMode.ALWAYS:
            return 0
        if self._active.room >= step or not self._prealloc_lock.acquire(blocking=False):
            return 0
        try:
            return self._preallocate(step)
        finally:
            self._prealloc_lock.release()

    def _preallocate(self, step: int) -> int:
        try:
            free = self._fs.free_space(self.directory)
        except OSError:
            return 0
        grow = min(step, free // PREALLOC_FREE_SHARE)
        if grow < min(step, MIN_PREALLOC):
            return 0  # nearly full: leave what is left to the data; appends grow the file instead
        with self._lock:
            if self._closed or self._failed is not None or self._corruption is not None:
                return 0
            segment = self._active
            if segment.room >= step:
                return 0
            stop = min(segment.prealloc_end + grow, self.config.max_segment_bytes)
        zeroed = 0
        while True:
            with self._lock:
                if self._active is not segment or self._closed or self._failed is not None:
                    return zeroed  # rolled (the seal cut the zeros) or closed meanwhile
                start = segment.prealloc_end  # appends may have run past the zeros meanwhile
                if start >= stop:
                    break
                try:
                    zeroed += segment.zero_fill(stop) - start
                except OSError as exc:
                    zeroed += segment.prealloc_end - start
                    if not _no_space(exc):
                        self._fail(f"cannot preallocate {segment.path} at position {start}: {exc}")
                        return zeroed
                    break  # the disk is full: sync what fit, it is room all the same
        if zeroed:
            try:
                with self._sync_lock:
                    self._sync_locked(force=True)
            except StorageError:
                pass  # the log is failed or closed: the next append or commit says so
        return zeroed

    def sync(self) -> int:
        """fsync everything appended so far, whatever the policy; returns ``durable_offset``."""
        with self._sync_lock:
            self._sync_locked()
        return self._durable_offset

    def tick(self, now: int | None = None) -> None:
        """Periodic work for ``interval:MS``: fsync when the interval is due.

        Timed on the monotonic clock when there is one: on the wall clock, a
        jump backward would hold every fsync until the clock caught up, and
        unsynced data would pile up far past the interval a power cut may take.
        """
        if now is None and self._monotonic is not None:
            current, last = self._monotonic(), self._last_sync_mono
        else:
            current, last = (self._clock() if now is None else now), self._last_sync_ms
        if sync_due(self.config.fsync, last, current, self._end_offset > self._durable_offset):
            self.sync()

    def _sync_locked(self, *, force: bool = False) -> None:
        """fsync the active segment (holding ``_sync_lock``); ``force``: even with nothing new appended."""
        with self._lock:
            self._check_writable()
            segment = self._active
            end, position = self._end_offset, segment.size
            last_batch, max_time = segment.last_batch_offset, segment.max_append_time
        if end <= self._durable_offset and not force:
            return
        try:
            segment.file.sync()
        except OSError as exc:
            with self._lock:
                raise self._fail(f"fsync of {segment.path} failed: {exc}") from exc
        with self._lock:
            self._last_sync_ms = self._clock()
            self._last_sync_mono = self._monotonic() if self._monotonic is not None else 0
            self._durable_offset = max(self._durable_offset, end)
            if segment is not self._active:
                return  # rolled meanwhile: the roll synced it and checkpointed past it
            due = position - self._checkpoint_position >= self.config.checkpoint_interval_bytes
            if due:
                self._checkpoint_at(position, end, max_time, last_batch)
        # Outside ``_lock`` (appends go on), inside ``_sync_lock`` (marks go out in order), and
        # only now that the fsync returned: the mark must never claim more than is durable.
        self._write_mark(durable_mark.DurableMark(segment.base_offset, position, end))

    def _write_mark(self, point: durable_mark.DurableMark, *, sync: bool = False) -> None:
        """Record ``point`` as durable (holding ``_sync_lock``); see ``tidings.storage.mark``.

        No room for it costs nothing but what recovery knows (a stale mark
        says less is durable, never more), except when it must be durable
        (``sync``, before a cut): then ``DiskFullError``, with nothing cut yet.
        Any other error fails the log, as a failing checkpoint write does.
        """
        try:
            self._mark.write(point, sync=sync)
        except OSError as exc:
            if _no_space(exc) and not sync:
                return
            if _no_space(exc):
                raise DiskFullError(f"no space left for the durable mark {self._mark.path}") from exc
            with self._lock:
                raise self._fail(f"cannot write the durable mark {self._mark.path}: {exc}") from exc

    def _write_checkpoint(self) -> None:
        """Checkpoint the whole active segment; it must be synced already (holding ``_lock``)."""
        segment = self._active
        self._checkpoint_at(
            segment.size, segment.next_offset, segment.max_append_time, segment.last_batch_offset
        )

    def _checkpoint_at(self, position: int, next_offset: int, max_time: int, last_batch: int) -> None:
        if self._corruption is not None:
            # Keep the old checkpoint: a new one could move past the damage and turn it into a
            # "torn tail" that the next recovery cuts. Recovery must keep finding the damage.
            return
        segment = self._active
        try:
            segment.flush_indexes()
            point = ckpt.Checkpoint(segment.base_offset, position, next_offset, max_time, last_batch)
            ckpt.write(self._fs, self.directory, point)
        except OSError as exc:
            if _no_space(exc):
                return  # the last checkpoint stays valid: recovery scans more, that is all
            raise self._fail(f"cannot write the recovery checkpoint in {self.directory}: {exc}") from exc
        self._checkpoint_position = position

    def _fail(self, message: str) -> LogFailedError:
        if self._failed is None:
            self._failed = LogFailedError(f"{message}; the log accepts no more writes until reopened")
        return self._failed

    def _check_writable(self) -> None:
        if self._closed:
            raise LogClosedError(f"log {self.directory} is closed")
        if self._failed is not None:
            raise self._failed

    # -- reading -------------------------------------------------------------------

    def read(self, offset: int, max_bytes: int = 1 << 20, *, max_offset: int | None = None) -> ReadResult:
        """Whole batches from the one holding ``offset``, up to ``max_bytes`` (at least one batch).

        Only batches that start below the high watermark (and ``max_offset``)
        are served; the high watermark is always a batch boundary, a caller's
        ``max_offset`` need not be, and a batch is never split. Each batch is
        checked against its CRCs on the way out, so damaged bytes are
        reported, never served.
        """
        with self._lock:
            if self._closed:
                raise LogClosedError(f"log {self.directory} is closed")
            limit = self.high_watermark if max_offset is None else min(max_offset, self.high_watermark)
            if offset < self.start_offset or offset > self._end_offset:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is outside the log {self.directory} "
                    f"({self.start_offset}..{self._end_offset})"
                )
            self._check_corruption(offset)
            if offset >= limit:
                return ReadResult(b"", offset, offset, 0, 0, self.high_watermark)
            segment = self._segments[self._segment_index(offset)]
            try:
                return self._read_segment(segment, offset, max_bytes, limit)
            except IndexMismatch:
                pass
            try:
                segment.rebuild_indexes()
                return self._read_segment(segment, offset, max_bytes, limit)
            except (IndexMismatch, InvalidBatchError) as exc:
                # A scan from the segment's first byte found batches that do not follow each other
                # (a damaged field the header CRC does not cover): the .log itself is damaged.
                self._report_corruption(segment, 0, max(offset, segment.base_offset), str(exc))
                raise  # not reached: _report_corruption raises LogCorruptedError

    def _segment_index(self, offset: int) -> int:
        return bisect_right(self._segments, offset, key=lambda segment: segment.base_offset) - 1

    def _check_corruption(self, offset: int) -> None:
        report = self._corruption
        if report is not None and offset >= report.offset:
            raise LogCorruptedError(
                f"partition log {self.directory} is damaged at offset {report.offset} "
                f"({report.path}, position {report.position}: {report.reason}); "
                "it serves nothing from there until an operator truncates or restores it",
                path=report.path,
                position=report.position,
                offset=report.offset,
            )

    def _read_segment(
        self, segment: Segment, offset: int, max_bytes: int, limit: int, *, indexed: bool = True
    ) -> ReadResult:
        position, expected = segment.locate(offset) if indexed else (0, segment.base_offset)
        start = -1
        first = total = 0
        cursor, cursor_offset = position, expected  # the next header the scan checks
        try:
            for at, header in segment.headers_from(position, segment.size, expected):
                cursor, cursor_offset = at + header.length, header.next_offset
                if header.base_offset >= limit:
                    break
                if start < 0:
                    if header.next_offset <= offset:
                        continue
                    start, first = at, header.base_offset
                elif total + header.length > max_bytes:
                    break
                total += header.length
        except InvalidBatchError as exc:
            if start < 0 and cursor == position > 0:
                # An index entry sent us into the middle of a batch: trust the .log, not the index.
                return self._read_segment(segment, offset, max_bytes, limit, indexed=False)
            if start < 0:
                self._report_corruption(segment, cursor, cursor_offset, str(exc))
        if start < 0:
            return ReadResult(b"", offset, offset, 0, 0, self.high_watermark)
        return self._checked(segment, segment.read_range(start, total), start, first)

    def _checked(self, segment: Segment, data: bytes, start: int, first: int) -> ReadResult:
        """Check every batch's CRCs before it leaves; serve the good prefix, report the rest."""
        position = records = batches = 0
        expected = first
        while position < len(data):
            try:
                header = check_batch(data, position)
                if header.base_offset != expected:
                    raise InvalidBatchError(f"base offset {header.base_offset}, expected {expected}")
            except InvalidBatchError as exc:
                self._report_corruption(segment, start + position, expected, str(exc), raise_now=not batches)
                break
            position += header.length
            records += header.record_count
            batches += 1
            expected = header.next_offset
        return ReadResult(data[:position], first, expected, records, batches, self.high_watermark)

    def _report_corruption(
        self, segment: Segment, position: int, offset: int, reason: str, *, raise_now: bool = True
    ) -> None:
        if self._corruption is None or offset < self._corruption.offset:
            self._corruption = CorruptionReport(segment.path, position, offset, reason)
        if raise_now:
            self._check_corruption(offset)

    def offset_for_time(self, timestamp: int) -> int:
        """The first offset appended at or after ``timestamp`` (ms), or ``end_offset`` if none.

        Binary search over segments by their newest time, then over the
        segment's time index, then a scan of at most about one index interval.
        """
        with self._lock:
            if self._closed:
                raise LogClosedError(f"log {self.directory} is closed")
            # Segments are in time order; an empty (active) segment sorts last.
            number = bisect_right(
                self._segments, timestamp - 1, key=lambda s: s.max_append_time if s.size else 2**63
            )
            if number >= len(self._segments):
                return self._end_offset
            segment = self._segments[number]
            position, expected = segment.locate_time(timestamp)
            try:
                found = _first_appended_since(segment, timestamp, position, expected)
            except (IndexMismatch, InvalidBatchError):
                found = None
            if found is None:  # the indexes lied (a damaged index file): scan the whole segment
                found = _first_appended_since(segment, timestamp, 0, segment.base_offset)
            assert found is not None
            return found

    # -- maintenance ---------------------------------------------------------------

    def apply_retention(self, now: int | None = None) -> list[SegmentInfo]:
        """Delete the sealed segments the retention policy no longer keeps; returns them."""
        observed = self._observed_ages() if now is None else None
        now = self._clock() if now is None else now
        with self._sync_lock, self._lock:
            self._check_writable()
            doomed = segments_to_delete(self.segments, self.config.retention, now, observed)
            for info in doomed:
                self._aged.pop(info.base_offset, None)
            for info in doomed:
                segment = self._segments.pop(0)
                assert segment.base_offset == info.base_offset
                segment.close()
                try:
                    # Indexes first: a crash in between leaves a .log to reload, not orphan indexes.
                    for path in reversed(segment.paths()):
                        self._fs.remove(path)
                except OSError as exc:
                    raise self._fail(f"cannot delete segment {segment.path}: {exc}") from exc
            if doomed:
                self._fs.sync_dir(self.directory)
            return doomed

    def _observed_ages(self) -> dict[int, int] | None:
        """Each sealed segment's age as this process has watched it pass, on the monotonic clock.

        Why: age is ``wall now - newest append time``, and the wall clock jumps
        (NTP steps, a VM resumed, an operator's typo). A jump forward would make
        every segment look expired at once and retention would delete data
        that is not old. So a segment's age is also measured from the first
        time this log saw it sealed: its wall age then (0 for a segment it sealed
        itself, right after its last append) plus the monotonic time since.
        Retention deletes by age only when both agree. A clock already wrong
        when the broker starts is not caught; a jump while it runs is.
        """
        if self._monotonic is None:
            return None
        mono, wall = self._monotonic(), self._clock()
        with self._lock:
            sealed = [segment.info for segment in self._segments[:-1]]
        ages: dict[int, int] = {}
        for info in sealed:
            seen = self._aged.get(info.base_offset)
            if seen is None:
                seen = self._aged[info.base_offset] = (max(0, wall - info.max_append_time), mono)
            ages[info.base_offset] = seen[0] + mono - seen[1]
        return ages

    def truncate_corrupt(self) -> int:
        """The operator's decision after corruption: cut the log at the damaged batch.

        Everything from the damaged batch on is deleted; returns the new end offset.
        """
        with self._sync_lock, self._lock:
            self._check_writable()
            report = self._corruption
            if report is None:
                return self._end_offset
            number = next(i for i, s in enumerate(self._segments) if s.path == report.path)
            # First make a mark at the cut durable: an older one, past the cut, coming back after a
            # crash would make recovery report the bytes cut here as lost durable data.
            base = self._segments[number].base_offset
            self._write_mark(durable_mark.DurableMark(base, report.position, report.offset), sync=True)
            for segment in self._segments[number + 1 :]:
                segment.close()
                for path in segment.paths():
                    self._fs.remove(path)
            del self._segments[number + 1 :]
            segment = self._active
            segment.truncate(report.position)
            segment.file.sync()
            self._fs.sync_dir(self.directory)
            self._corruption = None
            self._end_offset = self._durable_offset = segment.next_offset
            self._write_checkpoint()
            return self._end_offset

    def close(self) -> None:
        """Seal the active segment, write a checkpoint and close every file. Idempotent."""
        with self._sync_lock, self._lock:
            if self._closed:
                return
            try:
                if self._failed is None:
                    self._seal(self._active)
                    self._durable_offset = self._end_offset
                    self._write_checkpoint()
            except DiskFullError:
                pass  # the data is synced; the indexes and checkpoint will be re-derived on open
            finally:
                self._closed = True
                for segment in self._segments:
                    segment.close()
                self._mark.close()

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _first_appended_since(segment: Segment, timestamp: int, position: int, expected: int) -> int | None:
    """The first offset of ``segment`` appended at or after ``timestamp``, scanning from ``position``.

    None when the batch the indexes chose (``position`` > 0) is already that
    new: append times never decrease, so a sound index never does that.
    """
    for at, header in segment.headers_from(position, segment.size, expected):
        if header.append_time >= timestamp:
            return None if at == position > 0 else header.base_offset
    return segment.next_offset


def _no_space(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
