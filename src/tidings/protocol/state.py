"""The connection state machine: every rule about which frame may go where, as data.

Theory of operation
-------------------
A Tidings connection is one conversation between a CLIENT (a service, via
the SDK) and a SERVER (the broker). Both ends run the same ``Connection``
class, which is told its role. Both ends also track the *same* state, the
state of the conversation, and advance it with the *same* table. The only
difference between them is that a frame one side *sends* is a frame the
other side *receives*. A transition is looked up by who sent the frame::

    transition(state, sender_role, frame) -> new state, or UnexpectedFrame

So the two ends cannot disagree about the rules. The joined-pair tests
check that both ends walk through the same states.

Only *lifecycle* frames move the state: Hello, Welcome, Close, and an Error
without a request id (a *fatal* Error, which works like Close with a
reason). Every other frame is *ordinary*. It leaves the state as it is, and
it is allowed when its sender may send in the current state (``MAY_SEND``)
and its kind is one the sender's role may send (``SENDS``).

The rules
---------
1. The client speaks first, with Hello. Nothing else may be sent or
   received before Hello, by either side.
2. The server answers Hello with Welcome, which opens the connection, or
   with a fatal Error, which ends it. Before Welcome, neither side sends
   anything else. The client does not pipeline requests behind its Hello,
   so a refused client has sent nothing the broker must undo.
3. While OPEN, each role sends its own kinds (``SENDS``). A client never
   sends Deliver, and a server never sends Produce. Request, Reply, Error,
   Ping and Pong go both ways, because the broker forwards requests to
   responders.
4. Close, or a fatal Error, ends its sender's direction. After it, the
   sender may send nothing more. The other side may still send ordinary
   frames, to finish work in flight (results, acks), and then sends its own
   Close, after which the connection is CLOSED. This half-close lets a
   client flush its last acks, and a broker its last results, without
   losing them.
5. A protocol error detected on receipt (a frame too large, malformed, or
   against these rules) moves the receiving side to ERROR. From ERROR it
   receives nothing more, and may send only a fatal Error (the one
   ``Connection.send_error`` builds) or Close. Then its owner closes the
   transport.
6. ``send`` of a frame these rules forbid raises ``UnexpectedFrame`` and
   changes nothing. The frame was not written, so the conversation is
   intact.

States
------
IDLE           nothing exchanged yet
HANDSHAKE      Hello sent, answer pending
OPEN           both directions open
CLIENT_CLOSED  the client sent Close (or a fatal Error); the server may still send
SERVER_CLOSED  the server sent Close (or a fatal Error); the client may still send
CLOSED         both directions closed, or the handshake was refused: nothing more either way
ERROR          this side saw a protocol error: it may send only a fatal Error or Close

Lifecycle transitions (``TRANSITIONS``)::

    state          sender  frame         new state
    IDLE           client  Hello         HANDSHAKE
    IDLE           server  fatal Error   CLOSED          a server refusing before Hello (overload)
    HANDSHAKE      server  Welcome       OPEN
    HANDSHAKE      server  fatal Error   CLOSED          handshake refused
    OPEN           client  Close|fatal   CLIENT_CLOSED
    OPEN           server  Close|fatal   SERVER_CLOSED
    CLIENT_CLOSED  server  Close|fatal   CLOSED
    SERVER_CLOSED  client  Close|fatal   CLOSED
    ERROR          either  Close|fatal   ERROR           only ever sent, by the side in ERROR
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from tidings.errors import UnexpectedFrame
from tidings.protocol.frames import Error, Frame, FrameKind


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"

    @property
    def peer(self) -> Role:
        return Role.SERVER if self is Role.CLIENT else Role.CLIENT


class State(enum.Enum):
    IDLE = "idle"
    HANDSHAKE = "handshake"
    OPEN = "open"
    CLIENT_CLOSED = "client_closed"
    SERVER_CLOSED = "server_closed"
    CLOSED = "closed"
    ERROR = "error"


class Lifecycle(enum.Enum):
    """The frames that move the state."""

    HELLO = "hello"
    WELCOME = "welcome"
    CLOSE = "close"
    FATAL_ERROR = "fatal_error"


C, S = Role.CLIENT, Role.SERVER

TRANSITIONS: Final[Mapping[tuple[State, Role, Lifecycle], State]] = {
    (State.IDLE, C, Lifecycle.HELLO): State.HANDSHAKE,
    (State.IDLE, S, Lifecycle.FATAL_ERROR): State.CLOSED,
    (State.HANDSHAKE, S, Lifecycle.WELCOME): State.OPEN,
    (State.HANDSHAKE, S, Lifecycle.FATAL_ERROR): State.CLOSED,
    (State.OPEN, C, Lifecycle.CLOSE): State.CLIENT_CLOSED,
    (State.OPEN, C, Lifecycle.FATAL_ERROR): State.CLIENT_CLOSED,
    (State.OPEN, S, Lifecycle.CLOSE): State.SERVER_CLOSED,
    (State.OPEN, S, Lifecycle.FATAL_ERROR): State.SERVER_CLOSED,
    (State.CLIENT_CLOSED, S, Lifecycle.CLOSE): State.CLOSED,
    (State.CLIENT_CLOSED, S, Lifecycle.FATAL_ERROR): State.CLOSED,
    (State.SERVER_CLOSED, C, Lifecycle.CLOSE): State.CLOSED,
    (State.SERVER_CLOSED, C, Lifecycle.FATAL_ERROR): State.CLOSED,
    (State.ERROR, C, Lifecycle.CLOSE): State.ERROR,
    (State.ERROR, C, Lifecycle.FATAL_ERROR): State.ERROR,
    (State.ERROR, S, Lifecycle.CLOSE): State.ERROR,
    (State.ERROR, S, Lifecycle.FATAL_ERROR): State.ERROR,
}

MAY_SEND: Final[Mapping[State, frozenset[Role]]] = {
    State.OPEN: frozenset({C, S}),
    State.CLIENT_CLOSED: frozenset({S}),
    State.SERVER_CLOSED: frozenset({C}),
}
"""In which states each role may send ordinary frames."""

_BOTH: Final = frozenset(
    {FrameKind.ERROR, FrameKind.PING, FrameKind.PONG, FrameKind.REQUEST, FrameKind.REPLY}
)

SENDS: Final[Mapping[Role, frozenset[FrameKind]]] = {
    C: _BOTH
    | {
        FrameKind.PRODUCE,
        FrameKind.SUBSCRIBE,
        FrameKind.UNSUBSCRIBE,
        FrameKind.CREDIT,
        FrameKind.ACK,
        FrameKind.NACK,
        FrameKind.TERM,
        FrameKind.ADMIN_REQUEST,
    },
    S: _BOTH
    | {
        FrameKind.PRODUCE_RESULT,
        FrameKind.SUBSCRIBED,
        FrameKind.UNSUBSCRIBED,
        FrameKind.DELIVER,
        FrameKind.NO_RESPONDERS,
        FrameKind.ADMIN_RESPONSE,
    },
}
"""The ordinary frame kinds each role may send (lifecycle frames are in ``TRANSITIONS``)."""

_LIFECYCLE: Final[Mapping[FrameKind, Lifecycle]] = {
    FrameKind.HELLO: Lifecycle.HELLO,
    FrameKind.WELCOME: Lifecycle.WELCOME,
    FrameKind.CLOSE: Lifecycle.CLOSE,
}


UNCHANGING: Final[Mapping[tuple[State, Role], frozenset[FrameKind]]] = {
    (state, role): SENDS[role] - {FrameKind.ERROR} if role in MAY_SEND.get(state, ()) else frozenset()
    for state in State
    for role in Role
}
"""Per state and sender: the kinds ``transition`` lets through with the state unchanged, whatever the
frame holds (Error is left out: whether it moves the state depends on its ``fatal``).

A connection looks a frame's kind up here first, one set lookup per frame on
the busy path; any other frame takes ``transition``. The tests hold the two to
the same answers.
"""


def lifecycle_of(frame: Frame) -> Lifecycle | None:
    """The lifecycle event a frame is, or None for an ordinary frame."""
    if isinstance(frame, Error):
        return Lifecycle.FATAL_ERROR if frame.fatal else None
    return _LIFECYCLE.get(frame.kind)


def transition(state: State, sender: Role, frame: Frame) -> State:
    """The state after ``sender`` sends ``frame`` in ``state``; ``UnexpectedFrame`` if the rules forbid it."""
    event = lifecycle_of(frame)
    if event is None:
        if sender in MAY_SEND.get(state, ()) and frame.kind in SENDS[sender]:
            return state
    else:
        new_state = TRANSITIONS.get((state, sender, event))
        if new_state is not None:
            return new_state
    raise UnexpectedFrame(_why_not(state, sender, frame, event))


def _why_not(state: State, sender: Role, frame: Frame, event: Lifecycle | None) -> str:
    name = "fatal Error" if event is Lifecycle.FATAL_ERROR else type(frame).__name__
    who = sender.value
    if frame.kind not in SENDS[sender] and not any(k[1:] == (sender, event) for k in TRANSITIONS):
        return f"a {who} may not send {name}"
    if state is State.IDLE:
        return f"{name} from the {who} before Hello: the client must send Hello first"
    if state is State.HANDSHAKE:
        return f"{name} from the {who} during the handshake: only Welcome or a fatal Error may answer Hello"
    if state is State.CLOSED:
        return f"{name} from the {who} after the connection closed"
    if state is State.ERROR:
        return f"{name} after a protocol error: only a fatal Error or Close may be sent"
    if state in (State.CLIENT_CLOSED, State.SERVER_CLOSED) and sender not in MAY_SEND[state]:
        return f"{name} from the {who} after it sent Close"
    if event in (Lifecycle.HELLO, Lifecycle.WELCOME):
        return f"{name} from the {who} in state {state.name}: the handshake is over"
    return f"{name} from the {who} in state {state.name}"
