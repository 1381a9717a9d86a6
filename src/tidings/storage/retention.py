"""Rolling, retention and flush decisions as pure functions.

Each takes the state it needs and returns a decision; ``PartitionLog`` does
the I/O. That keeps the rules readable in one place and testable without
files (Kafka's ``LogSegment.shouldRoll(RollParams)`` is the model).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tidings.storage.config import FsyncPolicy, RetentionPolicy
from tidings.storage.results import RollParams, SegmentInfo

# Offsets and positions inside a segment are stored as uint32 in the indexes.
MAX_RELATIVE = 2**32 - 1


def should_roll(params: RollParams) -> bool:
    """Start a new segment before appending this batch?"""
    segment = params.segment
    if segment.size == 0:
        return False  # never leave an empty segment behind
    if segment.size + params.batch_size > params.max_segment_bytes:
        return True
    if segment.size + params.batch_size > MAX_RELATIVE:
        return True
    if segment.next_offset + params.batch_records - 1 - segment.base_offset > MAX_RELATIVE:
        return True
    return segment.first_append_time >= 0 and params.now - segment.first_append_time >= params.max_segment_ms


def segments_to_delete(
    segments: Sequence[SegmentInfo],
    policy: RetentionPolicy,
    now: int,
    observed_ages: Mapping[int, int] | None = None,
) -> list[SegmentInfo]:
    """The oldest sealed segments that retention removes, oldest first.

    The active (last) segment is never deleted, so a log always keeps its end
    offset. A segment goes by age when its newest record is older than
    ``max_age_ms``; by size while the log without it still holds at least
    ``max_bytes``. Deletion is whole segments only, from the front, so the
    remaining log stays contiguous. ``observed_ages`` (segment base -> age
    measured on a monotonic clock, see ``PartitionLog._observed_ages``) must
    confirm an age-based deletion, so a wall clock jumping forward deletes
    nothing early.
    """
    sealed = list(segments[:-1])
    total = sum(segment.size for segment in segments)
    doomed: list[SegmentInfo] = []
    for segment in sealed:
        expired = (
            policy.max_age_ms is not None
            and segment.max_append_time >= 0
            and now - segment.max_append_time > policy.max_age_ms
            and (observed_ages is None or observed_ages.get(segment.base_offset, 0) > policy.max_age_ms)
        )
        oversized = policy.max_bytes is not None and total - segment.size >= policy.max_bytes
        if not (expired or oversized):
            break
        doomed.append(segment)
        total -= segment.size
    return doomed


def sync_due(policy: FsyncPolicy, last_sync_ms: int, now_ms: int, unsynced: bool) -> bool:
    """Under ``interval:MS``, is it time for the background fsync?"""
    return unsynced and policy.interval_ms is not None and now_ms - last_sync_ms >= policy.interval_ms
