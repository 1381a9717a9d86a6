"""How long a failed event waits before its next delivery: backoff policies as frozen values.

``@app.subscribe(..., retries=5, backoff=tidings.Exponential(0.2, 30))``.
Each policy is a value with one pure method, ``delay(attempt)``, where
``attempt`` is the delivery that just failed, counted from 1: after the
first failed delivery the event waits ``delay(1)``. The handler runner
(``tidings.app.runner.decide``) calls it; nothing here sleeps.

Jitter: ``Exponential`` takes a fraction of the delay off at random
(``jitter=0.2``: uniform in ``[0.8 d, d]``), so events that failed together
(the database went away under all of them) do not all come back in the same
instant. The random draw comes from ``rng`` when given, which keeps tests
deterministic; with ``jitter=0`` the delay is a pure function of the
attempt. The delay never exceeds ``maximum``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = ["Backoff", "Exponential", "Fixed", "NoBackoff"]


@runtime_checkable
class Backoff(Protocol):
    """A retry policy: seconds to wait after failed delivery ``attempt`` (1-based)."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float: ...


def _check_attempt(attempt: int) -> None:
    if attempt < 1:
        raise ValueError(f"attempt counts deliveries from 1, not {attempt}")


@dataclass(frozen=True, slots=True)
class Exponential:
    """``initial * multiplier ** (attempt - 1)``, capped at ``maximum``, minus up to ``jitter`` of it."""

    initial: float
    maximum: float
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise ValueError(f"need 0 <= initial <= maximum, not {self.initial} and {self.maximum}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be >= 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter is a fraction in [0, 1], not {self.jitter}")

    def ceiling(self, attempt: int) -> float:
        """The delay before jitter: pure."""
        _check_attempt(attempt)
        try:
            grown = self.initial * self.multiplier ** (attempt - 1)
        except OverflowError:  # far past the maximum
            return self.maximum
        return min(self.maximum, grown)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = self.ceiling(attempt)
        if not self.jitter:
            return ceiling
        return ceiling * (1.0 - self.jitter * (rng or random).random())


@dataclass(frozen=True, slots=True)
class Fixed:
    """The same delay after every failure."""

    seconds: float

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError(f"a delay must be >= 0 seconds, not {self.seconds}")

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        return self.seconds


@dataclass(frozen=True, slots=True)
class NoBackoff:
    """Redeliver at once."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        _check_attempt(attempt)
        return 0.0
