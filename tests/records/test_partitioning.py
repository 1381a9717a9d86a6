import pytest

from tidings.records import partition_for_key

# Pinned: if these change, every keyed topic's events move partition and lose their order.
PINNED = [2, 3, 1, 2, 1, 2, 0, 3]


def test_the_rule_never_changes():
    assert partition_for_key(b"order-1", 1) == 0
    assert partition_for_key(b"", 7) == 0
    assert [partition_for_key(b"order-%d" % i, 4) for i in range(8)] == PINNED
    assert partition_for_key(b"abc", 2**32) == 0xC486AC12  # fmix32(CRC32C("abc") = 0x364B3FB7)


def test_keys_that_differ_in_one_character_spread_evenly():
    counts = [0] * 4
    for i in range(4000):
        counts[partition_for_key(b"order-%d" % i, 4)] += 1
    assert min(counts) > 900, counts
    assert {partition_for_key(b"order-%d" % i, 4) for i in range(8)} == {0, 1, 2, 3}


def test_a_topic_has_at_least_one_partition():
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for_key(b"k", 0)
