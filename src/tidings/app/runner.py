"""Ack, nack or dead letter: the one place that decides what happens to a handled event.

The App's handler runner calls ``decide`` after every delivery with how the
handler ended, and does what it returns; no other code settles an event, so
the retry rules live here and nowhere else (Watermill's router holds the
same line). The table, for a subscription with ``retries`` and ``backoff``:

    outcome of delivery n (n = delivery_count, from 1)   decision
    returned normally                                   Ack
    EventValidationError (the data is not the event,    DeadLetter at once: retrying cannot fix it,
      or the handler itself says so)                      and the stream behind it keeps moving
    any other Exception, n <= retries                   Nack(delay=backoff.delay(n))
    any other Exception, n > retries                    DeadLetter, with the last exception's text
    BaseException that is not an Exception             Nack(delay=0): the handler was interrupted
      (CancelledError at shutdown, KeyboardInterrupt)     (not its fault); never dead-lettered;
                                                          the runner re-raises it after settling

So ``retries=5`` means at most six deliveries: the first and five retries.
``retries=None`` retries for ever. The broker's own ``max_deliveries`` must
be above ``retries + 1`` (or off), so that this decision is the one taken.

Reasons are ``"<ExceptionType>: <message>"``, cut to ``MAX_REASON``
characters, as they travel in the dead-letter record's headers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

from tidings.app.backoff import Backoff
from tidings.errors import EventValidationError

__all__ = ["MAX_REASON", "Ack", "DeadLetter", "Decision", "Nack", "decide", "describe"]

MAX_REASON: Final = 1000


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: the event is not delivered to this group again."""


@dataclass(frozen=True, slots=True)
class Nack:
    """Failed for now: deliver it again after ``delay`` seconds."""

    delay: float
    reason: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """Failed for good: move it to the group's dead-letter topic with ``reason``."""

    reason: str


Decision = Ack | Nack | DeadLetter


def describe(error: BaseException) -> str:
    """``"ValueError: bad sku"``, cut to ``MAX_REASON`` characters."""
    detail = error.detail if isinstance(error, EventValidationError) else str(error)
    text = f"{type(error).__name__}: {detail}" if detail else type(error).__name__
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def decide(
    outcome: BaseException | None,
    delivery_count: int,
    retries: int | None,
    backoff: Backoff,
    rng: random.Random | None = None,
) -> Decision:
    """What to do with an event whose delivery ``delivery_count`` ended with ``outcome`` (None: success)."""
    if delivery_count < 1:
        raise ValueError(f"delivery_count starts at 1, not {delivery_count}")
    if retries is not None and retries < 0:
        raise ValueError(f"retries must be >= 0 (or None for no limit), not {retries}")
    if outcome is None:
        return Ack()
    reason = describe(outcome)
    if not isinstance(outcome, Exception):
        return Nack(delay=0.0, reason=f"interrupted: {reason}")
    if isinstance(outcome, EventValidationError):
        return DeadLetter(reason=reason)
    if retries is None or delivery_count <= retries:
        return Nack(delay=backoff.delay(delivery_count, rng), reason=reason)
    tries = "no retries" if retries == 0 else f"{retries} retries exhausted"
    return DeadLetter(reason=_exhausted(tries, reason))


def _exhausted(tries: str, reason: str) -> str:
    text = f"{tries}; last error {reason}"
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."
