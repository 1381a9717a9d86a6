"""The transition table itself: complete, role-exclusive where it should be, and strict."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from tests.protocol.strategies import FRAMES, any_frame
from tidings.errors import UnexpectedFrame
from tidings.protocol import Close, Error, FrameKind, Hello, Ping, Produce, Role, State, Welcome
from tidings.protocol.state import (
    MAY_SEND,
    SENDS,
    TRANSITIONS,
    UNCHANGING,
    Lifecycle,
    lifecycle_of,
    transition,
)

C, S = Role.CLIENT, Role.SERVER
FATAL = Error(code="bye", message="going away")
SCOPED = Error(code="unknown_topic", message="no such topic", request_id=1)
LIFECYCLE_KINDS = {FrameKind.HELLO, FrameKind.WELCOME, FrameKind.CLOSE}


def default_hello_frame() -> Hello:
    return Hello(protocol_version=1, service="svc", client_id="c", max_frame_size=1 << 20)


def welcome_frame() -> Welcome:
    return Welcome(
        protocol_version=1, broker_id="b", broker_version="v", session_id="s", max_frame_size=1 << 20
    )


def test_every_kind_is_either_lifecycle_or_sendable_by_some_role():
    ordinary = SENDS[C] | SENDS[S]
    assert ordinary | LIFECYCLE_KINDS == set(FrameKind)
    assert not ordinary & LIFECYCLE_KINDS - {FrameKind.ERROR}


def test_role_exclusive_kinds():
    only_client = SENDS[C] - SENDS[S]
    only_server = SENDS[S] - SENDS[C]
    assert FrameKind.PRODUCE in only_client and FrameKind.ACK in only_client
    assert FrameKind.DELIVER in only_server and FrameKind.PRODUCE_RESULT in only_server
    assert SENDS[C] & SENDS[S] == {
        FrameKind.ERROR,
        FrameKind.PING,
        FrameKind.PONG,
        FrameKind.REQUEST,
        FrameKind.REPLY,
    }


def test_lifecycle_of():
    assert lifecycle_of(FATAL) is Lifecycle.FATAL_ERROR
    assert lifecycle_of(SCOPED) is None
    assert lifecycle_of(Close()) is Lifecycle.CLOSE
    assert lifecycle_of(Ping(nonce=1)) is None


def test_the_happy_path():
    state = transition(State.IDLE, C, default_hello_frame())
    assert state is State.HANDSHAKE
    state = transition(state, S, welcome_frame())
    assert state is State.OPEN
    assert transition(state, C, Ping(nonce=1)) is State.OPEN
    state = transition(state, C, Close())
    assert state is State.CLIENT_CLOSED
    assert transition(state, S, SCOPED) is State.CLIENT_CLOSED  # the server finishes its work
    assert transition(state, S, Close()) is State.CLOSED


@pytest.mark.parametrize(
    ("state", "sender", "frame", "message"),
    [
        (State.IDLE, C, Ping(nonce=1), "before Hello"),
        (State.IDLE, S, Ping(nonce=1), "before Hello"),
        (State.IDLE, S, default_hello_frame(), "a server may not send Hello"),
        (State.HANDSHAKE, C, welcome_frame(), "a client may not send Welcome"),
        (State.HANDSHAKE, C, Ping(nonce=1), "during the handshake"),
        (State.HANDSHAKE, C, Close(), "during the handshake"),
        (State.OPEN, S, Produce(request_id=1, topic="t", batches=(b"",)), "a server may not send Produce"),
        (State.OPEN, C, default_hello_frame(), "in state OPEN: the handshake is over"),
        (State.OPEN, S, welcome_frame(), "in state OPEN: the handshake is over"),
        (State.CLIENT_CLOSED, C, Ping(nonce=1), "after it sent Close"),
        (State.SERVER_CLOSED, S, Close(), "after it sent Close"),
        (State.CLOSED, C, Ping(nonce=1), "after the connection closed"),
        (State.ERROR, C, Ping(nonce=1), "after a protocol error"),
    ],
)
def test_forbidden_moves_name_the_rule(state, sender, frame, message):
    with pytest.raises(UnexpectedFrame, match=message):
        transition(state, sender, frame)


def test_lifecycle_table_is_exactly_what_the_docstring_says():
    for (state, sender, event), new_state in TRANSITIONS.items():
        if state is State.ERROR:
            assert new_state is State.ERROR
        if event is Lifecycle.HELLO:
            assert sender is C
        if event is Lifecycle.WELCOME:
            assert sender is S
    assert len(TRANSITIONS) == 16


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=any_frame)
def test_no_ordinary_frame_ever_changes_the_state(frame):
    for state, sender in itertools.product(State, Role):
        try:
            new_state = transition(state, sender, frame)
        except UnexpectedFrame:
            continue
        if lifecycle_of(frame) is None:
            assert new_state is state
            assert sender in MAY_SEND[state]
            assert frame.kind in SENDS[sender]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=any_frame)
def test_the_busy_path_table_agrees_with_transition(frame):
    """A kind in ``UNCHANGING`` skips ``transition`` in the connection: it must be one that passes as is."""
    for state, sender in itertools.product(State, Role):
        if frame.kind not in UNCHANGING[state, sender]:
            continue
        assert transition(state, sender, frame) is state
        assert lifecycle_of(frame) is None


def test_the_busy_path_table_holds_the_busy_frames():
    assert {FrameKind.ACK, FrameKind.REQUEST, FrameKind.REPLY} <= UNCHANGING[State.OPEN, Role.CLIENT]
    assert {FrameKind.DELIVER, FrameKind.PRODUCE_RESULT} <= UNCHANGING[State.CLIENT_CLOSED, Role.SERVER]
    assert not UNCHANGING[State.OPEN, Role.CLIENT] & {FrameKind.ERROR, FrameKind.CLOSE, FrameKind.HELLO}
    assert not UNCHANGING[State.ERROR, Role.CLIENT] and not UNCHANGING[State.HANDSHAKE, Role.SERVER]


def test_strategies_cover_the_table():
    assert set(FRAMES) == set(FrameKind)
