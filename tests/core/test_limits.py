"""The pure limit checks: connection counting and the headers walk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.core.limits import ConnectionCounter, check_headers
from tidings.errors import LimitExceeded
from tidings.records import BatchBuilder
from tidings.records import batch as batch_module


def test_connections_are_counted_in_total_and_per_ip():
    counter = ConnectionCounter(max_total=3, max_per_ip=2)
    assert counter.admit("10.0.0.1") is None
    assert counter.admit("10.0.0.1") is None
    refused = counter.admit("10.0.0.1")
    assert isinstance(refused, LimitExceeded) and "max_connections_per_ip (2)" in str(refused)
    assert counter.admit("10.0.0.2") is None
    refused = counter.admit("10.0.0.3")
    assert isinstance(refused, LimitExceeded) and "max_connections (3)" in str(refused)
    counter.release("10.0.0.1")
    assert counter.admit("10.0.0.3") is None
    assert (counter.total, counter.by_ip) == (3, {"10.0.0.1": 1, "10.0.0.2": 1, "10.0.0.3": 1})
    counter.release("10.9.9.9")  # never admitted: nothing to release
    assert counter.total == 3


def build(*headers_sizes: int) -> bytes:
    builder = BatchBuilder()
    for size in headers_sizes:
        builder.add(b"value", headers=[("h", b"x" * size)] if size else None)
    return builder.build()


def test_headers_within_the_limit_pass():
    check_headers(build(0, 100, 1000), 1024)
    check_headers(build(*[1000] * 100), 1024)  # 100 KB of headers in all, none over the limit


def test_the_first_record_over_the_limit_is_named():
    with pytest.raises(
        LimitExceeded, match=r"record 2 of a batch has \d+ bytes of headers; max_headers_bytes is 1024"
    ):
        check_headers(build(10, 10, 5000, 10), 1024)


def test_a_malformed_batch_is_left_to_the_produce_path():
    batch = build(*[1000] * 10)
    check_headers(batch[: len(batch) // 2], 2000)  # truncated records: no verdict here, no crash
    check_headers(b"\x00" * 10, 1)


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=8),
    limit=st.integers(min_value=0, max_value=300),
    cut=st.integers(min_value=0, max_value=4000),
    edit=st.none() | st.tuples(st.integers(min_value=0, max_value=7), st.integers(0, 2**32 - 1)),
)
def test_the_c_headers_walk_agrees_with_the_python_one(sizes, limit, cut, edit):
    """The broker runs the C walk; the Python one is the reference, also on torn or lying prefixes."""
    if batch_module._headers_over_c is None:
        pytest.skip("tidings._speedups is not built: the Python walk is in use")
    batch = bytearray(build(*sizes))
    if edit is not None:  # a lying length field in one record's prefix
        index, length = edit
        cursor = 64
        for _ in range(min(index, len(sizes) - 1)):
            cursor += int.from_bytes(batch[cursor : cursor + 4], "little")
        batch[cursor : cursor + 4] = length.to_bytes(4, "little")
    data = bytes(batch[: max(64, len(batch) - cut)])
    python = batch_module._headers_over(data, len(sizes), limit)
    c = batch_module._headers_over_c(data, 64, len(sizes), limit)
    assert c == (-1 if python is None else python)
    over = batch_module.record_with_headers_over(data, len(sizes), limit)
    assert (over[0] if over else None) == python
