"""Record times given by the producer (copies of history): a batch spans at most the format's delta."""

from __future__ import annotations

import pytest

from tidings.errors import InvalidBatchError
from tidings.records import layout as L
from tidings.records.builder import BatchBuilder, iter_records, now_ms


def test_a_batch_of_now_times_always_fits():
    builder = BatchBuilder()
    builder.add(b"a")
    assert builder.fits(None) and builder.fits(now_ms())


def test_explicit_times_are_kept_and_a_record_beyond_the_span_does_not_fit():
    old = 1_700_000_000_000
    builder = BatchBuilder()
    builder.add(b"old", timestamp=old)
    builder.add(b"older", timestamp=old - 1000)
    assert builder.fits(old + L.MAX_TIMESTAMP_DELTA - 1000)
    assert not builder.fits(old + L.MAX_TIMESTAMP_DELTA + 1)
    assert not builder.fits(None)  # now is years after `old`
    assert [r.timestamp for r in iter_records(builder.build())] == [old, old - 1000]


def test_a_now_record_after_an_old_one_is_tracked_and_refused_at_build():
    builder = BatchBuilder()
    builder.add(b"old", timestamp=1_000)
    builder.add(b"now")  # a producer checks fits() first; the builder alone still refuses to encode it
    with pytest.raises(InvalidBatchError, match="span more than"):
        builder.build()
