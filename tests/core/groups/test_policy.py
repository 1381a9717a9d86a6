"""The pure decisions: partition assignment, start positions, redelivery or dead letter."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.core.groups.policy import (
    DeadLetter,
    Redeliver,
    assign_partitions,
    lag,
    next_redelivery,
    resolve_start,
)
from tidings.protocol.values import AtOffset, AtTime, Earliest, Latest

A, B, C = ("s1", 1), ("s2", 1), ("s3", 1)


def parts(topic: str, n: int) -> list[tuple[str, int]]:
    return [(topic, p) for p in range(n)]


def test_round_robin_when_everyone_takes_everything():
    members = {A: {"t"}, B: {"t"}, C: {"t"}}
    result = assign_partitions(members, parts("t", 7))
    assert result == {
        ("t", 0): A,
        ("t", 1): B,
        ("t", 2): C,
        ("t", 3): A,
        ("t", 4): B,
        ("t", 5): C,
        ("t", 6): A,
    }


def test_members_only_get_topics_they_subscribe_to():
    members = {A: {"a"}, B: {"a", "b"}}
    result = assign_partitions(members, parts("a", 2) + parts("b", 2) + parts("c", 1))
    assert all(owner == B for (topic, _), owner in result.items() if topic == "b")
    assert ("c", 0) not in result
    assert set(result) == set(parts("a", 2) + parts("b", 2))


def test_sticky_keeps_owners_and_moves_only_what_balance_needs():
    before = assign_partitions({A: {"t"}, B: {"t"}}, parts("t", 6))
    after = assign_partitions({A: {"t"}, B: {"t"}, C: {"t"}}, parts("t", 6), before)
    moved = [key for key in before if before[key] != after[key]]
    assert len(moved) == 2
    assert all(after[key] == C for key in moved)
    # and a member leaving hands only its own partitions over
    later = assign_partitions({A: {"t"}, C: {"t"}}, parts("t", 6), after)
    assert all(later[key] == after[key] for key in after if after[key] != B)


def test_no_members_or_partitions():
    assert assign_partitions({}, parts("t", 3)) == {}
    assert assign_partitions({A: {"t"}}, []) == {}


@given(
    st.integers(1, 6),
    st.integers(0, 20),
    st.lists(st.integers(0, 5), max_size=20),
)
def test_assignment_is_balanced_deterministic_and_order_free(member_count, partitions, previous_owners):
    members = {(f"s{i}", 1): {"t"} for i in range(member_count)}
    keys = parts("t", partitions)
    previous = {
        key: (f"s{owner}", 1)
        for key, owner in zip(keys, previous_owners, strict=False)
        if owner < member_count
    }
    result = assign_partitions(members, keys, previous)
    assert set(result) == set(keys)
    loads = [sum(1 for owner in result.values() if owner == m) for m in members]
    assert max(loads) - min(loads) <= 1
    reordered = dict(reversed(list(members.items())))
    assert assign_partitions(reordered, list(reversed(keys)), previous) == result


def test_resolve_start():
    def find(ms: int) -> int:
        return {100: 7}.get(ms, 50)

    assert resolve_start(Earliest(), 10, 50, find) == 10
    assert resolve_start(Latest(), 10, 50, find) == 50
    assert resolve_start(AtOffset(offset=20), 10, 50, find) == 20
    assert resolve_start(AtOffset(offset=2), 10, 50, find) == 10  # clamped to what is retained
    assert resolve_start(AtOffset(offset=99), 10, 50, find) == 50
    assert resolve_start(AtTime(time=100), 5, 50, find) == 7
    assert resolve_start(AtTime(time=100), 10, 50, find) == 10


@pytest.mark.parametrize(
    ("deliveries", "limit", "delay", "reason", "expected"),
    [
        (1, None, 0, None, Redeliver(1000)),
        (1, None, 250, "boom", Redeliver(1250)),
        (2, 3, 0, "boom", Redeliver(1000)),
        (3, 3, 0, "boom", DeadLetter("boom")),
        (3, 3, 0, None, DeadLetter("max deliveries exceeded")),
        (5, 3, 100, None, DeadLetter("max deliveries exceeded")),
        (1, 1, 0, None, DeadLetter("max deliveries exceeded")),
    ],
)
def test_next_redelivery(deliveries, limit, delay, reason, expected):
    decision = next_redelivery(
        deliveries=deliveries, max_deliveries=limit, now=1000, delay_ms=delay, reason=reason
    )
    assert decision == expected


def test_lag_is_never_negative():
    assert lag(10, 4) == 6
    assert lag(4, 10) == 0
