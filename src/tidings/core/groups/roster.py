"""The roster: every group and every subscription, by name, by key and by session.

Separate from the engine so that the bookkeeping of who exists (and the
cleanup when they go) lives in one place. A subscription is forgotten when
it reaches GONE (``membership.TRANSITIONS``). A group is forgotten when it
has neither members nor progress, so group names that come and go cost
nothing.
"""

from __future__ import annotations

from tidings.core.groups.membership import Group, Subscription, SubscriptionEvent, SubscriptionState
from tidings.core.groups.values import MemberKey
from tidings.errors import UnknownGroup

_REMEMBERED_TOPICS = 10_000


class Roster:
    __slots__ = ("_responders", "_sessions", "groups", "subs")

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.subs: dict[MemberKey, Subscription] = {}  # ACTIVE and LEAVING
        self._sessions: dict[str, set[MemberKey]] = {}
        self._responders: dict[str, list[str]] = {}
        """``responder_sessions`` per topic asked, until a subscription comes, goes or leaves."""

    def __repr__(self) -> str:
        return (
            f"Roster(groups={len(self.groups)}, subscriptions={len(self.subs)}, "
            f"sessions={len(self._sessions)})"
        )

    def group(self, name: str) -> Group:
        """The group called ``name``, created empty if need be."""
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = Group(name)
        return group

    def known(self, name: str) -> Group:
        """The group called ``name``, which must have members or progress (``UnknownGroup``)."""
        group = self.groups.get(name)
        if group is None or not (group.members or group.states):
            raise UnknownGroup(f"no consumer group {name!r}")
        return group

    def get(self, key: MemberKey | None) -> Subscription | None:
        return None if key is None else self.subs.get(key)

    def active(self) -> list[Subscription]:
        """ACTIVE subscriptions, sorted by key."""
        return [sub for _, sub in sorted(self.subs.items()) if sub.active]

    def of_session(self, session_id: str) -> list[Subscription]:
        return [self.subs[key] for key in sorted(self._sessions.get(session_id, ()))]

    def responder_sessions(self, topic: str) -> list[str]:
        """Sessions with an ACTIVE subscription covering ``topic`` that takes requests: distinct, sorted.

        Asked once per request, so it is remembered: without, each request
        would walk every subscription of the broker.
        """
        sessions = self._responders.get(topic)
        if sessions is None:
            if len(self._responders) >= _REMEMBERED_TOPICS:  # requests to ever new topics: stay bounded
                self._responders.clear()
            found = {
                key[0] for key, sub in self.subs.items() if sub.active and sub.requests and sub.covers(topic)
            }
            sessions = self._responders[topic] = sorted(found)
        return sessions

    def move(self, sub: Subscription, event: SubscriptionEvent) -> None:
        """Move ``sub`` on ``event``: every change of state goes through here, to keep the answers above."""
        sub.move(event)
        self._responders.clear()

    def add(self, sub: Subscription) -> None:
        self._responders.clear()
        group = self.group(sub.group)
        group.mode = sub.mode
        group.members[sub.key] = sub
        self.subs[sub.key] = sub
        self._sessions.setdefault(sub.key[0], set()).add(sub.key)

    def forget(self, sub: Subscription, event: SubscriptionEvent) -> None:
        """Move ``sub`` to GONE on ``event`` and drop it everywhere."""
        self.move(sub, event)
        group = self.groups[sub.group]
        del group.members[sub.key]
        del self.subs[sub.key]
        session = self._sessions.get(sub.key[0])
        if session is not None:
            session.discard(sub.key)
            if not session:
                del self._sessions[sub.key[0]]
        if not group.members:
            group.mode = None  # an empty group takes the mode of its next subscription
            self.prune(group)

    def forget_if_drained(self, sub: Subscription) -> None:
        """A LEAVING subscription goes once it holds no message any more."""
        if sub.state is SubscriptionState.LEAVING and not self.groups[sub.group].leases_of(sub.key):
            self.forget(sub, SubscriptionEvent.DRAINED)

    def prune(self, group: Group) -> None:
        if not group.members and not group.states and self.groups.get(group.name) is group:
            del self.groups[group.name]
