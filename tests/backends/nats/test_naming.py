"""Topic -> stream, subject and consumer names: valid for JetStream, and never shared by two topics."""

from __future__ import annotations

import itertools
import re

import pytest

from tidings.backends.nats import naming

JETSTREAM_NAME = re.compile(r"^[A-Za-z0-9_-]+\Z")


def test_dotted_names_stay_readable() -> None:
    assert naming.stream_name("orders.placed") == "TIDINGS_orders-placed"
    assert naming.consumer_name("billing") == "billing"


@pytest.mark.parametrize(
    "pair",
    [("a_.b", "a._b"), ("a-b", "a.b"), ("a_b", "a.ub"), ("a_hb", "a-b"), ("x.y", "x-y"), ("a__b", "a_.ub")],
)
def test_escaping_never_collides(pair: tuple[str, str]) -> None:
    first, second = pair
    assert naming.stream_name(first) != naming.stream_name(second)


def test_escaping_is_injective_on_a_small_alphabet() -> None:
    names = {"".join(chars) for n in range(1, 6) for chars in itertools.product("a._-", repeat=n)}
    names = {
        name for name in names if not name.startswith(".") and not name.endswith(".") and ".." not in name
    }
    escaped = {naming.escape(name) for name in names}
    assert len(escaped) == len(names)
    assert all(JETSTREAM_NAME.match(name) for name in escaped)


def test_long_names_are_hashed_and_stay_distinct() -> None:
    long_a, long_b = "t" * 240 + ".a", "t" * 240 + ".b"
    a, b = naming.stream_name(long_a), naming.stream_name(long_b)
    assert a != b
    assert len(a) <= len(naming.STREAM_PREFIX) + naming.MAX_ESCAPED
    assert "_x" in a and JETSTREAM_NAME.match(a)


def test_subjects_of_nested_topics_do_not_overlap() -> None:
    parent = set(naming.subjects("a.b", 3))
    child = set(naming.subjects("a.b.p0", 3))
    assert parent == {"tidings.a.b.p0", "tidings.a.b.p1", "tidings.a.b.p2"}
    assert not parent & child
    assert naming.partition_of("tidings.a.b.p0.p2") == 2
    assert naming.partition_of(naming.subject("x.p7", 11)) == 11


def test_partition_of_refuses_foreign_subjects() -> None:
    with pytest.raises(ValueError, match="not a Tidings subject"):
        naming.partition_of("orders.new")
    with pytest.raises(ValueError):
        naming.partition_of("tidings.t.p01")


def test_requests_are_never_stored_subjects() -> None:
    request = naming.request_subject("rpc.x")
    assert request.split(".")[0] == naming.REQUEST_ROOT != naming.SUBJECT_ROOT
    assert request not in naming.subjects("x", 4)
