"""Processing delay in the group engine: event time (the batch's producer time) to ack, per group."""

from __future__ import annotations

from tests.core.groups.helpers import Harness


def test_delay_runs_from_event_time_to_ack_per_group():
    h = Harness()
    h.topic("orders")
    h.produce("orders", 0, 4, per_batch=2)  # event time = the clock now
    h.subscribe("a", "orders", "fast")
    h.subscribe("b", "orders", "slow")
    deliveries = h.take()
    assert {d.group for d in deliveries} == {"fast", "slow"}  # the flow map counts per group
    assert h.engine.processing_delay("fast") is None
    assert h.engine.oldest_pending("fast") == {("orders", 0): h.clock.now}

    h.clock.advance(20)
    h.ack("a", "orders", 0, [0, 1, 2, 3])
    h.clock.advance(980)
    h.ack("b", "orders", 0, [0, 1])
    fast, slow = h.engine.processing_delay("fast"), h.engine.processing_delay("slow")
    assert fast is not None and fast.count == 4 and fast.p50 == 20 and fast.p99 == 20
    assert slow is not None and slow.count == 2 and abs(slow.p50 - 1000) <= 30
    assert h.engine.oldest_pending("fast") == {}
    assert h.engine.oldest_pending("slow") == {("orders", 0): h.clock.now - 1000}


def test_stale_acks_and_terms_are_not_delays():
    h = Harness()
    h.topic("orders")
    h.produce("orders", 0, 2)
    h.subscribe("a", "orders", "g")
    h.take()
    h.term("a", "orders", 0, [0])
    h.ack("a", "orders", 0, [0, 5])  # 0 is settled already, 5 was never delivered
    assert h.engine.processing_delay("g") is None
    h.ack("a", "orders", 0, [1])
    delay = h.engine.processing_delay("g")
    assert delay is not None and delay.count == 1


def test_delays_leave_the_window():
    h = Harness()
    h.topic("orders")
    h.produce("orders", 0, 1)
    h.subscribe("a", "orders", "g")
    h.take()
    h.ack("a", "orders", 0, [0])
    assert h.engine.processing_delay("g") is not None
    h.clock.advance(120_000)
    assert h.engine.processing_delay("g") is None
