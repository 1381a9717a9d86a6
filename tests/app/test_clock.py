"""ctx.now(): event time while replaying, wall time live (the rule in tidings.app.clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidings.app import ReplayPolicy, event_now, is_replay

START = datetime(2024, 7, 1, 12, 0, 0, tzinfo=UTC)  # the subscription started
WALL = START + timedelta(hours=1)
EVENT_TIME = START - timedelta(days=3)


def test_an_event_stored_before_the_subscription_started_is_a_replay():
    assert is_replay(subscribed_at=START, appended_at=START - timedelta(milliseconds=1))
    assert is_replay(subscribed_at=START, appended_at=START - timedelta(days=30))


def test_an_event_stored_after_the_start_is_live_even_when_redelivered_later():
    assert not is_replay(subscribed_at=START, appended_at=START)
    assert not is_replay(subscribed_at=START, appended_at=START + timedelta(seconds=5))


def test_without_an_append_time_the_event_s_own_time_decides():
    assert is_replay(subscribed_at=START, appended_at=None, event_time=EVENT_TIME)
    assert not is_replay(subscribed_at=START, appended_at=None, event_time=WALL)
    assert not is_replay(subscribed_at=START, appended_at=None, event_time=None)


def test_grace_forgives_clock_skew():
    policy = ReplayPolicy(grace=2.0)
    assert not is_replay(subscribed_at=START, appended_at=START - timedelta(seconds=1.5), policy=policy)
    assert is_replay(subscribed_at=START, appended_at=START - timedelta(seconds=2.5), policy=policy)


def test_lag_counts_only_when_the_policy_sets_a_threshold():
    live = START + timedelta(seconds=1)
    assert not is_replay(subscribed_at=START, appended_at=live, lag=1_000_000)
    policy = ReplayPolicy(max_lag=1000)
    assert not is_replay(subscribed_at=START, appended_at=live, lag=1000, policy=policy)
    assert is_replay(subscribed_at=START, appended_at=live, lag=1001, policy=policy)
    assert not is_replay(subscribed_at=START, appended_at=live, lag=None, policy=policy)


def test_now_is_the_event_time_when_replaying_and_the_wall_clock_otherwise():
    assert event_now(wall=WALL, replaying=True, event_time=EVENT_TIME) == EVENT_TIME
    assert event_now(wall=WALL, replaying=False, event_time=EVENT_TIME) == WALL
    appended = START - timedelta(days=2)
    assert event_now(wall=WALL, replaying=True, event_time=None, appended_at=appended) == appended
    assert event_now(wall=WALL, replaying=True, event_time=None) == WALL


def test_replaying_the_same_history_twice_gives_the_same_times():
    history = [START - timedelta(days=3, minutes=n) for n in range(5)]

    def run(wall):
        return [
            event_now(wall=wall, replaying=is_replay(subscribed_at=wall, appended_at=t), event_time=t)
            for t in history
        ]

    assert run(WALL) == run(WALL + timedelta(days=30)) == history


@pytest.mark.parametrize("make", [lambda: ReplayPolicy(grace=-1), lambda: ReplayPolicy(max_lag=-1)])
def test_bad_policies_are_refused(make):
    with pytest.raises(ValueError):
        make()
