"""``ctx.now()``: the event's own time while history is replayed, the wall clock otherwise.

A handler that asks "what time is it?" (to stamp a row, to see whether a
reservation expired) should get the same answer when the same events are
replayed next month to rebuild its tables; so during a replay ``ctx.now()``
is the event's time, and live it is the wall clock.

The rule, for one delivery to a subscription that started (in this
process) at ``subscribed_at``:

    the delivery is a REPLAY when
      (a) the broker stored the event before the subscription started:
          appended_at < subscribed_at - grace
          (without an append time, the event's own ``time`` stands in), or
      (b) the group is more than ``max_lag`` events behind the head of the
          partition (only when ``max_lag`` is set and the backend tells the lag);
    otherwise it is LIVE.

    ctx.now() = event time (else append time, else wall)  when REPLAY
              = wall clock                                 when LIVE

(a) covers every way history comes back: a new group starting at
``earliest`` or at a time, a group reset (``tidings groups reset``) while
the service runs, and the backlog a service finds after being down, which
it now handles as of when those events happened rather than as of the
catch-up. An event redelivered (nack, ack deadline) during the same run
stays live. ``grace`` (default 0 s) forgives clock skew between broker and
service. (b) is off by default (``max_lag=None``): a live service under a
burst can be thousands of events behind, and flipping between wall time and
event time as the lag crosses a line would make consecutive events see time
jump; set it for services that want a long catch-up treated as replay even
within one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = ["ReplayPolicy", "event_now", "is_replay"]


@dataclass(frozen=True, slots=True)
class ReplayPolicy:
    """When a delivery counts as a replay (the rule in the module docstring)."""

    grace: float = 0.0
    """Seconds before the subscription's start within which a stored event still counts as live."""
    max_lag: int | None = None
    """Events behind the head past which a delivery is a replay; None: the lag is not considered."""

    def __post_init__(self) -> None:
        if self.grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, not {self.grace}")
        if self.max_lag is not None and self.max_lag < 0:
            raise ValueError(f"max_lag must be >= 0 (or None), not {self.max_lag}")


def is_replay(
    *,
    subscribed_at: datetime,
    appended_at: datetime | None,
    event_time: datetime | None = None,
    lag: int | None = None,
    policy: ReplayPolicy = ReplayPolicy(),
) -> bool:
    """Whether this delivery replays history (rule (a) or (b) of the module docstring)."""
    stored = appended_at if appended_at is not None else event_time
    if stored is not None and stored < subscribed_at - timedelta(seconds=policy.grace):
        return True
    return policy.max_lag is not None and lag is not None and lag > policy.max_lag


def event_now(
    *,
    wall: datetime,
    replaying: bool,
    event_time: datetime | None,
    appended_at: datetime | None = None,
) -> datetime:
    """What ``ctx.now()`` returns: the event's time when replaying (else its append time), else ``wall``."""
    if replaying:
        if event_time is not None:
            return event_time
        if appended_at is not None:
            return appended_at
    return wall
