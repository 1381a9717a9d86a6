"""UUIDv7 event ids: the RFC 9562 layout, time order, and strict monotonicity within a process."""

from __future__ import annotations

import time
import uuid

import pytest

from tidings.app import ids


def test_version_variant_and_timestamp():
    before = time.time_ns() // 1_000_000
    made = ids.uuid7()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == uuid.RFC_4122
    assert before <= ids.timestamp_ms(made) <= after + 1
    assert ids.timestamp_ms(str(made)) == ids.timestamp_ms(made)


def test_ids_made_in_one_process_strictly_increase():
    made = [ids.uuid7() for _ in range(20_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert [str(u) for u in made] == sorted(str(u) for u in made)  # text order too


def test_the_layout_places_each_field():
    value = ids.build(0x0123456789AB, (1 << 42) - 1, 0xDEADBEEF)
    assert value.int >> 80 == 0x0123456789AB
    assert (value.int >> 76) & 0xF == 7
    assert (value.int >> 62) & 0b11 == 0b10
    assert value.int & 0xFFFFFFFF == 0xDEADBEEF
    with pytest.raises(ValueError):
        ids.build(1 << 48, 0, 0)


def test_an_id_for_a_given_moment():
    assert ids.timestamp_ms(ids.uuid7(1_700_000_000_123)) == 1_700_000_000_123


def test_the_counter_carries_into_the_timestamp_when_it_overflows():
    generator = ids._Generator()
    ms, counter = generator.next(1000)
    generator._counter = (1 << 42) - 1
    assert generator.next(1000) == (1001, 0)
    assert generator.next(999) == (1001, 1)  # the clock went back: keep counting
    assert ms == 1000 and counter < 1 << 41


def test_other_uuid_versions_have_no_timestamp():
    with pytest.raises(ValueError):
        ids.timestamp_ms(uuid.uuid4())
