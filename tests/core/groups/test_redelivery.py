"""Messages that come back: nacks, deadlines, max deliveries, terms, stale acks, rebalances."""

from tidings.errors import DiskFullError
from tidings.protocol.values import GroupMode

from .helpers import Harness, by_session, messages, offsets_for


def one_member(credits: int = 100, **settings) -> Harness:
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", credits=credits, **settings)
    return h


def test_nack_with_delay_redelivers_after_the_delay_only():
    h = one_member()
    h.produce("t", 0, 3)
    h.take()
    h.nack("a", "t", 0, [1], delay_ms=5_000, reason="db down")
    assert h.take() == []
    assert h.engine.next_wakeup() == h.clock.now + 5_000
    h.tick(4_999)
    assert h.take() == []
    h.tick(1)
    assert messages(h.take()) == [("a", "t", 0, 1, 2)]
    assert h.engine.group_stats("g").nacked == 1


def test_nack_without_delay_redelivers_at_once():
    h = one_member()
    h.produce("t", 0, 2)
    h.take()
    h.nack("a", "t", 0, [0, 1])
    assert messages(h.take()) == [("a", "t", 0, 0, 2), ("a", "t", 0, 1, 2)]


def test_ack_deadline_redelivers_with_a_higher_count():
    h = one_member(ack_deadline_ms=1_000)
    h.produce("t", 0, 2)
    h.take()
    h.ack("a", "t", 0, [0])
    assert h.engine.next_wakeup() == h.clock.now + 1_000
    h.tick(999)
    assert h.take() == []
    h.tick(1)
    assert messages(h.take()) == [("a", "t", 0, 1, 2)]
    h.tick(1_000)
    assert messages(h.take()) == [("a", "t", 0, 1, 3)]
    assert h.engine.group_stats("g").expired == 2


def test_max_deliveries_dead_letters_with_the_last_error():
    h = one_member(max_deliveries=2)
    h.produce("t", 0, 2)
    h.take()
    h.nack("a", "t", 0, [0], reason="bad payload")
    assert messages(h.take()) == [("a", "t", 0, 0, 2)]
    h.nack("a", "t", 0, [0], reason="still bad")
    assert h.take() == []
    [call] = h.source.dead_letters
    assert (call.group, call.topic, call.partition, call.offset, call.deliveries, call.reason) == (
        "g",
        "t",
        0,
        0,
        2,
        "still bad",
    )
    [record] = h.source.records("t.dlq.g", 0)
    assert record.value == b"t/0/0"
    assert record.header("tidings-dlq-reason") == b"still bad"
    assert record.header("tidings-dlq-deliveries") == b"2"
    assert record.header("tidings-dlq-offset") == b"0"
    h.ack("a", "t", 0, [1])
    assert h.engine.take_progress_changes()[("g", "t", 0)].committed == 2  # dead-lettered counts as settled


def test_max_deliveries_through_deadlines():
    h = one_member(max_deliveries=2, ack_deadline_ms=100)
    h.produce("t", 0, 1)
    h.take()
    h.tick(100)
    assert messages(h.take()) == [("a", "t", 0, 0, 2)]
    h.tick(100)
    assert h.take() == []
    assert [(c.offset, c.deliveries, c.reason) for c in h.source.dead_letters] == [
        (0, 2, "max deliveries exceeded")
    ]
    assert h.engine.describe_group("g").partitions[0].committed == 1


def test_term_dead_letters_now():
    h = one_member()
    h.produce("t", 0, 3)
    h.take()
    h.term("a", "t", 0, [1], reason="unparseable")
    assert [(c.offset, c.deliveries, c.reason) for c in h.source.dead_letters] == [(1, 1, "unparseable")]
    h.ack("a", "t", 0, [0, 2])
    assert h.engine.describe_group("g").partitions[0].committed == 3
    assert h.engine.group_stats("g").dead_lettered == 1


def test_late_ack_does_not_settle_another_members_delivery():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", mode=GroupMode.SHARED, credits=1, ack_deadline_ms=100)
    h.produce("t", 0, 1)
    assert offsets_for(h.take(), "a") == [0]
    h.subscribe("b", "t", "g", mode=GroupMode.SHARED, credits=1, ack_deadline_ms=100)
    h.tick(100)  # a is too slow: the message goes to b
    assert messages(h.take()) == [("b", "t", 0, 0, 2)]
    h.ack("a", "t", 0, [0])  # a's late ack: stale
    assert h.engine.describe_group("g").partitions[0].in_flight == 1
    assert h.engine.group_stats("g").stale_acks == 1
    h.tick(100)  # so b's delivery still expires and comes back
    h.engine.credit("a", 1, 1)
    assert [m[3:] for m in messages(h.take())] == [(0, 3)]


def test_acks_for_settled_or_undelivered_messages_are_stale():
    h = one_member(credits=2)
    h.produce("t", 0, 5)
    h.take()
    h.ack("a", "t", 0, [0, 0 + 1])
    h.ack("a", "t", 0, [0, 1, 4])  # twice, and one never delivered
    assert h.engine.group_stats("g").stale_acks == 3
    assert h.engine.describe_group("g").partitions[0].committed == 2


def test_late_ack_of_a_message_waiting_for_redelivery_settles_it():
    h = one_member(credits=1, ack_deadline_ms=100)
    h.produce("t", 0, 1)
    h.take()
    h.tick(100)  # expired, back in the queue, but a has no credit to take it again
    h.ack("a", "t", 0, [0])
    assert h.engine.describe_group("g").partitions[0].committed == 1
    h.engine.credit("a", 1, 1)
    assert h.take() == []


def test_nack_from_a_non_holder_is_ignored():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", mode=GroupMode.SHARED, credits=1)
    h.subscribe("b", "t", "g", mode=GroupMode.SHARED, credits=1)
    h.produce("t", 0, 2)
    got = by_session(h.take())
    h.nack("b", "t", 0, [got["a"][0][2]])
    assert h.take() == []
    assert h.engine.group_stats("g").stale_acks == 1


def test_disconnect_hands_unacked_messages_to_another_member():
    h = Harness()
    h.topic("t", 2)
    h.subscribe("a", "t", "g")
    h.subscribe("b", "t", "g")
    h.produce("t", 0, 3)
    h.produce("t", 1, 3)
    got = by_session(h.take())
    assert sorted({p for _, p, _ in got["a"]}) == [0] and sorted({p for _, p, _ in got["b"]}) == [1]
    h.ack("b", "t", 1, [0])
    h.engine.disconnect("b")
    assert messages(h.take()) == [("a", "t", 1, 1, 2), ("a", "t", 1, 2, 2)]
    assert [(tp.partition) for tp in h.engine.describe_group("g").members[0].assigned] == [0, 1]


def test_join_hands_over_after_the_old_owner_settles():
    h = Harness()
    h.topic("t", 2)
    h.subscribe("a", "t", "g")
    h.produce("t", 0, 2)
    h.produce("t", 1, 2)
    h.take()
    h.subscribe("b", "t", "g")  # b takes one of a's partitions
    moved = next(tp.partition for tp in h.engine.describe_group("g").members[1].assigned)
    h.produce("t", moved, 2)
    assert h.take() == []  # b waits: a still holds messages of that partition
    h.ack("a", "t", moved, [0])
    assert h.take() == []
    h.ack("a", "t", moved, [1])
    assert messages(h.take()) == [("b", "t", moved, 2, 1), ("b", "t", moved, 3, 1)]


def test_join_handover_when_the_old_owners_deadline_passes():
    h = Harness()
    h.topic("t", 2)
    h.subscribe("a", "t", "g", ack_deadline_ms=1_000)
    h.produce("t", 0, 1)
    h.produce("t", 1, 1)
    h.take()
    h.subscribe("b", "t", "g")
    moved = next(tp.partition for tp in h.engine.describe_group("g").members[1].assigned)
    h.tick(1_000)
    got = messages(h.take())
    assert ("b", "t", moved, 0, 2) in got  # the new owner gets the expired message
    assert all(m[0] == "a" for m in got if m[2] != moved)


def test_unsubscribe_keeps_leases_until_acked_then_leaves():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g")
    h.subscribe("b", "t", "g")
    h.produce("t", 0, 2)
    owner = "a" if by_session(h.take()).get("a") else "b"
    other = "b" if owner == "a" else "a"
    h.engine.unsubscribe(owner, 1)
    h.produce("t", 0, 1)
    assert h.take() == []  # the new owner waits for the leaver's in-flight messages
    h.ack(owner, "t", 0, [0, 1])  # an unsubscribed member's acks still count
    assert messages(h.take()) == [(other, "t", 0, 2, 1)]
    assert [m.member_id for m in h.engine.describe_group("g").members] == [f"{other}/1"]
    assert h.engine.describe_group("g").partitions[0].committed == 2


def test_leaving_member_with_expired_leases_is_forgotten():
    h = one_member(ack_deadline_ms=100)
    h.produce("t", 0, 1)
    h.take()
    h.engine.unsubscribe("a", 1)
    h.tick(100)
    h.subscribe("a", "t", "g")  # same id again: allowed, the old one is gone
    assert messages(h.take()) == [("a", "t", 0, 0, 2)]


def test_resubscribing_a_leaving_id_releases_its_leases():
    h = one_member()
    h.produce("t", 0, 1)
    h.take()
    h.engine.unsubscribe("a", 1)
    h.subscribe("a", "t", "g")
    assert messages(h.take()) == [("a", "t", 0, 0, 2)]


def test_shared_disconnect_redelivers_to_others():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", mode=GroupMode.SHARED, credits=2)
    h.subscribe("b", "t", "g", mode=GroupMode.SHARED, credits=10)
    h.produce("t", 0, 4)
    got = by_session(h.take())
    held_by_a = [o for _, _, o in got["a"]]
    h.engine.disconnect("a")
    assert sorted(offsets_for(h.take(), "b")) == held_by_a


def test_disconnect_with_max_deliveries_reached_dead_letters():
    h = one_member(max_deliveries=1)
    h.produce("t", 0, 1)
    h.take()
    h.engine.disconnect("a")
    assert [(c.offset, c.reason) for c in h.source.dead_letters] == [(0, "max deliveries exceeded")]
    assert h.engine.take_progress_changes()[("g", "t", 0)].committed == 1


def test_failed_dead_letter_keeps_the_message():
    h = one_member(max_deliveries=1)
    h.produce("t", 0, 1)
    h.take()

    def broken(**_kwargs):
        raise DiskFullError("no space")

    h.source.dead_letter = broken  # type: ignore[method-assign]
    h.nack("a", "t", 0, [0])
    assert messages(h.take()) == [("a", "t", 0, 0, 2)]  # not lost: delivered again
