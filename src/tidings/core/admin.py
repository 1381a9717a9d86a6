"""Administration: the AdminRequest bodies of ``tidings.protocol.admin``, answered from the core.

Topics are the registry's business, groups the engine's; this module only
dispatches and makes the side effects of a change reach everyone concerned:

* a created topic is announced to the engine (``topic_created``), so
  wildcard subscriptions start reading it;
* a deleted topic ends the subscriptions that named it: each gets an
  ``Unsubscribed`` with a reason (the engine says which), and the producers'
  state and round-robin counters for it are dropped.

A failure raises a ``BrokerError`` (``unknown_topic``, ``topic_exists``,
``invalid_config``, ...), which the caller turns into a request-scoped Error.
"""

from __future__ import annotations

from collections.abc import Callable

from tidings.core.groups import GroupEngine
from tidings.core.produce import ProducePath
from tidings.core.topics import TopicRegistry
from tidings.protocol.admin import (
    AdminRequestBody,
    AdminResponseBody,
    CreateTopic,
    DeleteTopic,
    DescribeGroup,
    DescribeTopic,
    ListGroups,
    ListTopics,
    ResetGroup,
    TopicDeleted,
    TopicList,
)

Unsubscriber = Callable[[str, int, str], None]
"""``(session_id, subscription_id, reason)``: tell a session its subscription ended."""


class Admin:
    def __init__(
        self, topics: TopicRegistry, engine: GroupEngine, produce: ProducePath, unsubscribed: Unsubscriber
    ) -> None:
        self.topics = topics
        self.engine = engine
        self.produce = produce
        self._unsubscribed = unsubscribed

    def __repr__(self) -> str:
        return f"<Admin {self.topics!r}>"

    def handle(self, body: AdminRequestBody) -> AdminResponseBody:
        if isinstance(body, CreateTopic):
            self.topics.create(body.name, body.partitions, body.config)
            return self.topics.describe(body.name)
        if isinstance(body, DeleteTopic):
            self.delete_topic(body.name)
            return TopicDeleted(name=body.name)
        if isinstance(body, DescribeTopic):
            return self.topics.describe(body.name)
        if isinstance(body, ListTopics):
            return TopicList(topics=tuple(self.topics.names()))
        if isinstance(body, ListGroups):
            return self.engine.list_groups(body.topic)
        if isinstance(body, DescribeGroup):
            return self.engine.describe_group(body.group)
        if isinstance(body, ResetGroup):
            self.topics.get(body.topic)
            return self.engine.reset_group(body.group, body.topic, body.to)
        raise AssertionError(f"unhandled admin body {type(body).__name__}")  # the union is closed

    def delete_topic(self, name: str) -> None:
        self.topics.delete(name)
        self.produce.topic_deleted(name)
        for session_id, subscription_id in self.engine.topic_deleted(name):
            self._unsubscribed(session_id, subscription_id, f"topic {name!r} was deleted")
