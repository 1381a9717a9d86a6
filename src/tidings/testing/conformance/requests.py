"""Scenarios: request/reply, a request nobody answers, a request nobody can answer."""

from __future__ import annotations

import time

from tidings.backends.base import Subscription
from tidings.errors import NoResponders, RequestTimeout
from tidings.testing.conformance.harness import Harness, check, scenario

TIMEOUT = 0.4


async def _answer(subscription: Subscription) -> None:
    async for delivery in subscription:
        if delivery.is_request:
            answer = b"re:" + delivery.data
            await delivery.reply(answer, headers={"answered-by": "responder", "asked": delivery.headers["q"]})


@scenario("request_reply")
async def request_reply(h: Harness) -> None:
    """A request reaches a subscriber as a Delivery with is_request, and its reply comes back."""
    requester, responder = await h.backend("checkout"), await h.backend("payments")
    topic = h.name("payments.authorize")
    subscription = await h.subscribe(responder, topic, group=h.name("payments"))
    h.spawn(_answer(subscription), "responder")
    for number in range(3):
        reply = await requester.request(
            topic, f"charge {number}".encode(), timeout=5.0, headers={"q": str(number)}
        )
        check(reply.data == f"re:charge {number}".encode(), f"reply {reply.data!r}")
        check(
            dict(reply.headers) == {"answered-by": b"responder", "asked": str(number).encode()},
            f"reply headers {dict(reply.headers)}",
        )


@scenario("request_reply")
async def request_timeout(h: Harness) -> None:
    """A request that gets no reply raises RequestTimeout after its timeout, not before."""
    requester, responder = await h.backend("checkout"), await h.backend("payments")
    topic = h.name("payments.slow")
    await h.subscribe(responder, topic, group=h.name("payments"))  # receives, never replies
    started = time.monotonic()
    try:
        await requester.request(topic, b"anyone?", timeout=TIMEOUT)
    except RequestTimeout:
        waited = time.monotonic() - started
        check(
            TIMEOUT - 0.02 <= waited < TIMEOUT + 2.0,
            f"RequestTimeout after {waited:.3f} s, timeout {TIMEOUT}",
        )
    else:
        check(False, "a request nobody answered returned a reply")


@scenario("request_reply", "no_responders")
async def no_responders(h: Harness) -> None:
    """A request to a topic nobody subscribes to fails at once with NoResponders."""
    requester = await h.backend("checkout")
    started = time.monotonic()
    try:
        await requester.request(h.name("nobody.home"), b"hello?", timeout=5.0)
    except NoResponders:
        waited = time.monotonic() - started
        check(waited < 1.0, f"NoResponders took {waited:.3f} s: it should not wait for the timeout")
    else:
        check(False, "a request with no responders returned a reply")


@scenario("request_reply")
async def requests_only_reach_responders(h: Harness) -> None:
    """A subscription made with requests=False never receives a request: every request goes to the
    subscription that takes them, while the events-only one still receives the topic's events."""
    requester, responder, consumer = (
        await h.backend("checkout"),
        await h.backend("payments"),
        await h.backend("audit"),
    )
    topic = h.name("payments.capture")
    events_only = await h.subscribe(consumer, topic, group=h.name("audit"), requests=False)
    h.spawn(_answer(await h.subscribe(responder, topic, group=h.name("payments"))), "responder")
    for number in range(6):  # round robin over every candidate would hand some to the audit member
        reply = await requester.request(topic, f"capture {number}".encode(), timeout=5.0, headers={"q": "x"})
        check(reply.data == f"re:capture {number}".encode(), f"reply {reply.data!r}")
    await requester.publish(topic, b"an event", key="k")
    delivery = await h.receive(events_only, what="the event (and no request before it)")
    check(not delivery.is_request, f"an events-only subscription received a request: {delivery!r}")
    check(delivery.data == b"an event", f"delivery {delivery!r}")
    await delivery.ack()


@scenario("request_reply", "no_responders")
async def no_responders_when_only_events_subscribers(h: Harness) -> None:
    """A topic whose only subscriptions take no requests has no responders: NoResponders at once."""
    requester, consumer = await h.backend("checkout"), await h.backend("audit")
    topic = h.name("payments.refund")
    await h.subscribe(consumer, topic, group=h.name("audit"), requests=False)
    started = time.monotonic()
    try:
        await requester.request(topic, b"refund?", timeout=5.0)
    except NoResponders:
        check(time.monotonic() - started < 1.0, "NoResponders should not wait for the timeout")
    else:
        check(False, "an events-only subscription answered a request")
