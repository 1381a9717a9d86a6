"""The pure limit checks: connection counting and the headers walk."""

from __future__ import annotations

import pytest

from tidings.core.limits import ConnectionCounter, check_headers
from tidings.errors import LimitExceeded
from tidings.records import BatchBuilder


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
