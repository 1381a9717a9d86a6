"""Who may do what: principals, the operations they ask for, and ``authorize``, the one decision point.

A *principal* is an authenticated identity with its permissions: the topic
patterns it may publish to and subscribe to (the broker's wildcard syntax,
``*`` one token, ``>`` the rest), whether it may read the broker's state
(the ``read`` role: list and describe topics and groups, the HTTP API and the
dashboard) and whether it is an administrator (everything, including
creating and deleting topics and resetting groups).

Deny by default: a principal has no permission it was not given, and when
authentication is on, a connection without a principal is refused at the
handshake. ``authorize`` raises ``NotAuthorized`` naming the service, the
operation and the topic, so the error a user sees says what to grant.

How operations map to permissions (docs/security.md has the same table):

===================================  ==========================================
operation                            needs
===================================  ==========================================
publish (Produce, HTTP POST events)  ``publish`` covering the topic
request (Request frame)              ``publish`` covering the topic
subscribe (topic or pattern)         ``subscribe`` covering every topic the
                                     pattern can match
respond (answer a Request)           nothing more: requests reach only
                                     subscribers, which needed ``subscribe``
describe a topic                     ``read``, or publish/subscribe on it
                                     (the producer looks up partition counts)
list topics/groups, describe group   ``read``
announce (the flow map's types)      only for the principal's own service
create/delete topic, reset group,    ``admin``
HTTP redrive
===================================  ==========================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tidings.errors import NotAuthorized

ANY_SERVICE = "*"
"""A principal's name that lets it claim any service name in its Hello (operators' tools)."""


class Operation(enum.Enum):
    PUBLISH = "publish to"
    REQUEST = "send requests to"
    SUBSCRIBE = "subscribe to"
    DESCRIBE = "describe"
    READ = "read the broker's state"
    CREATE_TOPIC = "create topic"
    DELETE_TOPIC = "delete topic"
    RESET_GROUP = "reset a group on"
    REDRIVE = "redrive dead letters of"
    ANNOUNCE = "announce types for"


ADMIN_OPERATIONS = frozenset(
    {Operation.CREATE_TOPIC, Operation.DELETE_TOPIC, Operation.RESET_GROUP, Operation.REDRIVE}
)


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated identity. ``name`` is the service it acts as (``*``: any it claims)."""

    name: str
    publish: tuple[str, ...] = ()
    subscribe: tuple[str, ...] = ()
    read: bool = False
    admin: bool = False

    def __repr__(self) -> str:
        role = "admin" if self.admin else "read" if self.read else "service"
        return f"<Principal {self.name} {role} publish={list(self.publish)} subscribe={list(self.subscribe)}>"

    def may_claim(self, service: str) -> bool:
        return self.name in (ANY_SERVICE, service)


UNRESTRICTED = Principal(ANY_SERVICE, publish=(">",), subscribe=(">",), read=True, admin=True)
"""Every connection's principal when authentication is off (loopback by default)."""


def pattern_covers(allowed: str, wanted: str) -> bool:
    """Whether every topic ``wanted`` (a name or a pattern) can match is also matched by ``allowed``.

    For a concrete ``wanted`` this is plain matching. For a pattern it is
    inclusion: ``orders.>`` covers ``orders.*.eu``, but ``orders.*`` does not
    cover ``orders.>`` (which also matches ``orders.eu.paris``), and no
    literal covers ``*``. A subscription only an overlapping, not covering,
    rule allows is refused, since it would deliver topics outside the grant.
    """
    have = allowed.split(".")
    want = wanted.split(".")
    for index, token in enumerate(want):
        if index >= len(have):
            return False
        rule = have[index]
        if rule == ">":
            return True  # the rest of ``want`` is one or more tokens, which ``>`` takes whatever they are
        if token == ">":
            return False  # only ``>`` covers a ``>``
        if rule not in ("*", token):  # a literal covers only the same literal, never ``*``
            return False
    return len(have) == len(want)


def _covered(patterns: tuple[str, ...], topic: str) -> bool:
    return any(pattern_covers(rule, topic) for rule in patterns)


def allowed(principal: Principal, operation: Operation, topic: str | None = None) -> bool:
    """The decision, as a pure function of the principal, the operation and the topic (or pattern)."""
    if principal.admin:
        return True
    if operation in ADMIN_OPERATIONS:
        return False
    if operation is Operation.READ:
        return principal.read
    if operation is Operation.ANNOUNCE:
        return topic is not None and principal.may_claim(topic)
    if topic is None:
        return False
    if operation in (Operation.PUBLISH, Operation.REQUEST):
        return _covered(principal.publish, topic)
    if operation is Operation.SUBSCRIBE:
        return _covered(principal.subscribe, topic)
    if operation is Operation.DESCRIBE:
        return principal.read or _covered(principal.publish + principal.subscribe, topic)
    return False  # an operation this table does not know is denied


def authorize(
    principal: Principal, operation: Operation, topic: str | None = None, *, service: str = ""
) -> None:
    """Return if allowed, else raise ``NotAuthorized`` with a message that names what was refused.

    ``service`` is the name the session claimed, used in the message when the
    principal may act as any service.
    """
    if allowed(principal, operation, topic):
        return
    who = service if principal.name == ANY_SERVICE and service else principal.name
    what = f"{operation.value} {topic!r}" if topic is not None else operation.value
    why = ""
    if operation is Operation.DESCRIBE:  # what a producer runs into first: say what would grant it
        why = " (it needs the read role, or may publish to or subscribe to the topic)"
    raise NotAuthorized(f"service {who!r} may not {what}{why}")
