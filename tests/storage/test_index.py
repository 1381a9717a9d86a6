"""``SparseIndex``: floor lookups, truncation, flushing, and loading files it cannot trust."""

import struct

import pytest

from tidings.storage import OsFileSystem
from tidings.storage.index import OFFSET_ENTRY, TIME_ENTRY, IndexCorrupted, SparseIndex


@pytest.fixture
def fs():
    return OsFileSystem()


def offsets_index(fs, tmp_path, name="0.index"):
    return SparseIndex.offsets(fs.open(str(tmp_path / name)))


def filled(fs, tmp_path, pairs):
    index = offsets_index(fs, tmp_path)
    for key, value in pairs:
        index.append(key, value)
    return index


def test_floor(fs, tmp_path):
    index = filled(fs, tmp_path, [(10, 100), (20, 200), (30, 300)])
    assert [index.floor(key) for key in (0, 9, 10, 11, 19, 20, 29, 30, 10**9)] == [
        -1,
        -1,
        0,
        0,
        0,
        1,
        1,
        2,
        2,
    ]
    empty = offsets_index(fs, tmp_path, "empty.index")
    assert empty.floor(5) == -1


def test_append_ignores_entries_that_do_not_increase(fs, tmp_path):
    index = filled(fs, tmp_path, [(10, 100), (10, 200), (20, 100), (5, 50), (20, 300)])
    assert list(index.keys) == [10, 20] and list(index.values) == [100, 300]


def test_truncate_values_drops_the_suffix_at_or_past_the_limit(fs, tmp_path):
    index = filled(fs, tmp_path, [(1, 100), (2, 200), (3, 300), (4, 400)])
    index.truncate_values(301)
    assert list(index.values) == [100, 200, 300]
    index.truncate_values(300)
    assert list(index.values) == [100, 200]
    index.truncate_values(10_000)
    assert list(index.keys) == [1, 2]
    index.truncate_values(0)
    assert len(index) == 0


def test_flush_writes_only_new_entries_and_truncate_cuts_the_file(fs, tmp_path):
    index = filled(fs, tmp_path, [(1, 100), (2, 200)])
    path = tmp_path / "0.index"
    assert path.read_bytes() == b""  # entries reach the file only on flush
    index.flush()
    assert path.read_bytes() == OFFSET_ENTRY.pack(1, 100) + OFFSET_ENTRY.pack(2, 200)
    index.append(3, 300)
    index.flush()
    assert len(path.read_bytes()) == 3 * OFFSET_ENTRY.size
    index.truncate(1)
    assert path.read_bytes() == OFFSET_ENTRY.pack(1, 100)
    index.append(5, 500)
    index.flush()
    assert path.read_bytes() == OFFSET_ENTRY.pack(1, 100) + OFFSET_ENTRY.pack(5, 500)
    index.clear()
    assert path.read_bytes() == b"" and len(index) == 0


def test_load_reads_back_what_flush_wrote(fs, tmp_path):
    index = filled(fs, tmp_path, [(1, 100), (2, 200), (7, 900)])
    index.flush()
    index.close()
    again = offsets_index(fs, tmp_path)
    again.load()
    assert list(again.keys) == [1, 2, 7] and list(again.values) == [100, 200, 900]
    # loaded entries count as flushed: truncating below them cuts the file
    again.truncate(1)
    assert (tmp_path / "0.index").read_bytes() == OFFSET_ENTRY.pack(1, 100)


def test_time_index_round_trip(fs, tmp_path):
    index = SparseIndex.times(fs.open(str(tmp_path / "0.timeindex")))
    index.append(1_700_000_000_000, 0)
    index.append(1_700_000_000_500, 9)
    index.flush()
    assert (tmp_path / "0.timeindex").read_bytes() == TIME_ENTRY.pack(1_700_000_000_000, 0) + TIME_ENTRY.pack(
        1_700_000_000_500, 9
    )
    again = SparseIndex.times(fs.open(str(tmp_path / "0.timeindex")))
    again.load()
    assert again.floor(1_700_000_000_499) == 0


def test_load_rejects_a_short_file(fs, tmp_path):
    (tmp_path / "0.index").write_bytes(OFFSET_ENTRY.pack(1, 100) + b"\x00\x01\x02")
    with pytest.raises(IndexCorrupted, match="size 11 is not a multiple of 8"):
        offsets_index(fs, tmp_path).load()


@pytest.mark.parametrize(
    "pairs",
    [
        [(2, 200), (1, 300)],  # key goes back
        [(1, 200), (2, 100)],  # value goes back
        [(1, 100), (1, 200)],  # repeated key
        [(1, 100), (2, 100)],  # repeated value
    ],
)
def test_load_rejects_out_of_order_entries(fs, tmp_path, pairs):
    (tmp_path / "0.index").write_bytes(b"".join(OFFSET_ENTRY.pack(*pair) for pair in pairs))
    with pytest.raises(IndexCorrupted, match="entry 1 is out of order"):
        offsets_index(fs, tmp_path).load()


def test_load_rejects_out_of_order_time_entries(fs, tmp_path):
    data = struct.pack("<qI", 500, 1) + struct.pack("<qI", 400, 2)
    (tmp_path / "0.timeindex").write_bytes(data)
    with pytest.raises(IndexCorrupted, match="out of order"):
        SparseIndex.times(fs.open(str(tmp_path / "0.timeindex"))).load()
