"""Where a group starts, how its progress is kept, and what survives a restart."""

import pytest

from tidings.core.groups import FileGroupStore
from tidings.core.ports import PartitionProgress
from tidings.errors import UnknownGroup, UnknownTopic
from tidings.protocol.ranges import OffsetRange
from tidings.protocol.values import AtOffset, AtTime, Earliest, GroupMode, Latest

from .helpers import Harness, messages, offsets_for


def backlog() -> Harness:
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 5)  # offsets 0..4 at the epoch
    h.clock.advance(1_000)
    h.produce("t", 0, 5)  # offsets 5..9 a second later
    return h


@pytest.mark.parametrize(
    ("start", "first"),
    [(Earliest(), 0), (Latest(), 10), (AtOffset(offset=7), 7), (AtOffset(offset=99), 10)],
)
def test_start_positions_for_a_new_group(start, first):
    h = backlog()
    h.subscribe("a", "t", "g", start=start)
    h.produce("t", 0, 1)
    assert offsets_for(h.take()) == list(range(first, 11))


def test_start_at_time():
    h = backlog()
    h.subscribe("a", "t", "g", start=AtTime(time=h.clock.now))
    assert offsets_for(h.take()) == list(range(5, 10))


def test_start_offset_is_clamped_to_what_retention_kept():
    h = backlog()
    h.source.drop_before("t", 0, 3)
    h.subscribe("a", "t", "g", start=AtOffset(offset=1))
    assert offsets_for(h.take()) == list(range(3, 10))


def test_latest_is_saved_at_once():
    h = backlog()
    h.subscribe("a", "t", "g", start=Latest())
    assert h.engine.take_progress_changes() == {("g", "t", 0): PartitionProgress(committed=10)}


def test_existing_progress_wins_over_start():
    h = backlog()
    h.subscribe("a", "t", "g", start=Earliest(), credits=4)
    h.take()
    h.ack("a", "t", 0, [0, 1, 2])
    h.engine.disconnect("a")
    h.subscribe("b", "t", "g", start=Latest())
    assert offsets_for(h.take()) == list(range(3, 10))
    h.restart({("g", "t", 0): PartitionProgress(committed=6)})
    h.subscribe("c", "t", "g", start=Earliest())
    assert offsets_for(h.take()) == [6, 7, 8, 9]


def test_floor_advances_as_acks_fill_gaps():
    h = backlog()
    h.subscribe("a", "t", "g")
    h.take()
    h.ack("a", "t", 0, [1, 2, 5])
    assert h.engine.take_progress_changes()[("g", "t", 0)] == PartitionProgress(
        committed=0, settled_above=(OffsetRange(first=1, last=2), OffsetRange(first=5, last=5))
    )
    h.ack("a", "t", 0, [0])
    assert h.engine.take_progress_changes()[("g", "t", 0)] == PartitionProgress(
        committed=3, settled_above=(OffsetRange(first=5, last=5),)
    )
    h.ack("a", "t", 0, [3, 4])
    assert h.engine.take_progress_changes()[("g", "t", 0)] == PartitionProgress(committed=6)
    assert h.engine.take_progress_changes() == {}


def test_restart_through_the_store_redelivers_nothing_settled(tmp_path):
    h = backlog()
    h.subscribe("a", "t", "g")
    h.subscribe("x", "t", "other", mode=GroupMode.SHARED)
    h.take()
    h.ack("a", "t", 0, [0, 1, 2, 4, 6, 7])
    h.ack("x", "t", 0, range(10))
    store = FileGroupStore(tmp_path / "groups" / "progress")
    store.save(h.engine.take_progress_changes())
    # the broker restarts: a new engine from what the store kept
    loaded = FileGroupStore(tmp_path / "groups" / "progress").load()
    engine = h.restart(dict(loaded))
    assert engine.list_groups().groups[0].group == "g"  # known before anyone subscribes
    h.subscribe("b", "t", "g")
    h.subscribe("y", "t", "other", mode=GroupMode.SHARED)
    assert offsets_for(h.take()) == [3, 5, 8, 9]
    assert engine.take_progress_changes() == {}  # loaded progress is not saved again


def test_settled_above_persists_and_merges_on_restart():
    progress = {
        ("g", "t", 0): PartitionProgress(
            committed=2, settled_above=(OffsetRange(first=3, last=4), OffsetRange(first=7, last=7))
        )
    }
    h = backlog()
    h.restart(progress)
    h.subscribe("a", "t", "g")
    assert offsets_for(h.take()) == [2, 5, 6, 8, 9]
    h.ack("a", "t", 0, [2])
    assert h.engine.take_progress_changes()[("g", "t", 0)] == PartitionProgress(
        committed=5, settled_above=(OffsetRange(first=7, last=7),)
    )


def test_reset_group_replays_history_and_forgets_in_flight():
    h = backlog()
    h.subscribe("a", "t", "g")
    h.take()
    h.ack("a", "t", 0, range(8))
    reset = h.engine.reset_group("g", "t", Earliest())
    assert [(p.partition, p.offset) for p in reset.offsets] == [(0, 0)]
    assert h.engine.take_progress_changes()[("g", "t", 0)] == PartitionProgress(committed=0)
    assert messages(h.take()) == [("a", "t", 0, o, 1) for o in range(10)]
    h.ack("a", "t", 0, range(10))
    h.engine.reset_group("g", "t", AtOffset(offset=8))
    assert offsets_for(h.take()) == [8, 9]
    h.engine.reset_group("g", "t", Latest())
    assert h.take() == []
    assert h.engine.describe_group("g").partitions[0].committed == 10
    assert h.engine.next_wakeup() is None  # the forgotten deliveries' deadlines went with them


def test_reset_group_errors():
    h = backlog()
    with pytest.raises(UnknownGroup) as raised:
        h.engine.reset_group("nobody", "t", Earliest())
    assert raised.value.code == "unknown_group"
    h.subscribe("a", "t", "g")
    with pytest.raises(UnknownTopic):
        h.engine.reset_group("g", "missing", Earliest())


def test_reset_group_by_time_on_an_idle_group():
    h = backlog()
    h.subscribe("a", "t", "g", start=Latest())
    h.engine.disconnect("a")
    h.engine.reset_group("g", "t", AtTime(time=h.clock.now))
    h.subscribe("a", "t", "g")
    assert offsets_for(h.take()) == list(range(5, 10))


def test_messages_deleted_by_retention_are_skipped_and_counted():
    h = backlog()
    h.subscribe("a", "t", "g", credits=2, ack_deadline_ms=100)
    assert offsets_for(h.take()) == [0, 1]
    h.nack("a", "t", 0, [0], delay_ms=50)
    h.source.drop_before("t", 0, 5)
    h.tick(50)
    h.engine.credit("a", 1, 3)
    assert offsets_for(h.take()) == [5, 6, 7]  # 0 (waiting) and 2..4 (unread) are gone
    h.ack("a", "t", 0, [1, 5, 6, 7])
    assert h.engine.describe_group("g").partitions[0].committed == 8
    assert h.engine.group_stats("g").lost == 4


def test_growing_topic_is_joined():
    h = Harness()
    h.topic("t", 1)
    h.subscribe("a", "t", "g")
    h.source._topics["t"].append(type(h.source._topics["t"][0])())  # the topic gains a partition
    h.produce("t", 1, 2)
    assert messages(h.take()) == [("a", "t", 1, 0, 1), ("a", "t", 1, 1, 1)]


def test_records_on_a_topic_nobody_consumes_cost_nothing():
    h = Harness()
    h.topic("t")
    h.produce("t", 0, 3)
    assert h.take() == [] and h.source.reads == 0
