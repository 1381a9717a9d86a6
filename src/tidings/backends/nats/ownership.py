"""Which member of a partitioned group pulls which partition: membership by heartbeat, ownership by lock.

JetStream gives a consumer's messages to whichever client pulls, so order
per key needs one puller per partition. Each partition of a topic has its
own durable consumer per group (``<group>_p<N>``), and a member pulls it
only while it holds that partition's *lock*.

Membership. Members announce themselves on the core NATS subject
``tidings-group.<stream>.<group>`` every ``member_ttl / 4`` seconds, saying
which partitions they hold; a member not heard from for ``member_ttl`` is
gone. A newcomer announces at once, and everyone who hears a new member
answers at once, so views agree within a round trip.

Assignment (``assign``, pure): members sorted by id (ids start with the
join time, so older members sort first), partition ``p`` to member
``p mod n``.

Locks make ownership exclusive even while views disagree. A lock is a key
``<stream>.<group>.p<N>`` in the KV bucket ``TIDINGS_LOCKS``, *created*
(only if absent, atomically) by the member taking the partition, refreshed
(compare-and-set on its revision) every ``member_ttl / 3`` seconds, and
deleted on release. The bucket's ``max_age`` is ``member_ttl``, so the lock
of a crashed member lapses by itself and its partitions move on within about
``member_ttl`` seconds. A member gives a partition up (``release``) by
stopping its puller, handing back what it had buffered, waiting for what the
application holds to be settled (at most the ack deadline), and only then
deleting the lock: the next owner never pulls while the last one still holds
a message of that partition. A member whose lock refresh fails (it was away
longer than ``member_ttl``) stops pulling that partition at once.

``start`` returns when the member holds what the assignment gives it (or
after ``member_ttl``), so a publisher that starts after ``subscribe``
returned sees each key go to one member.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import JetStreamContext, api

log = logging.getLogger("tidings.backends.nats")

LOCKS_BUCKET: Final = "TIDINGS_LOCKS"
GROUP_ROOT: Final = "tidings-group"
JOIN_WAIT: Final = 0.15
"""Seconds a newcomer listens for the members already there before it takes partitions."""
TICK: Final = 0.05


def assign(members: Sequence[str], partitions: int) -> dict[str, set[int]]:
    """Partition ``p`` to the ``p mod n``-th member in sorted order (pure, the same on every member)."""
    ordered = sorted(members)
    owned: dict[str, set[int]] = {member: set() for member in ordered}
    for partition in range(partitions):
        owned[ordered[partition % len(ordered)]].add(partition)
    return owned


def new_member_id() -> str:
    """Sorts by join time: the members there first keep their partitions' positions in the order."""
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


async def locks_bucket(js: JetStreamContext, ttl: float, replicas: int) -> Any:
    """The KV bucket of partition locks (created by the first member that needs it)."""
    try:
        return await js.key_value(LOCKS_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(
            bucket=LOCKS_BUCKET,
            ttl=ttl,
            history=1,
            replicas=replicas,
            storage=api.StorageType.FILE,
            description="Tidings: which member of a partitioned group pulls which partition",
        )


class Ownership:
    """One member's part in a partitioned group: heartbeats, the assignment, its locks."""

    def __init__(
        self,
        nc: NatsClient,
        kv: Any,
        *,
        stream: str,
        group_token: str,
        partitions: int,
        member_ttl: float,
        acquire: Callable[[int], Awaitable[None]],
        release: Callable[[int], Awaitable[None]],
    ) -> None:
        self.me = new_member_id()
        self._nc = nc
        self._kv = kv
        self._stream = stream
        self._group_token = group_token
        self._partitions = partitions
        self._ttl = member_ttl
        self._acquire = acquire
        self._release = release
        self._subject = f"{GROUP_ROOT}.{stream}.{group_token}"
        self._members: dict[str, tuple[float, frozenset[int]]] = {}
        self._held: dict[int, int] = {}  # partition -> lock revision
        self._releasing: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stable = asyncio.Event()
        self._sub: NatsSub | None = None
        self._loop: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"<Ownership {self._stream}/{self._group_token} me={self.me} held={sorted(self._held)} "
            f"members={len(self._members) + 1}>"
        )

    @property
    def held(self) -> list[int]:
        return sorted(self._held)

    def _lock_key(self, partition: int) -> str:
        return f"{self._stream}.{self._group_token}.p{partition}"

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._subject, cb=self._on_heartbeat)
        await self._nc.flush()
        await self._announce()
        await asyncio.sleep(JOIN_WAIT)
        self._loop = asyncio.create_task(
            self._run(), name=f"nats-ownership-{self._stream}-{self._group_token}"
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._ttl):
                await self._stable.wait()

    async def close(self) -> None:
        self._closed = True
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await loop
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for partition in list(self._held):
            await self._give_up(partition)
        with contextlib.suppress(nats.errors.Error):
            await self._announce(bye=True)
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()

    def reconnected(self) -> None:
        self._wake.set()

    # -- heartbeats --------------------------------------------------------------------

    async def _announce(self, *, bye: bool = False) -> None:
        body = {"id": self.me, "held": sorted(self._held), "bye": bye}
        await self._nc.publish(self._subject, json.dumps(body).encode())

    async def _on_heartbeat(self, msg: Msg) -> None:
        try:
            body = json.loads(msg.data)
            member, held, bye = str(body["id"]), frozenset(int(p) for p in body["held"]), bool(body["bye"])
        except (ValueError, KeyError, TypeError):
            return
        if member == self.me:
            return
        if bye:
            self._members.pop(member, None)
        else:
            new = member not in self._members
            self._members[member] = (time.monotonic(), held)
            if new and not self._closed:
                with contextlib.suppress(nats.errors.Error):
                    await self._announce()  # so the newcomer knows us within a round trip
        self._wake.set()

    # -- the loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        next_beat = next_refresh = 0.0
        while not self._closed:  # checked too: asyncio.wait_for in 3.11 can swallow a cancellation
            now = time.monotonic()
            for member, (seen, _) in list(self._members.items()):
                if now - seen > self._ttl:
                    del self._members[member]
            try:
                if now >= next_refresh:
                    next_refresh = now + self._ttl / 3
                    await self._refresh()
                await self._rebalance()
                if now >= next_beat:
                    next_beat = now + self._ttl / 4
                    await self._announce()
            except (nats.errors.Error, TimeoutError) as exc:  # the server is away: try again next tick
                log.debug("%r: %s", self, exc)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(TICK if not self._stable.is_set() else self._ttl / 8):
                    await self._wake.wait()

    def _target(self) -> set[int]:
        return assign([self.me, *self._members], self._partitions)[self.me]

    async def _rebalance(self) -> None:
        target = self._target()
        for partition in set(self._held) - target - self._releasing:
            self._releasing.add(partition)
            task = asyncio.create_task(self._give_up(partition))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        claimed = {p for _, held in self._members.values() for p in held}
        for partition in sorted(target - set(self._held) - self._releasing - claimed):
            try:
                revision = await self._kv.create(self._lock_key(partition), self.me.encode())
            except nats.js.errors.KeyWrongLastSequenceError:
                continue  # someone still holds it
            self._held[partition] = revision
            await self._acquire(partition)
            await self._announce()
        if target == set(self._held):
            self._stable.set()
        else:
            self._stable.clear()

    async def _refresh(self) -> None:
        for partition, revision in list(self._held.items()):
            if partition in self._releasing:
                continue
            try:
                self._held[partition] = await self._kv.update(
                    self._lock_key(partition), self.me.encode(), last=revision
                )
            except nats.js.errors.KeyWrongLastSequenceError:
                log.warning(
                    "%r lost the lock of partition %d (away longer than %g s)", self, partition, self._ttl
                )
                self._held.pop(partition, None)
                await self._release(partition)

    async def _give_up(self, partition: int) -> None:
        """Stop pulling ``partition`` (after what the application holds is settled), then free its lock."""
        try:
            await self._release(partition)
            revision = self._held.pop(partition, None)
            if revision is not None:
                with contextlib.suppress(nats.errors.Error):
                    await self._kv.delete(self._lock_key(partition), last=revision)
            with contextlib.suppress(nats.errors.Error):
                await self._announce()
        finally:
            self._releasing.discard(partition)
            self._wake.set()
