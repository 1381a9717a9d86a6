"""``client.admin``: topics and consumer groups, managed through the broker.

Each method is one AdminRequest/AdminResponse exchange, and returns the
protocol's own frozen value types (``TopicDescription``, ``GroupDescription``,
...; see ``tidings.protocol.admin``), which already say what every field
means. A refusal raises ``BrokerError`` with the broker's code
(``unknown_topic``, ``topic_exists``, ``not_authorized``, ...).

Reads (describe, list) are retried once the client has reconnected, because
repeating them is harmless. Changes (create, delete, reset) are not: if the
connection breaks under them, ``ConnectionLost`` says the outcome is
unknown, and the caller decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from tidings.client.channel import Channel, call
from tidings.client.config import check_name, check_pattern, check_topic
from tidings.client.message import StartIn, start_position
from tidings.errors import BrokerError
from tidings.protocol import (
    AdminRequest,
    AdminRequestBody,
    AdminResponse,
    AdminResponseBody,
    Announce,
    Announced,
    CreateTopic,
    DeleteTopic,
    DescribeGroup,
    DescribeTopic,
    GroupDescription,
    GroupList,
    GroupReset,
    GroupSummary,
    HandledType,
    ListGroups,
    ListTopics,
    PublishedType,
    ResetGroup,
    TopicDeleted,
    TopicDescription,
    TopicList,
)

B = TypeVar("B", bound=AdminResponseBody)


class Admin:
    """Administrative operations. Reach it as ``client.admin``."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel

    def __repr__(self) -> str:
        return f"<Admin of {self._channel!r}>"

    async def create_topic(
        self, name: str, partitions: int = 1, config: dict[str, str] | None = None
    ) -> TopicDescription:
        """Create ``name`` with ``partitions`` partitions. ``config``: per-topic settings, as strings."""
        if partitions < 1:
            raise ValueError(f"a topic has at least one partition, not {partitions}")
        body = CreateTopic(name=check_topic(name), partitions=partitions, config=dict(config or {}))
        return await self._ask(body, TopicDescription, f"create topic {name}")

    async def delete_topic(self, name: str) -> TopicDeleted:
        return await self._ask(DeleteTopic(name=check_topic(name)), TopicDeleted, f"delete topic {name}")

    async def describe_topic(self, name: str) -> TopicDescription:
        """Partitions (retained offsets ``start_offset..end_offset``) and config of ``name``."""
        body = DescribeTopic(name=check_topic(name))
        return await self._ask(body, TopicDescription, f"describe topic {name}", retry=True)

    async def list_topics(self) -> tuple[str, ...]:
        answer = await self._ask(ListTopics(), TopicList, "list topics", retry=True)
        return answer.topics

    async def list_groups(self, topic: str | None = None) -> tuple[GroupSummary, ...]:
        """Every consumer group, or those subscribed to ``topic``: members and total lag."""
        body = ListGroups(topic=None if topic is None else check_pattern(topic))
        answer = await self._ask(body, GroupList, "list groups", retry=True)
        return answer.groups

    async def describe_group(self, group: str) -> GroupDescription:
        """Members, and per partition the committed offset, end offset, lag and messages in flight."""
        body = DescribeGroup(group=check_name(group, "group"))
        return await self._ask(body, GroupDescription, f"describe group {group}", retry=True)

    async def reset_group(self, group: str, topic: str, to: StartIn = "earliest") -> GroupReset:
        """Move ``group``'s position on every partition of ``topic``: earliest, latest, offset or time."""
        body = ResetGroup(group=check_name(group, "group"), topic=check_topic(topic), to=start_position(to))
        return await self._ask(body, GroupReset, f"reset group {group} on {topic}")

    async def announce(
        self, service: str, publishes: Iterable[PublishedType] = (), subscribes: Iterable[HandledType] = ()
    ) -> Announced:
        """Tell the broker ``service``'s typed events (for its flow map); replaces the last announcement.

        Retried after a reconnect: announcing twice is the same as once.
        """
        body = Announce(
            service=check_name(service, "service"), publishes=tuple(publishes), subscribes=tuple(subscribes)
        )
        return await self._ask(body, Announced, f"announce {service}", retry=True)

    async def _ask(self, body: AdminRequestBody, expect: type[B], what: str, *, retry: bool = False) -> B:
        answer = await call(
            self._channel,
            lambda request_id: AdminRequest(request_id=request_id, body=body),
            AdminResponse,
            what=what,
            retry=retry,
        )
        if not isinstance(answer.body, expect):
            raise BrokerError(
                f"{what}: the broker answered {type(answer.body).__name__}, expected {expect.__name__}"
            )
        return answer.body
