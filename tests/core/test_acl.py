"""The ACL's pure pieces: pattern inclusion, the decision table, and messages that name what was refused."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.core.auth import UNRESTRICTED, Operation, Principal, allowed, authorize, pattern_covers
from tidings.core.auth.acl import ADMIN_OPERATIONS
from tidings.errors import NotAuthorized
from tidings.protocol.names import topic_matches


@pytest.mark.parametrize(
    ("rule", "wanted", "covered"),
    [
        ("orders.placed", "orders.placed", True),
        ("orders.placed", "orders.paid", False),
        ("orders.*", "orders.placed", True),
        ("orders.*", "orders.eu.placed", False),
        ("orders.*", "orders", False),
        ("orders.>", "orders.eu.placed", True),
        ("orders.>", "orders", False),
        ("orders.>", "orders.*", True),
        ("orders.>", "orders.*.eu", True),
        ("orders.>", "orders.>", True),
        ("orders.*", "orders.>", False),  # orders.> also matches orders.eu.paris
        ("orders.placed", "orders.*", False),  # a literal never covers a wildcard
        ("*.placed", "orders.placed", True),
        ("*.placed", "*.placed", True),
        ("*.placed", "*.*", False),
        (">", ">", True),
        (">", "anything.at.all", True),
        ("*", ">", False),
        ("orders.*.eu", "orders.*.eu", True),
        ("orders.*.eu", "orders.*.us", False),
    ],
)
def test_pattern_covers(rule, wanted, covered):
    assert pattern_covers(rule, wanted) is covered


token = st.sampled_from(["a", "b", "c"])
literal = st.lists(token, min_size=1, max_size=4).map(".".join)
pattern = st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=4).flatmap(
    lambda tokens: st.sampled_from([".".join(tokens), ".".join([*tokens, ">"]) if len(tokens) < 4 else ">"])
)


@given(rule=pattern, wanted=pattern, topic=literal)
def test_a_covered_pattern_never_matches_a_topic_outside_the_rule(rule, wanted, topic):
    """The property the broker relies on: what a covered subscription delivers, the rule allows."""
    if pattern_covers(rule, wanted) and topic_matches(wanted, topic):
        assert topic_matches(rule, topic)


@given(rule=pattern, topic=literal)
def test_for_a_concrete_topic_covering_is_matching(rule, topic):
    assert pattern_covers(rule, topic) == topic_matches(rule, topic)


SERVICE = Principal("inventory", publish=("inventory.>",), subscribe=("orders.*",))
READER = Principal("dashboard", read=True)
ADMIN = Principal("ops", admin=True)
NOBODY = Principal("nobody")


@pytest.mark.parametrize(
    ("principal", "operation", "topic", "expected"),
    [
        (SERVICE, Operation.PUBLISH, "inventory.reserved", True),
        (SERVICE, Operation.PUBLISH, "orders.placed", False),
        (SERVICE, Operation.REQUEST, "inventory.check", True),
        (SERVICE, Operation.REQUEST, "payments.charge", False),
        (SERVICE, Operation.SUBSCRIBE, "orders.placed", True),
        (SERVICE, Operation.SUBSCRIBE, "orders.>", False),
        (SERVICE, Operation.SUBSCRIBE, "inventory.reserved", False),
        (SERVICE, Operation.DESCRIBE, "orders.placed", True),  # the producer looks up partitions
        (SERVICE, Operation.DESCRIBE, "payments.charged", False),
        (SERVICE, Operation.READ, None, False),
        (SERVICE, Operation.ANNOUNCE, "inventory", True),
        (SERVICE, Operation.ANNOUNCE, "payment", False),
        (READER, Operation.READ, None, True),
        (READER, Operation.DESCRIBE, "anything", True),
        (READER, Operation.PUBLISH, "anything", False),
        (READER, Operation.SUBSCRIBE, "anything", False),
        (ADMIN, Operation.DELETE_TOPIC, "orders.placed", True),
        (UNRESTRICTED, Operation.PUBLISH, "x", True),
    ],
)
def test_decisions(principal, operation, topic, expected):
    assert allowed(principal, operation, topic) is expected


def test_deny_by_default_for_every_operation():
    for operation, topic in itertools.product(Operation, ["orders.placed", "orders.*", None]):
        assert not allowed(NOBODY, operation, topic), (operation, topic)


def test_only_admins_administer():
    for principal, operation in itertools.product([SERVICE, READER, NOBODY], ADMIN_OPERATIONS):
        assert not allowed(principal, operation, "inventory.reserved")


def test_the_refusal_names_the_service_the_operation_and_the_topic():
    with pytest.raises(NotAuthorized, match=r"service 'inventory' may not publish to 'orders.placed'"):
        authorize(SERVICE, Operation.PUBLISH, "orders.placed")
    with pytest.raises(NotAuthorized, match=r"service 'inventory' may not subscribe to 'orders.>'"):
        authorize(SERVICE, Operation.SUBSCRIBE, "orders.>")
    with pytest.raises(NotAuthorized, match=r"service 'dashboard' may not delete topic 'orders'"):
        authorize(READER, Operation.DELETE_TOPIC, "orders")
    assert NotAuthorized.code == "not_authorized"
