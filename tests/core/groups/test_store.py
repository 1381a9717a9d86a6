"""FileGroupStore: the snapshot layout, atomic replacement, and refusing damaged files."""

import os
import struct

import pytest

from tidings.core.groups import FileGroupStore
from tidings.core.groups.store import decode, encode
from tidings.core.ports import PartitionProgress
from tidings.errors import GroupStoreCorrupted, StorageError
from tidings.protocol.ranges import OffsetRange
from tidings.records import crc32c
from tidings.storage.faults import FaultyFileSystem

PROGRESS = {
    ("billing", "orders", 0): PartitionProgress(committed=42),
    ("billing", "orders", 1): PartitionProgress(
        committed=7, settled_above=(OffsetRange(first=9, last=12), OffsetRange(first=20, last=20))
    ),
    ("shipping", "orders.eu", 3): PartitionProgress(committed=2**62),
}


def test_layout():
    data = encode(PROGRESS)
    assert data[:4] == b"TDGP"
    assert struct.unpack_from("<H", data, 4) == (1,)
    (length,) = struct.unpack_from("<Q", data, 6)
    assert len(data) == 14 + length + 4
    assert struct.unpack_from("<I", data, 14 + length) == (crc32c(data[: 14 + length]),)
    assert decode(data) == PROGRESS
    assert encode(dict(reversed(list(PROGRESS.items())))) == data  # sorted: equal progress, equal bytes


def test_missing_file_loads_empty(tmp_path):
    assert FileGroupStore(tmp_path / "nothing").load() == {}


def test_save_merges_and_survives_reopen(tmp_path):
    path = tmp_path / "state" / "groups"
    store = FileGroupStore(path)
    store.save(PROGRESS)
    store.save({("billing", "orders", 0): PartitionProgress(committed=50)})
    again = FileGroupStore(path)
    loaded = again.load()
    assert loaded[("billing", "orders", 0)] == PartitionProgress(committed=50)
    assert loaded[("billing", "orders", 1)] == PROGRESS[("billing", "orders", 1)]
    again.delete([("shipping", "orders.eu", 3)])
    assert ("shipping", "orders.eu", 3) not in FileGroupStore(path).load()
    assert not os.path.exists(str(path) + ".tmp")


def test_save_before_load_keeps_what_the_file_had(tmp_path):
    path = tmp_path / "groups"
    FileGroupStore(path).save(PROGRESS)
    FileGroupStore(path).save({("new", "t", 0): PartitionProgress(committed=1)})
    assert len(FileGroupStore(path).load()) == len(PROGRESS) + 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d[:10],
        lambda d: b"XXXX" + d[4:],
        lambda d: d[:4] + struct.pack("<H", 9) + d[6:],
        lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:],
        lambda d: d + b"\0",
        lambda d: b"",
    ],
    ids=["short", "magic", "version", "flipped-bit", "trailing", "empty"],
)
def test_damaged_file_is_refused_not_reset(tmp_path, damage):
    path = tmp_path / "groups"
    FileGroupStore(path).save(PROGRESS)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(GroupStoreCorrupted) as raised:
        FileGroupStore(path).load()
    assert str(path) in str(raised.value)
    assert raised.value.code == "group_store_corrupted"
    assert isinstance(raised.value, StorageError)


def test_undecodable_body_with_a_good_crc_is_refused():
    body = b"\xc1"  # a msgpack byte that means nothing
    head = b"TDGP" + struct.pack("<HQ", 1, len(body)) + body
    with pytest.raises(GroupStoreCorrupted, match="undecodable"):
        decode(head + struct.pack("<I", crc32c(head)))


def test_a_failed_save_leaves_the_previous_snapshot(tmp_path):
    path = tmp_path / "groups"
    fs = FaultyFileSystem()
    store = FileGroupStore(path, fs=fs)
    store.save(PROGRESS)
    fs.fail_syncs(suffix=".tmp")
    with pytest.raises(StorageError, match="cannot save group progress"):
        store.save({("billing", "orders", 0): PartitionProgress(committed=99)})
    assert FileGroupStore(path).load() == PROGRESS
    store.save({("billing", "orders", 0): PartitionProgress(committed=99)})  # works once the disk heals
    assert FileGroupStore(path).load()[("billing", "orders", 0)].committed == 99


def test_leftover_temporary_file_is_ignored(tmp_path):
    path = tmp_path / "groups"
    FileGroupStore(path).save(PROGRESS)
    (tmp_path / "groups.tmp").write_bytes(b"half a snapshot")
    assert FileGroupStore(path).load() == PROGRESS
