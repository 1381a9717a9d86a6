"""Consumer groups and topics on the server: creating, positioning, resetting, reading positions.

A Tidings group is a Redis consumer group of the same name on each
partition stream. It is created (``XGROUP CREATE ... MKSTREAM``) at the
start position only when missing, so ``start`` applies to a new group only:

============  ==============================================================
start         group position (the id of the last entry counted as delivered)
============  ==============================================================
earliest      ``0-0``
latest        ``$`` (the stream's last id when the group is created)
offset ``o``  ``<ms of o>-<o - 1>`` (``scripts.START_ID``), clamped to what
              is retained
time ``T``    ``<T ms - 1>-<2**64 - 1>`` (``keys.time_start_id``)
============  ==============================================================

A group's mode is recorded in ``P{T}:modes`` on its first subscribe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from tidings.backends.base import GroupMode, StartPosition
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.errors import is_busy_group, is_no_group
from tidings.backends.redis.keys import Keys, StreamId, meta_pattern, time_start_id, topic_of_meta
from tidings.backends.redis.publisher import Topics
from tidings.backends.redis.retry import retrying
from tidings.backends.redis.scripts import Scripts
from tidings.errors import GroupModeConflict, TopicExists


class Groups:
    """Group and topic administration over one client."""

    def __init__(
        self, client: Redis, scripts: Scripts, topics: Topics, config: RedisConfig, url: str
    ) -> None:
        self._client, self._scripts, self._topics = client, scripts, topics
        self._config, self._url = config, url

    def _keys(self, topic: str) -> Keys:
        return Keys(self._config.prefix, topic)

    async def _retrying(self, call: Any, what: str) -> Any:
        return await retrying(call, what, url=self._url, deadline=self._config.reconnect_timeout)

    async def check_mode(self, topic: str, group: str, mode: GroupMode) -> None:
        """``GroupModeConflict`` unless ``group`` is new on ``topic`` or has ``mode``: a group read both
        ways would lose its order per key (shared members read partitions that a partitioned one owns)."""
        modes = self._keys(topic).modes

        async def check() -> str | None:
            await self._client.hsetnx(modes, group, mode)
            recorded = await self._client.hget(modes, group)
            return None if recorded is None else _text(recorded)

        recorded = await self._retrying(check, f"joining group {group!r} on {topic!r}")
        if recorded is not None and recorded != mode:
            raise GroupModeConflict(f"group {group!r} on {topic!r} is {recorded}, not {mode}")

    async def create(self, topic: str, group: str, partition: int, start: StartPosition) -> None:
        """Create ``group`` on one partition at ``start``, unless it exists."""
        stream = self._keys(topic).stream(partition)

        async def create() -> None:
            position = await self._position(stream, start)
            try:
                await self._client.xgroup_create(stream, group, id=position, mkstream=True)
            except redis_errors.ResponseError as exc:
                if not is_busy_group(exc):
                    raise

        await self._retrying(create, f"creating group {group!r} on {topic!r}")

    async def _position(self, stream: str, start: StartPosition) -> str:
        if start == "earliest":
            return "0-0"
        if start == "latest":
            return "$"
        if isinstance(start, datetime):
            return time_start_id(start)
        return _text(await self._scripts.start_id(keys=[stream], args=[start]))

    async def create_topic(self, topic: str, partitions: int) -> None:
        created, _ = await self._retrying(
            lambda: self._topics.create(topic, partitions), f"creating topic {topic!r}"
        )
        if not created:
            raise TopicExists(f"topic {topic!r} exists on {self._url}")

    async def reset(self, group: str, topic: str, to: StartPosition) -> None:
        """``XGROUP SETID`` on every partition (creating the group where missing); what was pending is
        settled and delays are forgotten, as the group now starts over from ``to``."""
        keys = self._keys(topic)
        partitions = await self._topics.partitions(topic, create=False)

        async def reset() -> None:
            for partition in range(partitions):
                stream = keys.stream(partition)
                position = await self._position(stream, to)
                try:
                    await self._client.xgroup_setid(stream, group, position)
                except redis_errors.ResponseError as exc:
                    if not is_no_group(exc):
                        raise
                    await self._client.xgroup_create(stream, group, id=position, mkstream=True)
                await self._scripts.reset(keys=[stream, keys.delay(group, partition)], args=[group])

        await self._retrying(reset, f"resetting group {group!r} on {topic!r}")

    async def list_topics(self) -> dict[str, int]:
        """Every topic under the prefix (a meta hash each), with its partition count."""

        async def scan() -> list[str]:
            found = []
            async for key in self._client.scan_iter(
                match=meta_pattern(self._config.prefix), count=1000, _type="HASH"
            ):
                topic = topic_of_meta(self._config.prefix, _text(key))
                if topic is not None:
                    found.append(topic)
            return sorted(found)

        names: list[str] = await self._retrying(scan, "listing the topics")
        return {topic: await self._topics.partitions(topic, create=False) for topic in names}

    async def end_offsets(self, topic: str) -> dict[int, int]:
        keys = self._keys(topic)
        partitions = await self._topics.partitions(topic, create=False)

        async def read_ends() -> dict[int, int]:
            ends: dict[int, int] = {}
            for partition in range(partitions):
                last: Any = await self._client.xrevrange(keys.stream(partition), count=1)
                ends[partition] = StreamId.parse(last[0][0]).offset + 1 if last else 0
            return ends

        result: dict[int, int] = await self._retrying(read_ends, f"reading the end of {topic!r}")
        return result

    async def committed(self, group: str, topic: str) -> dict[int, int]:
        """Per partition, the offset below which ``group`` settled everything (``scripts.COMMITTED``)."""
        keys = self._keys(topic)
        partitions = await self._topics.partitions(topic, create=False)

        async def read_offsets() -> dict[int, int]:
            offsets: dict[int, int] = {}
            for partition in range(partitions):
                committed = int(await self._scripts.committed(keys=[keys.stream(partition)], args=[group]))
                if committed >= 0:  # -1: the group does not exist on this partition
                    offsets[partition] = committed
            return offsets

        result: dict[int, int] = await self._retrying(read_offsets, f"reading group {group!r} on {topic!r}")
        return result


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
