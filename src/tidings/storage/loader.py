"""Opening a partition log directory: find the segments, recover after a crash.

Theory of operation. Everything before the recovery checkpoint was synced
(log and indexes) before the checkpoint was written, so it is trusted: sealed
segments only load their index files, which costs no scan. From the
checkpoint on, every batch is checked in full (both CRCs, offsets contiguous)
and the indexes are re-derived. The first batch that fails is either

* a torn tail: nothing valid follows it in the last segment. A write was cut
  short by the crash, so nobody was told it was durable: it is cut off.
* corruption: a valid batch follows it, or it sits in a segment that has a
  successor. Data that was reported durable is damaged: nothing is cut, the
  damage is reported with file, position and offset, and the log will not
  serve past it until an operator decides (``PartitionLog.truncate_corrupt``).

The checkpoint is written only every few MiB; the durable mark
(``tidings.storage.mark``) says how far the last segment was fsynced at the
last group commit. Bytes below it were acknowledged: a batch there that fails,
or a file that ends short of it, is corruption even at the tail, never a
tear. Above it the rule above holds. A missing, damaged or stale mark (one
that names another segment, or says less) only leaves more to that rule.

Zeros after the last good batch are neither a tear nor damage: the log keeps
zero-filled room ahead of the active segment's end (``PartitionLog.preallocate``),
and a crash leaves it behind. They are trimmed without a word, as a clean
close would have, and found with a few reads backwards from the end of the
file, not a batch-by-batch scan. A torn write followed by zeros is a torn
write (cut, above the mark) and then room. Zeros where the mark says batches
were synced are missing data: corruption. Once any damage is reported,
nothing is cut, zeros included.

A missing or damaged checkpoint means scanning everything: slow, never wrong.
Index files that fail their checks (size, order, pointing past the log, a
last entry that is not the segment's last batch: one short header walk per
sealed segment) are rebuilt by a full check of the .log.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from dataclasses import dataclass, field

from tidings.errors import InvalidBatchError
from tidings.records import BatchHeader
from tidings.storage import checkpoint as ckpt
from tidings.storage import mark as durable_mark
from tidings.storage.config import LogConfig
from tidings.storage.fileio import FileSystem
from tidings.storage.index import IndexCorrupted
from tidings.storage.results import CorruptionReport
from tidings.storage.segment import IndexMismatch, Segment, parse_segment_name

INDEX_SUFFIXES = (".index", ".timeindex")


@dataclass
class LoadOutcome:
    segments: list[Segment]
    corruption: CorruptionReport | None = None
    truncated_bytes: int = 0  # torn tail cut off
    preallocated_bytes: int = 0  # zeros after the last batch: room the log had zero-filled, trimmed
    scanned_bytes: int = 0  # bytes checked batch by batch (the cost of recovery)
    rebuilt_indexes: list[str] = field(default_factory=list)


def load(fs: FileSystem, directory: str, config: LogConfig) -> LoadOutcome:
    if not fs.exists(directory):
        fs.makedirs(directory)
        # The new directory's own entry must be durable too, or a crash could lose a whole
        # log whose appends were reported durable.
        fs.sync_dir(os.path.dirname(os.path.abspath(directory)))
    names = fs.listdir(directory)
    for name in names:
        if name.endswith(".tmp"):
            fs.remove(os.path.join(directory, name))
    bases = sorted(base for name in names if (base := parse_segment_name(name)) is not None)
    _remove_orphan_indexes(fs, directory, names, bases)
    interval = config.index_interval_bytes
    if not bases:
        segment = Segment(fs, directory, 0, interval)
        fs.sync_dir(directory)
        return LoadOutcome([segment])

    segments = [Segment(fs, directory, base, interval) for base in bases]
    point = ckpt.read(fs, directory)
    if point is not None and (
        point.segment not in bases or point.position > _file_size(segments[bases.index(point.segment)])
    ):
        point = None
    durable = durable_mark.read(fs, directory)
    last_durable = durable.position if durable is not None and durable.segment == bases[-1] else 0
    outcome = LoadOutcome(segments)
    for number, segment in enumerate(segments):
        is_last = number == len(segments) - 1
        following = segments[number + 1].base_offset if not is_last else None
        if point is not None and segment.base_offset < point.segment and following is not None:
            _load_sealed(segment, following, interval, outcome)
        elif point is not None and segment.base_offset == point.segment:
            start = point if _load_indexes(segment, outcome) else _from_start(segment)
            lost_times = len(segment.offset_index) > 0 and not len(segment.time_index)
            if start is point and (
                lost_times or not _index_fits(segment, point.position, point.next_offset, interval)[0]
            ):
                outcome.rebuilt_indexes.append(f"{segment.offset_index.path}: does not match its log")
                start = _from_start(segment)
            trusted = max(point.position, last_durable if is_last else 0)
            _recover(segment, start, is_last, outcome, trusted=trusted)
        else:
            segment.offset_index.clear()
            segment.time_index.clear()
            _recover(segment, _from_start(segment), is_last, outcome, trusted=last_durable if is_last else 0)
        if following is not None and segment.next_offset != following and outcome.corruption is None:
            outcome.corruption = CorruptionReport(
                segment.path,
                segment.size,
                segment.next_offset,
                f"segment ends at offset {segment.next_offset} but the next one starts at {following}",
            )
    return outcome


def _file_size(segment: Segment) -> int:
    return segment.file.size()


def _remove_orphan_indexes(fs: FileSystem, directory: str, names: list[str], bases: list[int]) -> None:
    """Index files whose .log is gone: left by a crash in the middle of a retention delete."""
    known = {f"{base:020d}" for base in bases}
    for name in names:
        stem, _, suffix = name.partition(".")
        if "." + suffix in INDEX_SUFFIXES and stem not in known:
            fs.remove(os.path.join(directory, name))


def _load_indexes(segment: Segment, outcome: LoadOutcome) -> bool:
    try:
        segment.offset_index.load()
        segment.time_index.load()
    except IndexCorrupted as exc:
        outcome.rebuilt_indexes.append(str(exc))
        segment.offset_index.clear()
        segment.time_index.clear()
        return False
    return True


def _load_sealed(segment: Segment, following: int, interval: int, outcome: LoadOutcome) -> None:
    """A segment before the checkpoint: trust its bytes, load (or rebuild) its indexes."""
    size = _file_size(segment)
    segment.size = size
    segment.next_offset = following
    healthy = _load_indexes(segment, outcome)
    offsets, times = segment.offset_index, segment.time_index
    if (
        healthy
        and size
        and (
            not len(times)
            or (len(offsets) and offsets.values[-1] >= size)
            or (len(offsets) and segment.base_offset + offsets.keys[-1] >= following)
            or segment.base_offset + times.values[-1] >= following
            or not _ends_as_sealed(segment, size, following, interval)
        )
    ):
        outcome.rebuilt_indexes.append(f"{offsets.path}: does not match its log")
        healthy = False
    if not healthy:
        # A full check, not a header walk: a damaged batch is reported, never raised from here.
        segment.offset_index.clear()
        segment.time_index.clear()
        _recover(segment, _from_start(segment), False, outcome)
        return
    # The seal wrote a last time-index entry: the newest time and the last batch.
    segment.resume(size, following, times.keys[-1], segment.base_offset + times.values[-1])


def _index_fits(
    segment: Segment, end: int, next_offset: int, interval: int
) -> tuple[bool, BatchHeader | None]:
    """Walk the batch headers from the last offset-index entry below ``end`` to ``end``.

    The index fits its log when the walk ends exactly at ``end`` at
    ``next_offset`` and passes no batch that should have had an entry (one
    ``interval`` after the last). Costs one short read. Returns whether it
    fits and the last header walked.
    """
    offsets = segment.offset_index
    slot = bisect_left(offsets.values, end) - 1
    indexed, expected = 0, segment.base_offset
    if slot >= 0:
        indexed, expected = offsets.values[slot], segment.base_offset + offsets.keys[slot]
    last, position = None, indexed
    try:
        for at, header in segment.headers_from(indexed, end, expected):
            if at - indexed >= interval:
                return False, None  # an entry is missing here
            last, position, expected = header, at + header.length, header.next_offset
    except (InvalidBatchError, IndexMismatch):
        return False, None
    return position == end and expected == next_offset, last


def _ends_as_sealed(segment: Segment, size: int, following: int, interval: int) -> bool:
    """Do the indexes fit the log, and does the last batch say what the seal's time entry says?"""
    fits, last = _index_fits(segment, size, following, interval)
    times = segment.time_index
    return (
        fits
        and last is not None
        and last.append_time == times.keys[-1]
        # Keys strictly increase: a seal in the same ms as the last entry adds none.
        and last.base_offset >= segment.base_offset + times.values[-1]
    )


def _from_start(segment: Segment) -> ckpt.Checkpoint:
    return ckpt.Checkpoint(segment.base_offset, 0, segment.base_offset, -1, -1)


def _recover(
    segment: Segment, start: ckpt.Checkpoint, is_last: bool, outcome: LoadOutcome, trusted: int = 0
) -> None:
    """Scan ``segment`` from ``start`` to its end; cut a torn tail, report corruption.

    Bytes before ``trusted`` (the checkpoint's position, or the durable mark's)
    were synced: damage there, zeros there, or a file that ends before it, is
    never a tear. A zero tail after ``trusted`` is preallocated room: trimmed
    in any segment, since zeros are never data.
    """
    size = _file_size(segment)
    segment.resume(start.position, start.next_offset, start.max_append_time, start.last_batch)
    result = segment.recover(start.position, start.next_offset, size)
    outcome.scanned_bytes += max(0, size - result.zero_bytes - start.position)
    if result.corruption is not None and outcome.corruption is None:
        outcome.corruption = result.corruption
    missing = result.end < trusted
    if missing and outcome.corruption is None:
        reason = "damaged batch in synced data" if result.torn_bytes else "synced data missing"
        outcome.corruption = CorruptionReport(
            segment.path,
            result.end,
            result.next_offset,
            f"{reason}: the segment was fsynced to position {trusted}, "
            f"but its batches check out only to {result.end} of {size} bytes",
        )
    elif result.torn_bytes and not is_last and outcome.corruption is None:
        outcome.corruption = CorruptionReport(
            segment.path, result.end, result.next_offset, "damaged batch in synced data"
        )
    # A tear in a sealed segment is damage (reported above), never cut; zeros anywhere are room.
    # Once damage is reported nothing at all is cut, zeros included: the operator sees the files
    # as the crash left them, and ``truncate_corrupt`` cuts at the damage anyway.
    cut = result.torn_bytes or result.zero_bytes
    if cut and outcome.corruption is None and (is_last or not result.torn_bytes):
        segment.file.truncate(result.end)
        outcome.truncated_bytes += result.torn_bytes
        outcome.preallocated_bytes += result.zero_bytes
    if not is_last:
        segment.seal()  # its indexes were re-derived in memory: write them, with the final time entry
