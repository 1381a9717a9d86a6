"""decide(): the table of ack / nack with backoff / dead letter."""

from __future__ import annotations

import asyncio
import random

import pytest

from tidings.app import Ack, DeadLetter, Exponential, Fixed, Nack, NoBackoff, decide
from tidings.app.runner import MAX_REASON, describe
from tidings.errors import EventValidationError

BACKOFF = Exponential(0.2, 30, jitter=0)
INVALID = EventValidationError("bad", event_type="orders.placed.v1", detail="Expected `int` - at `$.qty`")


@pytest.mark.parametrize(
    ("outcome", "delivery", "retries", "expected"),
    [
        # success: ack, whatever the delivery
        (None, 1, 5, Ack()),
        (None, 6, 5, Ack()),
        (None, 99, 0, Ack()),
        # validation error: dead letter at once, even with retries left
        (INVALID, 1, 5, DeadLetter("EventValidationError: Expected `int` - at `$.qty`")),
        (INVALID, 3, None, DeadLetter("EventValidationError: Expected `int` - at `$.qty`")),
        # an exception: nack with the backoff of this delivery while retries remain
        (ValueError("no stock"), 1, 5, Nack(0.2, "ValueError: no stock")),
        (ValueError("no stock"), 2, 5, Nack(0.4, "ValueError: no stock")),
        (ValueError("no stock"), 5, 5, Nack(3.2, "ValueError: no stock")),
        # ... then dead letter with the last exception's text
        (ValueError("no stock"), 6, 5, DeadLetter("5 retries exhausted; last error ValueError: no stock")),
        (KeyError("sku"), 7, 5, DeadLetter("5 retries exhausted; last error KeyError: 'sku'")),
        (RuntimeError(), 1, 0, DeadLetter("no retries; last error RuntimeError")),
        # retries=None: never dead-lettered
        (ValueError("x"), 1000, None, Nack(30, "ValueError: x")),
        # interrupted (shutdown): redeliver at once, never dead letter, whatever the count
        (asyncio.CancelledError(), 1, 5, Nack(0.0, "interrupted: CancelledError")),
        (KeyboardInterrupt(), 50, 0, Nack(0.0, "interrupted: KeyboardInterrupt")),
    ],
)
def test_the_decision_table(outcome, delivery, retries, expected):
    assert decide(outcome, delivery, retries, BACKOFF) == expected


def test_the_backoff_policy_is_the_subscription_s():
    assert decide(OSError("down"), 3, 5, Fixed(7)) == Nack(7, "OSError: down")
    assert decide(OSError("down"), 3, 5, NoBackoff()) == Nack(0.0, "OSError: down")
    jittered = Exponential(1, 10, jitter=0.5)
    decision = decide(OSError("down"), 2, 5, jittered, rng=random.Random(3))
    assert decision == Nack(jittered.delay(2, random.Random(3)), "OSError: down")


def test_reasons_are_cut_to_fit_a_header():
    huge = ValueError("x" * 10_000)
    assert len(describe(huge)) == MAX_REASON
    decision = decide(huge, 9, 1, NoBackoff())
    assert isinstance(decision, DeadLetter) and len(decision.reason) == MAX_REASON
    assert decision.reason.endswith("...")


def test_nonsense_counts_are_refused():
    with pytest.raises(ValueError):
        decide(None, 0, 5, NoBackoff())
    with pytest.raises(ValueError):
        decide(None, 1, -1, NoBackoff())
