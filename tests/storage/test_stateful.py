"""A hypothesis state machine drives a ``PartitionLog`` and checks it against a list of batches.

The model is what a log must be: the batches appended, stamped with consecutive
offsets and non-decreasing append times, minus the prefix retention removed,
with everything below the high watermark visible to reads: the durable offset
under ``fsync=always``, the end offset under ``never``.
Rules append, read, ask for offsets by time with a clock that sometimes moves,
force rolls, apply retention, sync and reopen; after each step the offsets of
the log and the model must agree.
"""

import itertools
import shutil
import tempfile
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from tidings.records import HEADER_SIZE, BatchBuilder, iter_batches, iter_records, stamped_header
from tidings.storage import FsyncPolicy, LogConfig, OsFileSystem, PartitionLog, RetentionPolicy
from tidings.storage.fileio import OsFile


class NoSyncFile(OsFile):
    def sync(self) -> None:
        """The log's bookkeeping of durability is under test here, not the disk: skip the real fsync."""


class NoSyncFileSystem(OsFileSystem):
    def open(self, path):
        return NoSyncFile(path)

    def sync_dir(self, path) -> None:
        pass


class Clock:
    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@dataclass(frozen=True)
class StoredBatch:
    base: int
    count: int
    append_time: int
    data: bytes  # exactly the bytes the log must serve: stamped header + the producer's records
    records: tuple  # (key, value, headers, timestamp) of each record

    @property
    def next(self) -> int:
        return self.base + self.count


records_strategy = st.lists(
    st.tuples(
        st.none() | st.binary(max_size=8),
        st.binary(max_size=60),
        st.lists(st.tuples(st.text(max_size=4), st.binary(max_size=8)), max_size=2),
        st.integers(min_value=0, max_value=10_000),
    ),
    min_size=1,
    max_size=4,
)


class PartitionLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = tempfile.mkdtemp(prefix="tidings-stateful-")
        self.clock = Clock(1_700_000_000_000)
        self.fs = NoSyncFileSystem()
        self.batches: list[StoredBatch] = []
        self.start = 0
        self.end = 0
        self.durable = 0
        self.log: PartitionLog | None = None
        self.config = LogConfig()

    @initialize(
        fsync=st.sampled_from(["always", "never"]),
        index_interval_bytes=st.sampled_from([1, 100, 400, 4096]),
        max_segment_bytes=st.sampled_from([250, 700, 2_000, 1 << 20]),
    )
    def open_log(self, fsync, index_interval_bytes, max_segment_bytes):
        self.config = LogConfig(
            fsync=FsyncPolicy.parse(fsync),
            index_interval_bytes=index_interval_bytes,
            max_segment_bytes=max_segment_bytes,
        )
        self.log = PartitionLog(self.directory, self.config, fs=self.fs, clock=self.clock)

    def teardown(self) -> None:
        if self.log is not None:
            self.log.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    @property
    def always(self) -> bool:
        return str(self.config.fsync) == "always"

    @property
    def high_watermark(self) -> int:
        return self.durable if self.always else self.end

    def reopen(self, config: LogConfig) -> None:
        assert self.log is not None
        self.log.close()
        self.log = PartitionLog(self.directory, config, fs=self.fs, clock=self.clock)
        self.durable = self.end  # close fsyncs everything

    # -- rules ------------------------------------------------------------------------

    def _append(self, records) -> None:
        assert self.log is not None
        builder = BatchBuilder()
        for key, value, headers, timestamp in records:
            builder.add(value, key=key, headers=headers, timestamp=timestamp)
        raw = builder.build()
        segments_before = len(self.log.segments)
        last_time = self.batches[-1].append_time if self.batches else 0
        result = self.log.append(raw)
        assert result.base_offset == self.end
        assert result.last_offset == self.end + len(records) - 1
        assert result.append_time == max(self.clock.now, last_time)
        stored = stamped_header(raw, result.base_offset, result.append_time) + raw[HEADER_SIZE:]
        self.batches.append(
            StoredBatch(result.base_offset, len(records), result.append_time, stored, tuple(records))
        )
        if len(self.log.segments) > segments_before:
            self.durable = self.end  # a roll fsyncs the segment it seals
        self.end = result.next_offset

    @rule(records=records_strategy, commit=st.booleans())
    def append(self, records, commit):
        self._append(records)
        if commit:
            assert self.log is not None
            self.log.commit(self.end - 1)
            if self.always:
                self.durable = self.end  # never: commit acknowledges without an fsync

    @rule(step=st.integers(min_value=-30, max_value=200) | st.just(0))
    def move_clock(self, step):
        self.clock.now += step  # sometimes back: append times must still never decrease

    @rule(data=st.data(), max_bytes=st.integers(min_value=0, max_value=1_500))
    def read(self, data, max_bytes):
        assert self.log is not None
        offset = data.draw(st.integers(min_value=self.start, max_value=self.end), label="offset")
        result = self.log.read(offset, max_bytes)
        assert result.high_watermark == self.high_watermark
        if offset >= self.high_watermark:
            assert result.empty
            assert (result.first_offset, result.next_offset, result.record_count) == (offset, offset, 0)
            return
        index = next(i for i, b in enumerate(self.batches) if b.base <= offset < b.next)
        segment_bases = {segment.base_offset for segment in self.log.segments}
        served = [self.batches[index]]
        for following in self.batches[index + 1 :]:
            total = sum(len(b.data) for b in served)
            if following.base >= self.high_watermark or following.base in segment_bases:
                break  # not yet durable, or in the next segment: a read stays in one segment
            if total + len(following.data) > max_bytes:
                break
            served.append(following)
        assert result.data == b"".join(b.data for b in served)  # byte for byte
        assert result.first_offset == served[0].base
        assert result.next_offset == served[-1].next
        assert result.batch_count == len(served)
        assert result.record_count == sum(b.count for b in served)
        decoded = [
            r for position, h in iter_batches(result.data) for r in iter_records(result.data, position, h)
        ]
        expected = [
            (b.base + i, b.append_time, *record) for b in served for i, record in enumerate(b.records)
        ]
        assert [
            (r.offset, r.append_time, r.key, r.value, list(r.headers), r.timestamp) for r in decoded
        ] == expected

    @rule(data=st.data())
    def offset_for_time(self, data):
        assert self.log is not None
        low = self.batches[0].append_time - 2 if self.batches else self.clock.now - 2
        high = max(self.clock.now, self.batches[-1].append_time if self.batches else 0) + 2
        timestamp = data.draw(st.integers(min_value=low, max_value=high), label="timestamp")
        want = next((b.base for b in self.batches if b.append_time >= timestamp), self.end)
        assert self.log.offset_for_time(timestamp) == want

    @precondition(lambda self: self.batches)
    @rule(records=records_strategy)
    def force_roll(self, records):
        assert self.log is not None
        count = len(self.log.segments)
        self.reopen(replace(self.config, max_segment_bytes=1))
        self._append(records)
        assert len(self.log.segments) == count + 1
        assert self.log.segments[-1].base_offset == self.batches[-1].base
        self.reopen(self.config)

    @rule(fraction=st.floats(min_value=0.0, max_value=1.0))
    def retention_by_bytes(self, fraction):
        assert self.log is not None
        max_bytes = int(self.log.size * fraction)
        self.reopen(replace(self.config, retention=RetentionPolicy(max_bytes=max_bytes)))
        deleted = self.log.apply_retention()
        if deleted:
            assert self.log.start_offset == deleted[-1].next_offset
        start = self.log.start_offset
        assert start == self.start or any(b.base == start for b in self.batches)
        segments = self.log.segments
        # what is left holds at least max_bytes, or only the active segment is left
        assert len(segments) == 1 or self.log.size - segments[0].size < max_bytes
        self.batches = [b for b in self.batches if b.base >= start]
        self.start = start
        self.reopen(self.config)

    @rule()
    def close_and_reopen(self):
        assert self.log is not None
        segments = self.log.segments
        self.reopen(self.config)
        assert self.log.segments == segments
        assert self.log.recovery.scanned_bytes == 0

    @rule()
    def sync(self):
        assert self.log is not None
        assert self.log.sync() == self.end
        self.durable = self.end

    # -- invariants -------------------------------------------------------------------

    @invariant()
    def offsets_agree(self):
        if self.log is None:
            return
        assert self.log.start_offset == self.start
        assert self.log.end_offset == self.end
        assert self.log.durable_offset == self.durable
        assert self.log.high_watermark == self.high_watermark
        assert self.log.size == sum(len(b.data) for b in self.batches)
        segments = self.log.segments
        assert segments[0].base_offset == self.start and segments[-1].next_offset == self.end
        for before, after in itertools.pairwise(segments):
            assert before.next_offset == after.base_offset


PartitionLogMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPartitionLog = PartitionLogMachine.TestCase
