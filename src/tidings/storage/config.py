"""How a partition log behaves: fsync policy, retention, segment sizes."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tidings.errors import StorageError


class SyncMode(Enum):
    ALWAYS = "always"  # fsync before an append counts as committed (group commit)
    INTERVAL = "interval"  # committed once written; fsync at most every interval_ms
    NEVER = "never"  # committed once written; fsync only on roll and close


@dataclass(frozen=True, slots=True)
class FsyncPolicy:
    mode: SyncMode = SyncMode.ALWAYS
    interval_ms: int | None = None

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        """Parse ``always``, ``never`` or ``interval:MS``, with an error that names the text."""
        value = text.strip().lower()
        if value == "always":
            return cls(SyncMode.ALWAYS)
        if value == "never":
            return cls(SyncMode.NEVER)
        if value.startswith("interval:"):
            number = value.removeprefix("interval:")
            if number.isascii() and number.isdigit() and int(number) > 0:
                return cls(SyncMode.INTERVAL, int(number))
        raise StorageError(f"bad fsync policy {text!r}: use always, never or interval:MS (MS > 0)")

    def __str__(self) -> str:
        return f"interval:{self.interval_ms}" if self.mode is SyncMode.INTERVAL else self.mode.value


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Keep forever by default: a new service must be able to replay all history."""

    max_age_ms: int | None = None
    max_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class LogConfig:
    fsync: FsyncPolicy = field(default_factory=FsyncPolicy)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    max_segment_bytes: int = 128 * 1024 * 1024
    max_segment_ms: int = 7 * 24 * 3600 * 1000
    index_interval_bytes: int = 4096
    checkpoint_interval_bytes: int = 16 * 1024 * 1024
    # Zero-filled, fsynced room kept ahead of the active segment's end under ``fsync=always``,
    # topped up by this much when less than this is left; 0 turns it off. Why: an fdatasync after
    # appending to a growing file also commits the new size and blocks to the journal; after
    # overwriting blocks that were zeroed and synced before it only writes the data, about twice
    # as fast on ext4; off by default, since end to end it measured no faster here (see
    # ``PartitionLog.preallocate`` and docs/format.md, Preallocation).
    prealloc_bytes: int = 0
    # Walk each appended batch's record prefixes (see records.validate_records).
    validate_records: bool = True
