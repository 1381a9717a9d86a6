"""The I/O of partition ownership: running ``scripts.COORDINATE`` for one member of a partitioned group.

``ownership.Ownership`` decides (pure state); this module runs the rounds
and tells the subscription (a ``Member``) what to do: claim and start
reading a partition it took, forget the entries not yet handed out of a
partition it stopped reading. ``join`` runs rounds until the member owns
its share (or ``rebalance_timeout``); ``run`` renews every
``rebalance_interval``; ``leave`` gives everything up at once.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.errors import retryable, translate
from tidings.backends.redis.keys import Keys
from tidings.backends.redis.ownership import Ownership
from tidings.backends.redis.scripts import Scripts
from tidings.errors import SubscriptionClosed, TidingsError


class Member(Protocol):
    """What a coordinator needs from its subscription."""

    def reads(self) -> tuple[int, int]:
        """How many reads were started, and how many have returned."""
        ...

    def unsettled_partitions(self) -> set[int]: ...
    def forget(self, partitions: set[int]) -> None: ...
    async def take(self, partition: int) -> None:
        """Claim what is pending on a partition just taken, before reading it."""
        ...

    def reading_changed(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    def fail(self, error: TidingsError) -> None: ...


class Coordinator:
    """Renews, takes and releases one member's partitions of one topic."""

    def __init__(
        self,
        *,
        scripts: Scripts,
        keys: Keys,
        group: str,
        consumer: str,
        config: RedisConfig,
        url: str,
        ownership: Ownership,
        member: Member,
    ) -> None:
        self._scripts, self._keys, self._group, self._consumer = scripts, keys, group, consumer
        self._config, self._url = config, url
        self._ownership, self._member = ownership, member

    async def join(self) -> None:
        """Run rounds until this member reads its share, or ``rebalance_timeout`` passed."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._config.rebalance_timeout
        while True:
            await self._round()
            if self._ownership.settled_in or loop.time() >= give_up:
                return
            await asyncio.sleep(self._config.rebalance_interval)

    async def run(self) -> None:
        """A round every ``rebalance_interval``; a lost server is waited out (leases may lapse meanwhile).

        Ends when the member closes (``Member.closed``) or the task is cancelled."""
        while not self._member.closed:
            await asyncio.sleep(self._config.rebalance_interval)
            try:
                await self._round()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not retryable(exc):
                    what = f"coordinating group {self._group!r}"
                    self._member.fail(SubscriptionClosed(str(translate(exc, what, url=self._url))))
                    return

    async def leave(self) -> None:
        """Leave the members and delete this member's leases: the others take its partitions at once."""
        await self._coordinate(leaving=True)

    async def _round(self) -> None:
        owned, assigned = await self._coordinate(leaving=False)
        taken, dropped = self._ownership.step(owned, assigned, self._member.reads()[0])
        if dropped:
            self._member.forget(dropped)
        for partition in sorted(taken):
            await self._member.take(partition)
        self._ownership.started(taken)
        if taken:
            self._member.reading_changed()

    async def _coordinate(self, *, leaving: bool) -> tuple[list[int], list[int]]:
        partitions = self._ownership.partitions
        _, reads_done = self._member.reads()
        owned, assigned = await self._scripts.coordinate(
            keys=[
                self._keys.members(self._group),
                *(self._keys.lease(self._group, p) for p in range(partitions)),
            ],
            args=[
                self._consumer,
                int(self._config.lease_ttl * 1000),
                self._ownership.releasable(reads_done, self._member.unsettled_partitions()),
                "1" if leaving else "0",
            ],
        )
        return [int(p) for p in owned], [int(p) for p in assigned]
