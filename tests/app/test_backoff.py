"""Backoff policies: frozen values with a pure delay(attempt)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from tidings.app import Backoff, Exponential, Fixed, NoBackoff


def test_exponential_without_jitter_doubles_up_to_the_maximum():
    policy = Exponential(0.2, 30, jitter=0)
    assert [policy.delay(n) for n in range(1, 11)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30, 30]
    assert policy.delay(10_000) == 30  # no overflow, however many attempts


def test_exponential_with_another_multiplier():
    assert [Exponential(1, 100, multiplier=3, jitter=0).delay(n) for n in (1, 2, 3, 4, 5)] == [
        1,
        3,
        9,
        27,
        81,
    ]
    assert Exponential(1, 100, multiplier=10, jitter=0).delay(10**6) == 100


def test_jitter_takes_up_to_its_fraction_off_and_never_exceeds_the_ceiling():
    policy = Exponential(1, 10, jitter=0.5)
    rng = random.Random(7)
    for attempt in range(1, 30):
        ceiling = policy.ceiling(attempt)
        for _ in range(50):
            assert ceiling * 0.5 <= policy.delay(attempt, rng) <= ceiling <= 10


def test_jitter_is_deterministic_given_the_generator():
    policy = Exponential(0.2, 30)  # jitter 0.2 by default
    assert [policy.delay(3, random.Random(1)) for _ in range(3)] == [policy.delay(3, random.Random(1))] * 3
    assert len({policy.delay(3) for _ in range(20)}) > 1


def test_fixed_and_none():
    assert [Fixed(1.5).delay(n) for n in (1, 2, 50)] == [1.5, 1.5, 1.5]
    assert NoBackoff().delay(9) == 0.0


@pytest.mark.parametrize("policy", [Exponential(1, 2), Fixed(1), NoBackoff()])
def test_attempts_count_from_one_and_policies_are_frozen_backoffs(policy):
    assert isinstance(policy, Backoff)
    with pytest.raises(ValueError):
        policy.delay(0)
    if dataclasses.fields(policy):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(policy, dataclasses.fields(policy)[0].name, 5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Exponential(-1, 2),
        lambda: Exponential(3, 2),
        lambda: Exponential(1, 2, multiplier=0.5),
        lambda: Exponential(1, 2, jitter=1.5),
        lambda: Fixed(-0.1),
    ],
)
def test_bad_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()
