"""``PublishResults``: publish_many's results, made on demand from one run per batch."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.client.message import PublishResult, PublishResults

runs_strategy = st.lists(
    st.tuples(st.integers(0, 7), st.integers(0, 10**12), st.integers(1, 50)), min_size=0, max_size=6
)


def expanded(topic: str, runs: list[tuple[int, int, int]]) -> list[PublishResult]:
    return [PublishResult(topic, p, first + i) for p, first, count in runs for i in range(count)]


@given(runs=runs_strategy, data=st.data())
def test_it_is_the_sequence_of_its_runs(runs, data):
    results = PublishResults("t", runs)
    expected = expanded("t", runs)
    assert len(results) == len(expected)
    assert list(results) == expected
    assert results == expected and expected == results
    if expected:
        index = data.draw(st.integers(-len(expected), len(expected) - 1))
        assert results[index] == expected[index]
    window = data.draw(st.tuples(st.integers(-60, 60), st.integers(-60, 60), st.sampled_from([1, 2, -1])))
    assert results[window[0] : window[1] : window[2]] == expected[window[0] : window[1] : window[2]]


def test_an_index_past_either_end_raises():
    results = PublishResults("t", [(0, 5, 2)])
    with pytest.raises(IndexError):
        results[2]
    with pytest.raises(IndexError):
        results[-3]
    assert PublishResults("t", []) == [] and len(PublishResults("t", [])) == 0


def test_it_differs_from_other_results():
    results = PublishResults("t", [(0, 5, 2)])
    assert results != [PublishResult("t", 0, 5)]
    assert results != [PublishResult("t", 0, 5), PublishResult("t", 1, 6)]
    assert results != "ab"
    assert "PublishResult(topic='t', partition=0, offset=6)" in repr(results)
