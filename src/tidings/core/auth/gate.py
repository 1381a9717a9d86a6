"""Which permission each frame needs: the table between the wire and ``authorize``.

``required(frame)`` names the operation and the topic (or pattern, or service
for Announce) a frame asks for, or ``None`` for frames that act only on what
the session already holds: Ack, Nack, Term, Credit and Unsubscribe settle
or steer the session's own subscriptions; a Reply answers a request the
broker routed to this session (it reached the session because it was
allowed to subscribe to the topic); Ping and Close concern the connection.
A new frame kind is denied to a restricted principal until it is added
here, so the table fails closed.
"""

from __future__ import annotations

from tidings.core.auth.acl import Operation
from tidings.protocol.admin import (
    Announce,
    CreateTopic,
    DeleteTopic,
    DescribeGroup,
    DescribeTopic,
    ListGroups,
    ListTopics,
    ResetGroup,
)
from tidings.protocol.frames import (
    Ack,
    AdminRequest,
    Close,
    Credit,
    Error,
    Frame,
    Nack,
    Ping,
    Pong,
    Produce,
    Reply,
    Request,
    Subscribe,
    Term,
    Unsubscribe,
)

SESSION_SCOPED = (Ack, Nack, Term, Credit, Unsubscribe, Reply, Ping, Pong, Close, Error)
"""Frames that need no permission beyond an open session (see the module docstring)."""

_SESSION_SCOPED_TYPES: frozenset[type[Frame]] = frozenset(SESSION_SCOPED)

Need = tuple[Operation, str | None]
DENIED: Need = (Operation.CREATE_TOPIC, None)
"""What an unknown frame or admin body requires: admin rights, so only an administrator gets through."""


def required(frame: Frame) -> Need | None:
    """The permission ``frame`` needs, or ``None`` when it needs none (see the module docstring)."""
    if type(frame) in _SESSION_SCOPED_TYPES:  # acks, credits, replies: one set lookup on the busy path
        return None
    if isinstance(frame, Produce):
        return Operation.PUBLISH, frame.topic
    if isinstance(frame, Subscribe):
        return Operation.SUBSCRIBE, frame.topic
    if isinstance(frame, Request):
        return Operation.REQUEST, frame.topic
    if isinstance(frame, AdminRequest):
        return _admin(frame)
    if isinstance(frame, SESSION_SCOPED):
        return None
    return DENIED


def _admin(frame: AdminRequest) -> Need:
    body: object = frame.body  # not the closed union: a body added later must reach the DENIED default
    if isinstance(body, CreateTopic):
        return Operation.CREATE_TOPIC, body.name
    if isinstance(body, DeleteTopic):
        return Operation.DELETE_TOPIC, body.name
    if isinstance(body, ResetGroup):
        return Operation.RESET_GROUP, body.topic
    if isinstance(body, DescribeTopic):
        return Operation.DESCRIBE, body.name
    if isinstance(body, ListTopics | ListGroups | DescribeGroup):
        return Operation.READ, None
    if isinstance(body, Announce):
        return Operation.ANNOUNCE, body.service
    return DENIED
