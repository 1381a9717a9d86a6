"""The engine's small data structures: RangeSet, TimerQueue and the state-machine tables."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.core.groups.membership import TRANSITIONS as MEMBER_TRANSITIONS
from tidings.core.groups.membership import SubscriptionEvent, SubscriptionState
from tidings.core.groups.partition import TRANSITIONS, IllegalTransition, MessageState, PartitionState
from tidings.core.groups.rangeset import RangeSet
from tidings.core.groups.timers import TimerQueue
from tidings.core.ports import PartitionProgress


def as_set(ranges: RangeSet) -> set[int]:
    return {o for first, last in ranges for o in range(first, last + 1)}


def test_add_merges_overlapping_and_adjacent():
    ranges = RangeSet()
    ranges.add(5, 7)
    ranges.add(10, 12)
    assert list(ranges) == [(5, 7), (10, 12)]
    ranges.add(8, 9)  # touches both
    assert list(ranges) == [(5, 12)]
    ranges.add(1, 3)
    ranges.add(0, 20)
    assert list(ranges) == [(0, 20)]
    assert ranges.count == 21


def test_take_from_and_discard_below():
    ranges = RangeSet([(3, 5), (8, 9)])
    assert ranges.take_from(2) == 2
    assert ranges.take_from(3) == 6
    assert list(ranges) == [(8, 9)]
    ranges.discard_below(9)
    assert list(ranges) == [(9, 9)]
    ranges.discard_below(100)
    assert not ranges


def test_gaps_skip_ranges_and_respect_limit():
    ranges = RangeSet([(3, 5), (8, 9)])
    assert ranges.gaps(0, 12, 100) == [(0, 2), (6, 7), (10, 12)]
    assert ranges.gaps(4, 9, 100) == [(6, 7)]
    assert ranges.gaps(0, 12, 4) == [(0, 2), (6, 6)]
    assert ranges.gaps(3, 5, 10) == []
    assert ranges.gaps(0, 12, 0) == []


@given(st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8))), st.integers(0, 70), st.integers(0, 30))
def test_rangeset_matches_a_set(adds, probe, limit):
    ranges = RangeSet()
    model: set[int] = set()
    for first, length in adds:
        ranges.add(first, first + length)
        model.update(range(first, first + length + 1))
    assert as_set(ranges) == model
    pairs = list(ranges)
    assert all(b[0] > a[1] + 1 for a, b in itertools.pairwise(pairs))  # canonical
    assert (probe in ranges) == (probe in model)
    gaps = ranges.gaps(probe, probe + 20, limit)
    expected = [o for o in range(probe, probe + 21) if o not in model][:limit]
    assert [o for a, b in gaps for o in range(a, b + 1)] == expected
    lowest = ranges.first
    floor = ranges.take_from(probe)  # the floor moves only when the lowest range starts right at it
    if probe == lowest:
        assert floor == next(o for o in range(probe, 200) if o not in model)
        assert probe not in ranges
    else:
        assert floor == probe


def test_timer_queue_fires_in_order_and_skips_cancelled():
    queue: TimerQueue[str] = TimerQueue()
    a = queue.add(30, "a")
    b = queue.add(10, "b")
    queue.add(20, "c")
    queue.cancel(b)
    assert queue.next_due() == 20
    assert queue.pop_due(25) == [(3, "c")]
    assert queue.pop_due(29) == []
    assert queue.pop_due(30) == [(a, "a")]
    assert queue.next_due() is None
    assert len(queue) == 0


def test_timer_queue_heap_stays_bounded_when_timers_are_cancelled():
    queue: TimerQueue[int] = TimerQueue()
    keep = queue.add(1_000_000, -1)
    for n in range(10_000):
        queue.cancel(queue.add(n, n))
    assert len(queue) == 1
    assert len(queue._heap) < 200
    assert queue.pop_due(2_000_000) == [(keep, -1)]


def test_message_state_machine_refuses_illegal_moves():
    state = PartitionState(
        "g", "t", 0, progress=PartitionProgress(committed=0), queue=TimerQueue(), changed={}
    )
    state.deliver(("s", 1), [], [0, 1], new_cursor=2, deadline=100)
    entry = state.entries[0]
    assert entry.state is MessageState.IN_FLIGHT
    state.give_back(entry, at=50, now=10)
    assert entry.state is MessageState.WAITING
    with pytest.raises(IllegalTransition):
        state.give_back(entry, at=0, now=10)  # a waiting message cannot come back again
    assert all(target is not MessageState.UNREAD for target in TRANSITIONS.values())


def test_subscription_state_machine():
    assert (
        MEMBER_TRANSITIONS[SubscriptionState.ACTIVE, SubscriptionEvent.UNSUBSCRIBE]
        is SubscriptionState.LEAVING
    )
    assert all(source is not SubscriptionState.GONE for source, _ in MEMBER_TRANSITIONS)


def _partition_state() -> PartitionState:
    return PartitionState(
        "g", "t", 0, progress=PartitionProgress(committed=0), queue=TimerQueue(), changed={}
    )


@given(
    deliveries=st.lists(st.integers(1, 8), min_size=1, max_size=6),
    nacked=st.sets(st.integers(0, 47)),
    acked=st.lists(st.integers(0, 50), max_size=60),
)
def test_settle_many_leaves_the_state_settle_one_by_one_leaves(deliveries, nacked, acked):
    """An ack's messages settled in one call: same floor, ranges, holders, timers and entries."""
    states = [_partition_state(), _partition_state()]
    for state in states:
        cursor = 0
        for number, count in enumerate(deliveries):  # several deliveries, two members, one timer each
            state.deliver(("s", number % 2), [], range(cursor, cursor + count), cursor + count, 1000 + number)
            cursor += count
        for offset in sorted(nacked):
            if offset in state.entries:
                state.give_back(state.entries[offset], at=500, now=10)  # WAITING, a timer of its own
    one_by_one, at_once = states
    for offset in acked:
        one_by_one.settle(offset)
    at_once.settle_many([at_once.entries[o] for o in dict.fromkeys(acked) if o in at_once.entries])
    assert at_once.progress() == one_by_one.progress()
    assert (at_once.floor, at_once.cursor, at_once.holders) == (
        one_by_one.floor,
        one_by_one.cursor,
        one_by_one.holders,
    )
    assert sorted(at_once.entries) == sorted(one_by_one.entries) and at_once.ready == one_by_one.ready
    assert {t: g.live for t, g in at_once._timers.items()} == {
        t: g.live for t, g in one_by_one._timers.items()
    }
