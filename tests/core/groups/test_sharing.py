"""Who gets what: fan-out across groups, sharing inside one, modes, patterns, credits."""

import pytest

from tidings.core.groups import MemberInfo
from tidings.errors import GroupModeConflict, SubscriptionExists, UnknownGroup, UnknownSubscription
from tidings.protocol.values import Earliest, GroupMode

from .helpers import Harness, by_session, messages, offsets_for


def test_every_group_gets_every_event():
    h = Harness()
    h.topic("orders", 3)
    h.subscribe("a", "orders", "billing")
    h.subscribe("b", "orders", "shipping")
    for p in range(3):
        h.produce("orders", p, 4)
    got = by_session(h.take())
    expected = sorted(("orders", p, o) for p in range(3) for o in range(4))
    assert sorted(got["a"]) == expected
    assert sorted(got["b"]) == expected


def test_competing_members_each_message_to_exactly_one():
    h = Harness()
    h.topic("orders", 4)
    for session in ("a", "b", "c"):
        h.subscribe(session, "orders", "g")
    for p in range(4):
        h.produce("orders", p, 5)
    got = by_session(h.take())
    everything = [m for ms in got.values() for m in ms]
    assert sorted(everything) == sorted(("orders", p, o) for p in range(4) for o in range(5))
    assert len(everything) == len(set(everything))
    assert len(got) == 3  # every member has work
    owners = {p: {s for s, ms in got.items() if any(m[1] == p for m in ms)} for p in range(4)}
    assert all(len(o) == 1 for o in owners.values())  # a partition goes to one member


def test_partition_order_holds_for_its_owner():
    h = Harness()
    h.topic("t", 2)
    h.subscribe("a", "t", "g", credits=7)
    for _ in range(5):
        h.produce("t", 0, 3, per_batch=2)
        h.produce("t", 1, 2)
    seen: dict[int, list[int]] = {0: [], 1: []}
    for _ in range(10):
        for _, _, partition, offset, _ in messages(h.take()):
            seen[partition].append(offset)
        for p in (0, 1):
            h.ack("a", "t", p, seen[p])
        h.engine.credit("a", 1, 7)
    assert seen == {0: list(range(15)), 1: list(range(10))}


def test_shared_mode_spreads_work_without_order():
    h = Harness()
    h.topic("jobs")
    for session in ("a", "b", "c"):
        h.subscribe(session, "jobs", "workers", mode=GroupMode.SHARED, credits=4)
    h.produce("jobs", 0, 12, per_batch=3)
    got = by_session(h.take())
    assert {s: len(ms) for s, ms in got.items()} == {"a": 4, "b": 4, "c": 4}
    everything = sorted(m for ms in got.values() for m in ms)
    assert everything == [("jobs", 0, o) for o in range(12)]
    assert h.engine.describe_group("workers").members[0].assigned == ()


def test_mode_is_fixed_by_the_first_subscription():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", mode=GroupMode.SHARED)
    with pytest.raises(GroupModeConflict) as raised:
        h.subscribe("b", "t", "g", mode=GroupMode.PARTITIONED)
    assert raised.value.code == "group_mode_conflict"
    h.engine.disconnect("a")
    h.subscribe("b", "t", "g", mode=GroupMode.PARTITIONED)  # an empty group takes a new mode


def test_duplicate_and_unknown_subscriptions():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g")
    with pytest.raises(SubscriptionExists):
        h.subscribe("a", "t", "other")
    with pytest.raises(UnknownSubscription) as raised:
        h.engine.unsubscribe("a", 99)
    assert raised.value.code == "unknown_subscription"
    h.engine.credit("a", 99, 5)  # ignored: it may have ended on our side
    h.ack("a", "t", 0, [0], sid=99)
    with pytest.raises(UnknownGroup):
        h.engine.describe_group("nope")


def test_credits_bound_in_flight_and_credit_resumes():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", credits=3)
    h.produce("t", 0, 10)
    assert offsets_for(h.take()) == [0, 1, 2]
    h.ack("a", "t", 0, [0, 1, 2])
    assert h.take() == []  # acks do not give credit back: the client does
    h.produce("t", 0, 1)
    assert h.take() == []
    h.engine.credit("a", 1, 5)
    assert offsets_for(h.take()) == [3, 4, 5, 6, 7]
    assert h.engine.describe_group("g").partitions[0].in_flight == 5


def test_pattern_subscription_picks_up_topics_created_later():
    h = Harness()
    h.topic("orders.eu")
    h.topic("payments")
    h.subscribe("a", "orders.*", "g", start=Earliest())
    h.subscribe("b", "orders.>", "deep")
    h.produce("orders.eu", 0, 2)
    h.produce("payments", 0, 2)
    assert {(m[0], m[1]) for m in messages(h.take())} == {("a", "orders.eu"), ("b", "orders.eu")}
    h.source.create_topic("orders.us")
    h.source.append("orders.us", 0, [b"early"])  # appended before the server tells the engine
    h.engine.topic_created("orders.us")
    h.topic("orders.us.west")
    h.produce("orders.us.west", 0, 1)
    got = messages(h.take())
    assert ("a", "orders.us", 0, 0, 1) in got  # a new topic is read from its start
    assert ("b", "orders.us", 0, 0, 1) in got
    assert ("b", "orders.us.west", 0, 0, 1) in got
    assert not any(m[0] == "a" and m[1] == "orders.us.west" for m in got)
    assert h.engine.subscribers("orders.us.west") == [("b", 1)]
    assert h.engine.subscribers("orders.us") == [("a", 1), ("b", 1)]


def test_subscribing_before_the_topic_exists_waits_for_it():
    h = Harness()
    h.subscribe("a", "later", "g")
    assert h.take() == []
    h.topic("later")
    h.produce("later", 0, 2)
    assert offsets_for(h.take()) == [0, 1]


def test_topic_deleted_ends_exact_subscriptions_only():
    h = Harness()
    h.topic("orders.eu")
    h.subscribe("a", "orders.eu", "g1")
    h.subscribe("b", "orders.*", "g2")
    h.produce("orders.eu", 0, 3)
    h.take()
    ended = h.engine.topic_deleted("orders.eu")
    h.source.delete_topic("orders.eu")
    assert ended == [("a", 1)]
    assert h.engine.subscribers("orders.x") == [("b", 1)]
    assert ("g1", "orders.eu", 0) in h.engine.take_progress_deletions()
    assert h.engine.take_progress_changes() == {}
    assert h.engine.next_wakeup() is None  # the deleted topic's deadlines are gone too
    with pytest.raises(UnknownGroup):
        h.engine.describe_group("g1")
    h.engine.ack("a", 1, [])  # late acks of an ended subscription are ignored


def test_list_and_describe():
    h = Harness()
    h.topic("t", 2)
    h.topic("u")
    h.subscribe("a", "t", "g")
    h.subscribe("b", "u", "h", mode=GroupMode.SHARED)
    h.produce("t", 0, 3)
    h.produce("t", 1, 2)
    h.take()
    h.ack("a", "t", 0, [0])
    listed = h.engine.list_groups()
    assert [(s.group, s.topics, s.members, s.lag) for s in listed.groups] == [
        ("g", ("t",), 1, 4),
        ("h", ("u",), 1, 0),
    ]
    assert [s.group for s in h.engine.list_groups("u").groups] == ["h"]
    described = h.engine.describe_group("g")
    [member] = described.members
    assert member.member_id == "a/1" and member.client_id == "client-a" and member.service == "svc"
    assert [(tp.topic, tp.partition) for tp in member.assigned] == [("t", 0), ("t", 1)]
    assert [(p.partition, p.committed, p.end_offset, p.lag, p.in_flight) for p in described.partitions] == [
        (0, 1, 3, 2, 2),
        (1, 0, 2, 2, 2),
    ]


def test_subscription_settings_are_checked():
    h = Harness()
    with pytest.raises(ValueError, match="credits"):
        h.engine.subscribe(
            MemberInfo("a", "c", "s"),
            1,
            "t",
            "g",
            mode=GroupMode.SHARED,
            start=Earliest(),
            credits=-1,
            ack_deadline_ms=1,
            max_deliveries=None,
        )


def test_a_pattern_never_takes_its_own_groups_dead_letters():
    h = Harness()
    h.topic("orders.eu")
    h.subscribe("a", "orders.>", "g", max_deliveries=1)
    h.subscribe("b", "orders.>", "audit")
    h.produce("orders.eu", 0, 1)
    h.take()
    h.nack("a", "orders.eu", 0, [0])  # dead-lettered to orders.eu.dlq.g
    h.engine.topic_created("orders.eu.dlq.g")
    h.engine.records_available("orders.eu.dlq.g", 0)
    got = messages(h.take())
    assert [(m[0], m[1]) for m in got] == [("b", "orders.eu.dlq.g")]  # another group sees it
    assert h.engine.subscribers("orders.eu.dlq.g") == [("b", 1)]
    h.subscribe("c", "orders.eu.dlq.g", "g2")  # by name, it can be read
    assert offsets_for(h.take(), "c") == [0]


def test_topic_deleted_and_created_again_starts_over():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g")
    h.subscribe("b", ">", "wild")
    h.produce("t", 0, 3)
    h.take()
    h.ack("a", "t", 0, [0, 1, 2])
    h.engine.take_progress_changes()
    h.engine.topic_deleted("t")
    h.source.delete_topic("t")
    h.topic("t")  # the pattern subscription picks the new topic up from its start
    h.produce("t", 0, 1)
    assert messages(h.take()) == [("b", "t", 0, 0, 1)]
    # g's subscription ended with the topic; wild's old progress is replaced by the new one
    assert h.engine.take_progress_deletions() == [("g", "t", 0)]
    assert h.engine.take_progress_changes()[("wild", "t", 0)].committed == 0


def test_responders_follow_the_roster_as_it_changes():
    """Asked per request and remembered: every subscribe, unsubscribe, disconnect and end shows at once."""
    h = Harness()
    h.topic("pay")
    assert h.engine.responders("pay") == []
    h.subscribe("b", "pay", "g1")
    h.subscribe("a", "pay", "g2")
    h.subscribe("a", "p*", "g3", sid=2)  # the same session twice: one responder
    h.subscribe("c", "pay", "g4", requests=False)  # consumes events only
    assert h.engine.responders("pay") == ["a", "b"]
    assert h.engine.responders("other") == []
    h.engine.unsubscribe("b", 1)
    assert h.engine.responders("pay") == ["a"]
    h.subscribe("d", "pay", "g1")
    assert h.engine.responders("pay") == ["a", "d"]
    h.engine.disconnect("a")
    assert h.engine.responders("pay") == ["d"]
    h.engine.topic_deleted("pay")
    assert h.engine.responders("pay") == []
