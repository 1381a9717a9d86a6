"""Held sessions: nothing is built for a consumer whose socket does not drain; a burst bound per take."""

from tidings.core.groups import GroupEngine
from tidings.protocol.values import GroupMode

from .helpers import Harness, offsets_for


def test_a_held_session_gets_nothing_until_released_and_then_all_it_may_take():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g")
    h.engine.hold("a")
    h.produce("t", 0, 5)
    assert h.take() == []  # the records stay in the log, not in frames nobody will read
    h.engine.release("a")
    assert offsets_for(h.take()) == [0, 1, 2, 3, 4]


def test_in_a_shared_group_the_others_take_what_a_held_member_cannot():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g", mode=GroupMode.SHARED)
    h.subscribe("b", "t", "g", mode=GroupMode.SHARED)
    h.engine.hold("a")
    h.produce("t", 0, 4)
    deliveries = h.take()
    assert offsets_for(deliveries, "a") == [] and offsets_for(deliveries, "b") == [0, 1, 2, 3]


def test_the_burst_bound_holds_a_session_for_the_server_to_release_on_a_later_turn():
    h = Harness()
    h.engine = GroupEngine(h.source, {}, clock=h.clock, max_delivery_bytes=1, burst_bytes=1)
    h.topic("t")
    h.produce("t", 0, 3)  # one batch per record: each delivery is one frame over the bound
    h.subscribe("a", "t", "g")
    first = h.take()
    assert offsets_for(first) == [0]
    assert h.engine.take_burst_held() == ["a"] and h.engine.take_burst_held() == []
    assert h.take() == []
    h.engine.release("a")
    assert offsets_for(h.take()) == [1]


def test_a_disconnect_forgets_the_hold():
    h = Harness()
    h.topic("t")
    h.subscribe("a", "t", "g")
    h.engine.hold("a")
    h.engine.disconnect("a")
    h.subscribe("a", "t", "g")  # the same session id again (as in a test's reused id)
    h.produce("t", 0, 1)
    assert offsets_for(h.take()) == [0]
