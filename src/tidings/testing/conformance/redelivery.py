"""Scenarios: ack deadlines, nack with delay, max deliveries, term, dead letters."""

from __future__ import annotations

import time

from tidings.backends.base import (
    DLQ_DELIVERIES,
    DLQ_GROUP,
    DLQ_OFFSET,
    DLQ_PARTITION,
    DLQ_REASON,
    DLQ_TOPIC,
    Backend,
    Delivery,
    Subscription,
    dead_letter_topic,
)
from tidings.testing.conformance.harness import Harness, check, scenario

DEADLINE = 0.3
DELAY = 0.4
EARLY = 0.05
"""Tolerance for "not before": timers have millisecond clocks and the first delivery takes a moment."""


async def _no_more_of(h: Harness, backend: Backend, subscription: Subscription, poison: Delivery) -> None:
    """The poison message is not delivered again: a marker published now is the next delivery."""
    marker = b"marker after " + poison.data
    await backend.publish(subscription.topic, marker, key=poison.key)
    delivery = await h.receive(subscription, what="the marker")
    check(
        delivery.data == marker,
        f"after it was settled for good, {poison!r} came back (delivery {delivery.delivery_count})",
    )
    await delivery.ack()


async def read_dead_letter(h: Harness, backend: Backend, topic: str, group: str) -> Delivery:
    reader = await h.subscribe(
        backend, dead_letter_topic(topic, group), group=h.name("dlq-reader"), start="earliest"
    )
    dead = await h.receive(reader, what=f"a dead letter on {dead_letter_topic(topic, group)}")
    await dead.ack()
    return dead


def _checkread_dead_letter(
    dead: Delivery, original: Delivery, group: str, deliveries: int, reason: str
) -> None:
    expected = {
        DLQ_TOPIC: original.topic,
        DLQ_PARTITION: str(original.partition),
        DLQ_OFFSET: str(original.offset),
        DLQ_GROUP: group,
        DLQ_DELIVERIES: str(deliveries),
        DLQ_REASON: reason,
    }
    got = {name: dead.headers.get(name, b"<missing>").decode() for name in expected}
    check(got == expected, f"dead-letter headers {got} != {expected}")
    check(
        dead.data == original.data and dead.key == original.key, f"dead letter {dead!r} is not {original!r}"
    )
    kept = {k: v for k, v in dead.headers.items() if not k.startswith("tidings-dlq-")}
    check(
        kept == dict(original.headers), f"the original headers are kept: {kept} != {dict(original.headers)}"
    )


@scenario("ack_deadline")
async def ack_deadline_redelivery(h: Harness) -> None:
    """A message left unsettled past the ack deadline is delivered again, delivery_count 2, not sooner."""
    backend = await h.backend()
    topic = await h.topic(backend, "deadline")
    subscription = await h.subscribe(backend, topic, group=h.name("g"), ack_deadline=DEADLINE)
    await backend.publish(topic, b"slow work", key="k")
    first = await h.receive(subscription)
    received_at = time.monotonic()
    again = await h.receive(subscription, what="the redelivery after the ack deadline")
    waited = time.monotonic() - received_at
    check(
        again.data == b"slow work" and (again.partition, again.offset) == (first.partition, first.offset),
        f"the same message comes back, not {again!r}",
    )
    check(again.delivery_count == 2, f"delivery_count {again.delivery_count}, expected 2")
    check(waited >= DEADLINE - EARLY * 2, f"redelivered {waited:.3f} s after delivery, deadline {DEADLINE}")
    await again.ack()
    await _no_more_of(h, backend, subscription, again)


@scenario("nack_delay")
async def nack_with_delay(h: Harness) -> None:
    """nack(delay) redelivers no sooner than the delay; a message published meanwhile is not held up."""
    backend = await h.backend()
    topic = await h.topic(backend, "retry")
    subscription = await h.subscribe(backend, topic, group=h.name("g"))
    await backend.publish(topic, b"flaky", key="k")
    first = await h.receive(subscription)
    nacked_at = time.monotonic()
    await first.nack(DELAY, reason="try later")
    await backend.publish(topic, b"next", key="k")
    passing = await h.receive(subscription, what="the next message, before the delayed one")
    check(passing.data == b"next", f"expected the next message first, got {passing!r}")
    check(time.monotonic() - nacked_at < DELAY, "the next message waited for the delay")
    await passing.ack()
    again = await h.receive(subscription, what="the nacked message after its delay")
    waited = time.monotonic() - nacked_at
    check(again.data == b"flaky" and again.delivery_count == 2, f"redelivery {again!r}")
    check(waited >= DELAY - EARLY, f"redelivered {waited:.3f} s after nack({DELAY})")
    await again.ack()


@scenario("max_deliveries")
async def max_deliveries_stops_redelivery(h: Harness) -> None:
    """A message nacked max_deliveries times is not delivered again."""
    backend = await h.backend()
    topic = await h.topic(backend, "poison")
    subscription = await h.subscribe(backend, topic, group=h.name("g"), max_deliveries=3)
    await backend.publish(topic, b"poison", key="k")
    for attempt in (1, 2, 3):
        delivery = await h.receive(subscription, what=f"delivery {attempt}")
        check(delivery.delivery_count == attempt, f"delivery_count {delivery.delivery_count} != {attempt}")
        await delivery.nack(reason=f"failed {attempt}")
    await _no_more_of(h, backend, subscription, delivery)


@scenario("max_deliveries", "native_dead_letters")
async def max_deliveriesread_dead_letter(h: Harness) -> None:
    """Past max_deliveries the message goes to <topic>.dlq.<group> with the dead-letter headers, its
    data, key and headers kept, and the last nack's reason."""
    backend = await h.backend()
    topic = await h.topic(backend, "poison")
    group = h.name("billing")
    subscription = await h.subscribe(backend, topic, group=group, max_deliveries=2)
    await backend.publish(topic, b"\x00poison", key="customer-1", headers={"trace": "t-1"})
    for attempt in (1, 2):
        delivery = await h.receive(subscription, what=f"delivery {attempt}")
        await delivery.nack(reason=f"boom {attempt}")
    dead = await read_dead_letter(h, backend, topic, group)
    _checkread_dead_letter(dead, delivery, group, deliveries=2, reason="boom 2")
    await _no_more_of(h, backend, subscription, delivery)


@scenario()
async def term_is_final(h: Harness) -> None:
    """A terminated message is never delivered to the group again."""
    backend = await h.backend()
    topic = await h.topic(backend, "reject")
    subscription = await h.subscribe(backend, topic, group=h.name("g"), max_deliveries=None)
    await backend.publish(topic, b"malformed", key="k")
    delivery = await h.receive(subscription)
    await delivery.term("cannot parse")
    await _no_more_of(h, backend, subscription, delivery)


@scenario("native_dead_letters")
async def termread_dead_letter(h: Harness) -> None:
    """term(reason) dead-letters the message at once, with deliveries 1 and the reason given."""
    backend = await h.backend()
    topic = await h.topic(backend, "reject")
    group = h.name("parser")
    subscription = await h.subscribe(backend, topic, group=group, max_deliveries=5)
    await backend.publish(topic, b"malformed", key="k", headers={"content-type": "text/plain"})
    delivery = await h.receive(subscription)
    await delivery.term("cannot parse")
    dead = await read_dead_letter(h, backend, topic, group)
    _checkread_dead_letter(dead, delivery, group, deliveries=1, reason="cannot parse")
