"""Damaged bytes on disk: torn tails are cut, corruption is reported and never cut.

Each test starts from a log image built once per module with real files:

* ``closed``: several segments, closed cleanly, so the recovery checkpoint
  covers every byte and the last batch is trusted;
* ``crashed``: the same history, reopened, a tail of batches appended and
  committed, and the directory copied while the log was still open, as a
  SIGKILL would leave it: the checkpoint sits before the tail, so recovery
  must check every tail batch, and the durable mark is at the end of it, so
  recovery knows the whole tail was acknowledged;
* ``torn``: as ``crashed``, but the last batch was appended and never
  committed: the durable mark sits before it, so it is the only batch a crash
  may have torn.

The tests copy an image, damage the copy (cut it, flip a byte, lose or garble
an index or the checkpoint), reopen it and compare what the log serves with
what was appended, byte for byte.
"""

from __future__ import annotations

import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.storage.appender import (
    append_all,
    assert_is_batch,
    batch_for,
    batch_spans,
    logical_end,
    read_batches,
)
from tidings.errors import LogCorruptedError
from tidings.records import read_header
from tidings.storage import LogConfig, OsFileSystem, PartitionLog
from tidings.storage import checkpoint as ckpt
from tidings.storage import mark as durable_mark

CONFIG = LogConfig(max_segment_bytes=8 * 1024, index_interval_bytes=128, prealloc_bytes=4 * 1024 * 1024)
SEALED_IDS = list(range(12))  # about 40 KiB: four segments
# Small batches for the tail, so that it stays in one segment and cutting every byte is quick.
SMALL_IDS = [number for number in range(1000, 3000) if 90 <= len(batch_for(number)) <= 400][:6]


@dataclass(frozen=True)
class Image:
    directory: Path
    batches: list[tuple[int, int]]  # (batch id, base offset), in log order
    checkpoint: ckpt.Checkpoint

    @property
    def end_offset(self) -> int:
        number, base = self.batches[-1]
        return base + read_header(batch_for(number)).record_count

    def positions(self) -> dict[int, tuple[Path, int, int]]:
        """Base offset -> (.log file, position, length) for every batch of the image."""
        found: dict[int, tuple[Path, int, int]] = {}
        for path in sorted(self.directory.glob("*.log")):
            data = path.read_bytes()
            for position, length in batch_spans(data):
                found[read_header(data, position).base_offset] = (path, position, length)
        return found

    def locate(self, index: int) -> tuple[Path, int, int]:
        """(.log file, position, length) of the ``index``-th batch."""
        return self.positions()[self.batches[index][1]]


def build_image(directory: Path, kind: str) -> Image:
    work = directory.with_name(directory.name + "-work")
    # A clock one ms further on at every call: the time indexes get the same entries on every
    # run, whatever the machine's speed (a wall clock made the .timeindex cases flaky).
    ticks = itertools.count(1_700_000_000_000)

    def clock() -> int:
        return next(ticks)

    crashed = kind != "closed"
    with PartitionLog(str(work), CONFIG, clock=clock) as log:
        placed = append_all(log, SEALED_IDS)
        if not crashed:
            placed += append_all(log, SMALL_IDS)
    if crashed:
        log = PartitionLog(str(work), CONFIG, clock=clock)
        placed += append_all(log, SMALL_IDS if kind == "crashed" else SMALL_IDS[:-1])
        if kind == "torn":
            placed.append((SMALL_IDS[-1], log.append(batch_for(SMALL_IDS[-1])).base_offset))
        shutil.copytree(work, directory)  # the files as a SIGKILL right now would leave them
        log.close()
    else:
        shutil.copytree(work, directory)
    shutil.rmtree(work)
    point = ckpt.read(OsFileSystem(), str(directory))
    assert point is not None
    image = Image(directory, placed, point)
    tail = [image.locate(i) for i in range(len(placed) - len(SMALL_IDS), len(placed))]
    assert len({path for path, _, _ in tail}) == 1, "the small batches share the active segment"
    path, last_position, last_length = tail[-1]
    data = path.read_bytes()
    assert logical_end(data) == last_position + last_length
    # A crash leaves the preallocated zeros after the last batch; a clean close cut them.
    assert (len(data) > last_position + last_length) == crashed
    assert not data[last_position + last_length :].strip(b"\0")
    if crashed:
        assert point.segment == int(path.stem)
        assert point.position <= tail[0][1], "the checkpoint is before the tail"
    else:
        assert point.position == len(data), "a clean close checkpoints everything"
    mark = durable_mark.read(OsFileSystem(), str(directory))
    assert mark is not None and mark.segment == int(path.stem)
    assert mark.position == (last_position if kind == "torn" else last_position + last_length)
    return image


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Image]:
    base = tmp_path_factory.mktemp("images")
    return {kind: build_image(base / kind, kind) for kind in ("closed", "crashed", "torn")}


def fresh_copy(image: Image, target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(image.directory, target)
    return target


def snapshot(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.glob("*.log"))}


def flip(path: Path, position: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(position)
        byte = handle.read(1)[0]
        handle.seek(position)
        handle.write(bytes([byte ^ 0xFF]))


def assert_serves(log: PartitionLog, expected: list[tuple[int, int]], stop: int | None = None) -> None:
    """The log serves exactly ``expected`` (below ``stop``), byte for byte."""
    stored = read_batches(log, stop=stop)
    assert [base for base, _ in stored] == [base for _, base in expected]
    for (base, data), (number, _) in zip(stored, expected, strict=True):
        assert_is_batch(bytes(data), number, base)


def assert_damage_reported(log: PartitionLog, path: Path, position: int, offset: int) -> None:
    """Reads at and after ``offset`` raise, naming file, position and offset; so does appending."""
    for probe in sorted({offset, max(offset, log.end_offset - 1)}):
        with pytest.raises(LogCorruptedError) as caught:
            log.read(probe)
        assert (caught.value.path, caught.value.position, caught.value.offset) == (
            str(path),
            position,
            offset,
        )
    report = log.corruption
    assert report is not None
    assert (report.path, report.position, report.offset) == (str(path), position, offset)
    with pytest.raises(LogCorruptedError):
        log.append(batch_for(7))


# -- torn tails ----------------------------------------------------------------------


def set_mark(directory: Path, image: Image, make: str) -> None:
    """Leave the durable mark as a crash may: ``kept``, or lost, torn or older than the data."""
    path = directory / durable_mark.FILENAME
    last_path, start, _ = image.locate(-1)
    if make == "missing":
        path.unlink()
    elif make == "garbage":
        path.write_bytes(os.urandom(durable_mark.SIZE))
    elif make == "torn":  # a half-written mark fails its CRC
        data = bytearray(path.read_bytes())
        data[durable_mark.SIZE // 2 :] = os.urandom(durable_mark.SIZE - durable_mark.SIZE // 2)
        path.write_bytes(bytes(data))
    elif make == "older":  # a power cut lost the newest mark: the one from the commit before
        older = durable_mark.DurableMark(int(last_path.stem), start, image.batches[-1][1])
        path.write_bytes(durable_mark.encode(older))
    elif make == "previous segment":  # the last mark was written before the last roll
        previous = sorted(directory.glob("*.log"))[-2]
        path.write_bytes(durable_mark.encode(durable_mark.DurableMark(int(previous.stem), 1 << 40, 0)))
    else:
        assert make == "kept"


# Every way recovery may know less than was durable: today's torn-tail rule applies.
ABOVE_THE_MARK = [
    ("torn", "kept"),
    ("crashed", "missing"),
    ("crashed", "garbage"),
    ("crashed", "torn"),
    ("crashed", "older"),
    ("crashed", "previous segment"),
    ("closed", "missing"),
]


@pytest.mark.parametrize(("kind", "mark"), ABOVE_THE_MARK)
def test_a_cut_anywhere_in_a_last_batch_above_the_durable_mark_leaves_exactly_the_batches_before_it(
    images: dict[str, Image], kind: str, mark: str, tmp_path: Path
) -> None:
    image = images[kind]
    path, start, length = image.locate(-1)
    before = image.batches[:-1]
    new_id = 5000
    for cut in range(start, start + length, 1 if kind == "torn" else 5):
        directory = fresh_copy(image, tmp_path / "log")
        segment = directory / path.name
        os.truncate(segment, cut)
        segment_bytes = segment.read_bytes()
        set_mark(directory, image, mark)

        with PartitionLog(str(directory), CONFIG) as log:
            assert log.corruption is None, cut
            # The zeros a torn batch ends with cannot be told from preallocated room.
            torn = len(segment_bytes[start:cut].rstrip(b"\0"))
            assert log.recovery.truncated_bytes == torn, cut
            assert log.recovery.truncated_bytes + log.recovery.preallocated_bytes == cut - start, cut
            assert log.end_offset == image.batches[-1][1], cut
            assert segment.stat().st_size == start, cut
            assert_serves(log, before)
            result = log.append(batch_for(new_id))
            log.commit(result.last_offset)
            assert result.base_offset == image.batches[-1][1]
        with PartitionLog(str(directory), CONFIG) as log:
            assert log.recovery.truncated_bytes == 0
            assert_serves(log, [*before, (new_id, result.base_offset)])


# A clean close checkpoints the last batch: damage there is reported (test further down).
@pytest.mark.parametrize(("kind", "mark"), [case for case in ABOVE_THE_MARK if case[0] != "closed"])
def test_every_flipped_byte_of_a_last_batch_above_the_durable_mark_cuts_exactly_that_batch(
    images: dict[str, Image], kind: str, mark: str, tmp_path: Path
) -> None:
    image = images[kind]
    path, start, length = image.locate(-1)
    for position in range(start, start + length, 1 if kind == "torn" else 5):
        directory = fresh_copy(image, tmp_path / "log")
        flip(directory / path.name, position)
        set_mark(directory, image, mark)
        with PartitionLog(str(directory), CONFIG) as log:
            assert log.corruption is None, position
            assert log.recovery.truncated_bytes == length, position
            assert log.end_offset == image.batches[-1][1], position
            assert_serves(log, image.batches[:-1])


# -- below the durable mark: acknowledged, so damage is corruption even at the tail ---------


def test_every_flipped_byte_of_an_acknowledged_last_batch_after_the_checkpoint_is_reported_never_cut(
    images: dict[str, Image], tmp_path: Path
) -> None:
    """Regression: fsynced after the last checkpoint, this batch was taken for a torn write and cut."""
    image = images["crashed"]
    path, start, length = image.locate(-1)
    assert start >= image.checkpoint.position, "the checkpoint does not cover it: only the mark does"
    offset = image.batches[-1][1]
    for position in range(start, start + length):
        directory = fresh_copy(image, tmp_path / "log")
        flip(directory / path.name, position)
        damaged = snapshot(directory)
        for _ in range(2):  # and again: closing must not turn the damage into a tear
            with PartitionLog(str(directory), CONFIG) as log:
                assert log.recovery.truncated_bytes == 0, position
                assert log.end_offset == offset, position
                assert_serves(log, image.batches[:-1], stop=offset)
                assert_damage_reported(log, directory / path.name, start, offset)
            assert snapshot(directory) == damaged, "no byte was deleted"


@pytest.mark.parametrize("kind", ["crashed", "closed"])
def test_an_acknowledged_last_batch_cut_short_is_reported_and_the_operator_can_cut_it(
    images: dict[str, Image], kind: str, tmp_path: Path
) -> None:
    """A file shorter than the durable mark lost synced bytes (a damaged disk, a bad restore)."""
    image = images[kind]
    path, start, length = image.locate(-1)
    offset = image.batches[-1][1]
    for cut in range(start, start + length, 11):
        directory = fresh_copy(image, tmp_path / "log")
        segment = directory / path.name
        os.truncate(segment, cut)
        for _ in range(2):
            with PartitionLog(str(directory), CONFIG) as log:
                assert log.recovery.truncated_bytes == 0, cut
                assert segment.stat().st_size == cut, "nothing was cut"
                assert_serves(log, image.batches[:-1], stop=offset)
                assert_damage_reported(log, segment, start, offset)
                report = log.corruption
                assert report is not None and "fsynced to position" in report.reason
    with PartitionLog(str(directory), CONFIG) as log:  # the operator decides to cut
        assert log.truncate_corrupt() == offset
        result = log.append(batch_for(5000))
        log.commit(result.last_offset)
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.corruption is None
        assert_serves(log, [*image.batches[:-1], (5000, offset)])


def test_a_flipped_byte_in_a_checkpointed_last_batch_is_reported_never_served_nor_cut(
    images: dict[str, Image], tmp_path: Path
) -> None:
    """The checkpoint says the batch was durable: damage to it is corruption, not a tear."""
    image = images["closed"]
    path, start, length = image.locate(-1)
    for position in range(start, start + length, 7):
        directory = fresh_copy(image, tmp_path / "log")
        flip(directory / path.name, position)
        damaged = snapshot(directory)
        for _ in range(2):  # and again: closing must not turn the damage into a tear
            with PartitionLog(str(directory), CONFIG) as log:
                assert log.recovery.truncated_bytes == 0
                assert_serves(log, image.batches[:-1], stop=image.batches[-1][1])
                assert_damage_reported(log, directory / path.name, start, image.batches[-1][1])
            assert snapshot(directory) == damaged


# -- corruption in the middle --------------------------------------------------------


def test_a_damaged_batch_in_the_unsynced_tail_with_good_batches_after_it_is_reported_never_cut(
    images: dict[str, Image], tmp_path: Path
) -> None:
    image = images["crashed"]
    victim = len(image.batches) - 3  # two good batches follow it
    path, start, length = image.locate(victim)
    assert start >= image.checkpoint.position, "the damage is after the checkpoint"
    offset = image.batches[victim][1]
    for position in range(start, start + length):
        directory = fresh_copy(image, tmp_path / "log")
        flip(directory / path.name, position)
        damaged = snapshot(directory)
        for _ in range(2):  # and again: closing must not turn the damage into a tear
            with PartitionLog(str(directory), CONFIG) as log:
                report = log.corruption
                assert report is not None, f"byte {position - start} of the batch"
                where = (report.path, report.position, report.offset)
                assert where == (str(directory / path.name), start, offset)
                assert log.recovery.truncated_bytes == 0
                assert log.end_offset == image.end_offset
                assert_serves(log, image.batches[:victim], stop=offset)
                assert_damage_reported(log, directory / path.name, start, offset)
            assert snapshot(directory) == damaged, "no byte was deleted"


@pytest.mark.parametrize("checkpoint", ["kept", "lost"])
@pytest.mark.parametrize("where", ["header", "records"])
def test_a_damaged_batch_in_a_sealed_segment_is_reported_never_cut(
    images: dict[str, Image], tmp_path: Path, checkpoint: str, where: str
) -> None:
    """Kept checkpoint: found by the read's CRC check. Lost: found by the recovery scan."""
    image = images["closed"]
    positions = image.positions()
    by_segment: dict[Path, list[int]] = {}
    for number, (_, base) in enumerate(image.batches):
        by_segment.setdefault(positions[base][0], []).append(number)
    sealed = [numbers for path, numbers in sorted(by_segment.items())[:-1] if len(numbers) >= 2]
    victim = sealed[0][-2]  # a good batch follows it in its segment, and more segments follow
    path, start, length = image.locate(victim)
    offset = image.batches[victim][1]
    directory = fresh_copy(image, tmp_path / "log")
    flip(directory / path.name, start + (0 if where == "header" else length - 1))
    if checkpoint == "lost":
        (directory / ckpt.FILENAME).unlink()
    damaged = snapshot(directory)
    for _ in range(2):  # and again: closing must not turn the damage into a tear
        with PartitionLog(str(directory), CONFIG) as log:
            if checkpoint == "lost":
                assert log.corruption is not None
            assert log.recovery.truncated_bytes == 0
            assert log.end_offset == image.end_offset
            assert_serves(log, image.batches[:victim], stop=offset)
            assert_damage_reported(log, directory / path.name, start, offset)
            assert_serves(log, image.batches[:victim], stop=offset)  # what is before still reads
        assert snapshot(directory) == damaged, "no byte was deleted"

    with PartitionLog(str(directory), CONFIG) as log:  # the operator decides to cut
        with pytest.raises(LogCorruptedError):
            log.read(offset)
        assert log.truncate_corrupt() == offset
        result = log.append(batch_for(5000))
        log.commit(result.last_offset)
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.corruption is None
        assert_serves(log, [*image.batches[:victim], (5000, offset)])


# -- indexes and the checkpoint ------------------------------------------------------


def _garble(directory: Path, pattern: str, make: str) -> None:
    for path in directory.glob(pattern):
        size = path.stat().st_size
        if make == "missing":
            path.unlink()
        elif make == "empty":
            path.write_bytes(b"")
        elif make == "odd size":
            path.write_bytes(path.read_bytes() + b"\x01\x02\x03")
        elif make == "random":
            path.write_bytes(os.urandom(size))
        elif make == "past the log":
            path.write_bytes(path.read_bytes() + b"\xff" * (12 if pattern.endswith("timeindex") else 8))
        elif make == "flipped" and size:
            flip(path, size // 2)


@pytest.mark.parametrize("make", ["missing", "empty", "odd size", "random", "past the log", "flipped"])
@pytest.mark.parametrize("pattern", ["*.index", "*.timeindex"])
@pytest.mark.parametrize("kind", ["closed", "crashed"])
def test_damaged_indexes_are_rebuilt_and_everything_reads_back(
    images: dict[str, Image], tmp_path: Path, kind: str, pattern: str, make: str
) -> None:
    image = images[kind]
    directory = fresh_copy(image, tmp_path / "log")
    _garble(directory, pattern, make)
    expect_indexes = {path.name: path.read_bytes() for path in image.directory.glob(pattern)}
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.corruption is None
        assert log.recovery.truncated_bytes == 0
        assert log.end_offset == image.end_offset
        assert_serves(log, image.batches)
        assert_finds_by_time(log)
    with PartitionLog(str(directory), CONFIG) as log:
        assert_serves(log, image.batches)
    if kind == "closed" and make != "flipped":  # rebuilt indexes say what the originals said
        assert {path.name: path.read_bytes() for path in directory.glob(pattern)} == expect_indexes


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_every_flipped_byte_of_a_sealed_index_is_survived(
    images: dict[str, Image], tmp_path: Path, suffix: str
) -> None:
    """Plausible but wrong entries pass the load checks; reads and time lookups must not trust them."""
    image = images["closed"]
    sealed = sorted(image.directory.glob("*" + suffix))[:-1]
    target = max(sealed, key=lambda path: path.stat().st_size)
    assert target.stat().st_size >= 16
    for position in range(target.stat().st_size):
        directory = fresh_copy(image, tmp_path / "log")
        flip(directory / target.name, position)
        with PartitionLog(str(directory), CONFIG) as log:
            assert log.corruption is None, position
            assert_serves(log, image.batches)
            assert_finds_by_time(log)
            assert log.corruption is None, position


def assert_finds_by_time(log: PartitionLog) -> None:
    for base, data in read_batches(log):
        append_time = read_header(data).append_time
        assert log.offset_for_time(append_time) <= base
        assert log.offset_for_time(append_time + 1) > base


@pytest.mark.parametrize(
    "make", ["missing", "empty", "random", "right size, random", "unknown segment", "past the end"]
)
@pytest.mark.parametrize("kind", ["closed", "crashed"])
def test_a_lost_or_garbage_checkpoint_means_a_full_scan_and_the_same_log(
    images: dict[str, Image], tmp_path: Path, kind: str, make: str
) -> None:
    image = images[kind]
    directory = fresh_copy(image, tmp_path / "log")
    path = directory / ckpt.FILENAME
    point = image.checkpoint
    if make == "missing":
        path.unlink()
    elif make == "empty":
        path.write_bytes(b"")
    elif make == "random":
        path.write_bytes(os.urandom(200))
    elif make == "right size, random":
        path.write_bytes(os.urandom(len(ckpt.encode(point))))
    elif make == "unknown segment":
        path.write_bytes(ckpt.encode(ckpt.Checkpoint(point.segment + 1, 0, point.segment + 1, -1, -1)))
    elif make == "past the end":
        path.write_bytes(ckpt.encode(ckpt.Checkpoint(point.segment, 1 << 40, point.next_offset, -1, -1)))
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.corruption is None
        assert log.recovery.truncated_bytes == 0
        assert log.recovery.scanned_bytes == sum(p.stat().st_size for p in directory.glob("*.log"))
        assert log.end_offset == image.end_offset
        assert_serves(log, image.batches)
        assert_finds_by_time(log)
    with PartitionLog(str(directory), CONFIG) as log:
        assert log.recovery.scanned_bytes == 0
        assert_serves(log, image.batches)
