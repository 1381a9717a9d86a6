"""A subscription to a topic pattern: one subscription per matching topic, merged, joined by new topics.

Each topic is a stream of its own, so a pattern (``shop.*``, ``shop.>``) is
served by a ``NatsSubscription`` per matching topic, all in the same group,
whose deliveries are merged into one iteration (each names its own topic).

Which topics match. At start, the streams whose subjects fall under
``naming.pattern_filter(pattern)`` (``$JS.API.STREAM.NAMES``), each checked
again with ``topic_matches``; they start at the subscription's ``start``.
Later, JetStream's stream-created advisory
(``$JS.EVENT.ADVISORY.STREAM.CREATED.<stream>``, published in the account)
announces every new stream at once; a matching one joins from its first
message (``earliest``), so nothing stored before the join is missed. The
listing is also repeated every ``RESCAN`` seconds and after a reconnect, in
case an advisory was missed while the connection was away.

Requests need no streams: the pattern's request subject is a NATS wildcard
(``tidings-request.shop.*``), queue-subscribed like a topic's.

Merging. Deliveries are handed out oldest first by the server's
``append_time``. While a topic is joining, and for ``CATCH_UP`` seconds
after, they are held back, so the new topic's stored messages take their
place by time instead of coming after messages the other topics stored
later. Order within a partition is kept (its append times do not decrease;
ties keep arrival order). Prefetch applies per matching topic (each member
subscription has its own window).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Final

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub
from nats.js import JetStreamContext

from tidings.backends.base import StartPosition
from tidings.backends.nats import naming
from tidings.backends.nats.delivery import NatsDelivery, NatsRequest
from tidings.backends.nats.errors import retrying, translated
from tidings.backends.nats.streams import TOPIC_METADATA
from tidings.backends.nats.subscription import RESPONDERS, NatsSubscription
from tidings.errors import TidingsError
from tidings.protocol.names import topic_matches

log = logging.getLogger("tidings.backends.nats")

RESCAN: Final = 10.0
CATCH_UP: Final = 0.1
"""Seconds deliveries wait, after a topic joined, for its first messages to arrive and be merged by time."""
STREAM_CREATED: Final = "$JS.EVENT.ADVISORY.STREAM.CREATED"
OpenTopic = Callable[[str, StartPosition], Awaitable[NatsSubscription]]
"""``open(topic, start)``: a member subscription of the same group to one concrete topic."""


class PatternSubscription:
    """The deliveries of every topic matching ``pattern``, for one member of ``group``."""

    def __init__(
        self,
        nc: NatsClient,
        js: JetStreamContext,
        pattern: str,
        group: str,
        *,
        start: StartPosition,
        requests: bool,
        open_topic: OpenTopic,
        patience: float,
    ) -> None:
        self._nc = nc
        self._js = js
        self._pattern = pattern
        self._group = group
        self._start = start
        self._takes_requests = requests
        self._open_topic = open_topic
        self._patience = patience
        self._members: dict[str, NatsSubscription] = {}
        self._pumps: set[asyncio.Task[None]] = set()
        self._ready: list[tuple[datetime, int, NatsDelivery]] = []  # a heap, by append time
        self._requests: collections.deque[NatsRequest] = collections.deque()
        self._failure: TidingsError | None = None
        self._changed = asyncio.Event()
        self._arrivals = itertools.count()
        self._hold_until = 0.0
        self._subs: list[NatsSub] = []
        self._joining: set[str] = set()
        self._rescan: asyncio.Task[None] | None = None
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        topics = sorted(self._members)
        return f"<PatternSubscription {self._pattern} group={self._group!r} {state} topics={topics}>"

    @property
    def topic(self) -> str:
        return self._pattern

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def group(self) -> str:
        return self._group

    async def start(self) -> None:
        with translated(f"subscribing {self._group!r} to {self._pattern!r}"):
            self._subs.append(await self._nc.subscribe(f"{STREAM_CREATED}.*", cb=self._on_created))
            if self._takes_requests:
                self._subs.append(
                    await self._nc.subscribe(
                        naming.request_subject(self._pattern), queue=RESPONDERS, cb=self._on_request
                    )
                )
            await self._nc.flush()
        await self._scan(self._start)
        self._rescan = asyncio.create_task(self._rescan_forever(), name=f"nats-pattern-{self._pattern}")

    def reconnected(self) -> None:
        """Look for streams created while away (the members hear of the reconnect from the backend)."""
        task = asyncio.create_task(self._scan_quietly())
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in [self._rescan, *self._pumps]:
            if task is not None:
                task.cancel()
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        for member in list(self._members.values()):
            await member.close()
        self._changed.set()

    def __aiter__(self) -> PatternSubscription:
        return self

    async def __anext__(self) -> NatsDelivery | NatsRequest:
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._requests:
                return self._requests.popleft()
            if self._failure is not None:
                raise self._failure
            now = time.monotonic()
            holding = bool(self._joining) or now < self._hold_until
            if self._ready and not holding:
                return heapq.heappop(self._ready)[2]
            self._changed.clear()
            timeout = None if not self._ready or self._joining else self._hold_until - now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._changed.wait()

    # -- which topics ------------------------------------------------------------------

    async def _scan(self, start: StartPosition) -> None:
        """Join every existing stream that matches (streams already joined are left alone)."""
        offset, names = 0, list[str]()
        while True:
            body = json.dumps({"subject": naming.pattern_filter(self._pattern), "offset": offset}).encode()

            async def ask(body: bytes = body) -> Msg:
                return await self._nc.request("$JS.API.STREAM.NAMES", body, timeout=5.0)

            page = await retrying(f"listing the topics of {self._pattern!r}", ask, self._patience)
            answer = json.loads(page.data)
            names += answer.get("streams") or []
            offset += int(answer.get("limit") or 0)
            if not answer.get("streams") or offset >= int(answer.get("total") or 0):
                break
        await asyncio.gather(*(self._join_stream(stream, start) for stream in names))

    async def _join_stream(self, stream: str, start: StartPosition) -> None:
        if not stream.startswith("TIDINGS_"):
            return
        try:
            with translated(f"reading stream {stream}"):
                info = await self._js.stream_info(stream)
        except TidingsError as exc:
            log.debug("%r: %s", self, exc)
            return
        metadata = info.config.metadata or {}
        topic = metadata.get(TOPIC_METADATA)
        if topic is None and info.config.subjects:
            topic = naming.topic_of_subject(info.config.subjects[0])
        if not topic or not topic_matches(self._pattern, topic):
            return
        if topic in self._members or topic in self._joining or self._closed:
            return
        self._joining.add(topic)  # topics join in parallel: a slow join must not delay the next topic
        try:
            member = await self._open_topic(topic, start)
        finally:
            self._joining.discard(topic)
            # Its first messages are on their way: give them a moment to take their place by time.
            self._hold_until = time.monotonic() + CATCH_UP
            self._changed.set()
        if self.closed:  # while it joined
            await member.close()
            return
        self._members[topic] = member
        pump = asyncio.create_task(self._pump(member), name=f"nats-pattern-{self._pattern}-{topic}")
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)

    async def _pump(self, member: NatsSubscription) -> None:
        try:
            async for delivery in member:
                if isinstance(delivery, NatsDelivery):
                    stamp = delivery.append_time or datetime.now(UTC)
                    heapq.heappush(self._ready, (stamp, next(self._arrivals), delivery))
                else:
                    self._requests.append(delivery)
                self._changed.set()
        except TidingsError as exc:
            self._failure = exc
            self._changed.set()

    async def _on_created(self, msg: Msg) -> None:
        stream = msg.subject.rpartition(".")[2]
        task = asyncio.create_task(self._join_quietly(stream))
        self._pumps.add(task)
        task.add_done_callback(self._pumps.discard)

    async def _join_quietly(self, stream: str) -> None:
        try:
            await self._join_stream(stream, "earliest")
        except TidingsError as exc:
            log.warning("%r: joining %s failed: %s (retried by the next scan)", self, stream, exc)

    async def _scan_quietly(self) -> None:
        try:
            await self._scan("earliest")
        except TidingsError as exc:
            log.debug("%r: scan failed: %s", self, exc)

    async def _rescan_forever(self) -> None:
        while not self._closed:
            await asyncio.sleep(RESCAN)
            await self._scan_quietly()

    async def _on_request(self, msg: Msg) -> None:
        if not self._closed:
            self._requests.append(NatsRequest(msg, naming.topic_of_request(msg.subject), self._nc))
            self._changed.set()
