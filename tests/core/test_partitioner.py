"""Partition choice for a Produce that leaves it to the broker."""

from __future__ import annotations

import pytest

from tidings.core.partitioner import Partitioner, first_key
from tidings.errors import InvalidBatchError
from tidings.records import BatchBuilder, partition_for_key, read_header


def keyed(*keys):
    builder = BatchBuilder()
    for key in keys:
        builder.add(b"v", key=key, timestamp=1)
    return builder.build()


def test_first_key_reads_only_the_first_record():
    data = keyed(b"alpha", b"beta")
    assert first_key(data, read_header(data)) == b"alpha"
    data = keyed(None, b"beta")
    assert first_key(data, read_header(data)) is None
    data = keyed(b"")
    assert first_key(data, read_header(data)) == b""


def test_first_key_refuses_a_key_past_the_batch():
    data = bytearray(keyed(b"alpha"))
    data[64 + 12 : 64 + 16] = (10_000).to_bytes(4, "little")
    with pytest.raises(InvalidBatchError):
        first_key(bytes(data), read_header(bytes(data)))


def test_choices():
    partitioner = Partitioner()
    assert partitioner.choose("t", 6, b"order-1", None) == partition_for_key(b"order-1", 6)
    assert partitioner.choose("t", 6, b"order-1", 3) == partition_for_key(b"order-1", 6)  # a key wins
    assert [partitioner.choose("t", 3, None, None) for _ in range(4)] == [0, 1, 2, 0]
    assert [partitioner.choose("u", 3, None, None) for _ in range(2)] == [0, 1]  # per topic
    assert {partitioner.choose("t", 4, None, 10) for _ in range(5)} == {2}  # idempotent: fixed
