"""Topic patterns and ack ranges: the two small languages inside frames."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.protocol import OffsetRange, PartitionRanges, coalesce, partition_ranges
from tidings.protocol.names import is_topic_name, is_topic_pattern, is_wildcard, topic_matches
from tidings.protocol.ranges import iter_offsets


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("orders", "orders", True),
        ("orders", "orders.eu", False),
        ("orders.*", "orders.eu", True),
        ("orders.*", "orders", False),
        ("orders.*", "orders.eu.paris", False),
        ("orders.>", "orders.eu", True),
        ("orders.>", "orders.eu.paris", True),
        ("orders.>", "orders", False),
        ("*.eu", "orders.eu", True),
        ("*.eu", "payments.us", False),
        ("*.*.paris", "orders.eu.paris", True),
        (">", "anything.at.all", True),
        ("*", "orders", True),
        ("*", "orders.eu", False),
    ],
)
def test_topic_matches(pattern, topic, matches):
    assert is_topic_pattern(pattern) and is_topic_name(topic)
    assert topic_matches(pattern, topic) is matches


@pytest.mark.parametrize("name", ["", "a..b", ".a", "a.", "a b", "a*", "ä", "a\n", "x" * 250, "a.>"])
def test_invalid_topic_names(name):
    assert not is_topic_name(name)


@pytest.mark.parametrize("pattern", ["", "a.>.b", ">.a", "a.**", "a.*b", "a..*", "a.>\n"])
def test_invalid_patterns(pattern):
    assert not is_topic_pattern(pattern)


def test_is_wildcard():
    assert is_wildcard("orders.*") and is_wildcard(">") and not is_wildcard("orders.eu")


def test_coalesce_examples():
    assert coalesce([]) == ()
    assert coalesce([5, 3, 4, 4, 9, 10, 1]) == (
        OffsetRange(first=1, last=1),
        OffsetRange(first=3, last=5),
        OffsetRange(first=9, last=10),
    )


@given(st.lists(st.integers(0, 2**63 - 1), max_size=200) | st.lists(st.integers(0, 300), max_size=200))
def test_coalesce_is_canonical_and_lossless(offsets):
    ranges = coalesce(offsets)
    assert list(iter_offsets(ranges)) == sorted(set(offsets))
    for before, after in itertools.pairwise(ranges):
        assert after.first > before.last + 1
    if ranges:
        group = PartitionRanges(topic="t", partition=0, ranges=ranges)  # accepted as canonical
        assert group.count == len(set(offsets))


def test_partition_ranges_groups_and_sorts():
    groups = partition_ranges([("b", 1, 7), ("a", 0, 2), ("b", 1, 6), ("a", 0, 4), ("a", 1, 0)])
    assert [(g.topic, g.partition, g.ranges) for g in groups] == [
        ("a", 0, (OffsetRange(first=2, last=2), OffsetRange(first=4, last=4))),
        ("a", 1, (OffsetRange(first=0, last=0),)),
        ("b", 1, (OffsetRange(first=6, last=7),)),
    ]
    assert list(groups[0].offsets()) == [2, 4]


@pytest.mark.parametrize(
    "ranges",
    [
        (),
        (OffsetRange(first=5, last=9), OffsetRange(first=1, last=2)),
        (OffsetRange(first=1, last=5), OffsetRange(first=6, last=9)),
        (OffsetRange(first=1, last=5), OffsetRange(first=3, last=9)),
    ],
)
def test_non_canonical_ranges_are_refused_at_construction(ranges):
    with pytest.raises(ValueError, match="offset ranges"):
        PartitionRanges(topic="t", partition=0, ranges=ranges)


def test_offset_range():
    r = OffsetRange(first=3, last=5)
    assert r.count == 3 and 4 in r and 6 not in r
    with pytest.raises(ValueError, match="last 2 < first 3"):
        OffsetRange(first=3, last=2)
