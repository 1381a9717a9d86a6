"""Request/reply routing: a Request goes to one live responder, its Reply comes back to the requester.

Theory of operation
-------------------
A responder is any session with a live subscription to the request's topic
that takes requests (``GroupEngine.responders(topic)``, patterns included; a
subscription made with ``requests=False`` consumes events only). The broker picks
one per request, round robin per topic over the distinct sessions, and
forwards the Request under an id of its own (unique across the broker, so a
responder sees no clash between two requesters' ids). The route
``broker id -> (requester session, requester's id)`` is kept until:

* the responder replies: the Reply is relayed under the requester's id;
* ``timeout_ms`` passes: the requester gets ``Error(request_timeout)`` (it
  may have given up already; a late Reply is then dropped);
* the responder's session closes: the requester gets
  ``Error(responder_gone)`` at once rather than waiting for the timeout;
* the requester's session closes: the route is dropped, and so is the reply.

Nothing is persisted: a broker restart loses requests in flight, and their
requesters time out. With ``reply_to`` set, the responder publishes its reply
to that topic, durably, so the broker keeps no route for it.

Each session may have at most ``max_in_flight`` requests awaiting replies,
which bounds the routing table whatever the timeouts.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Final

from tidings.storage.log import Clock

MAX_IN_FLIGHT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Route:
    """A forwarded request awaiting its reply."""

    broker_id: int
    requester: str
    request_id: int
    responder: str
    topic: str
    deadline: int


class RequestRouter:
    """Routes of requests in flight. Pure bookkeeping: the caller sends the frames."""

    def __init__(self, clock: Clock, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._clock = clock
        self.max_in_flight = max_in_flight
        self._routes: dict[int, Route] = {}
        self._deadlines: list[tuple[int, int]] = []  # (deadline, broker id); stale entries skipped
        self._per_session: dict[str, int] = {}
        self._turn: dict[str, int] = {}
        self._next_id = 1

    def __repr__(self) -> str:
        return f"<RequestRouter in_flight={len(self._routes)} next_deadline={self.next_deadline()}>"

    def __len__(self) -> int:
        return len(self._routes)

    def choose(self, topic: str, responders: list[str]) -> str | None:
        """One of ``responders`` (distinct, in a stable order) for ``topic``, round robin; None if none."""
        if not responders:
            return None
        turn = self._turn.get(topic, 0)
        self._turn[topic] = turn + 1
        return responders[turn % len(responders)]

    def full(self, requester: str) -> bool:
        return self._per_session.get(requester, 0) >= self.max_in_flight

    def open(self, requester: str, request_id: int, responder: str, topic: str, timeout_ms: int) -> int:
        """Record a route; returns the broker's id to forward the Request under."""
        broker_id = self._next_id
        self._next_id += 1
        deadline = self._clock() + timeout_ms
        self._routes[broker_id] = Route(broker_id, requester, request_id, responder, topic, deadline)
        heapq.heappush(self._deadlines, (deadline, broker_id))
        self._per_session[requester] = self._per_session.get(requester, 0) + 1
        return broker_id

    def reply(self, responder: str, broker_id: int) -> Route | None:
        """The route a Reply completes, or None (late, unknown, or not this responder's to answer)."""
        route = self._routes.get(broker_id)
        if route is None or route.responder != responder:
            return None
        self._close(route)
        return route

    def expire(self) -> list[Route]:
        """Routes past their deadline, removed."""
        now = self._clock()
        expired: list[Route] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, broker_id = heapq.heappop(self._deadlines)
            route = self._routes.get(broker_id)
            if route is not None:
                self._close(route)
                expired.append(route)
        return expired

    def next_deadline(self) -> int | None:
        while self._deadlines and self._deadlines[0][1] not in self._routes:
            heapq.heappop(self._deadlines)
        return self._deadlines[0][0] if self._deadlines else None

    def session_closed(self, session_id: str) -> list[Route]:
        """Drop the session's routes; returns those whose *responder* it was (their requesters wait)."""
        orphaned: list[Route] = []
        for route in [r for r in self._routes.values() if session_id in (r.requester, r.responder)]:
            self._close(route)
            if route.responder == session_id and route.requester != session_id:
                orphaned.append(route)
        self._per_session.pop(session_id, None)
        return orphaned

    def _close(self, route: Route) -> None:
        del self._routes[route.broker_id]
        left = self._per_session.get(route.requester, 1) - 1
        if left > 0:
            self._per_session[route.requester] = left
        else:
            self._per_session.pop(route.requester, None)
