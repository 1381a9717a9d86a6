"""One pull loop on one JetStream consumer: as many messages as its window has room for, no more.

Theory of operation. One pull request is open at a time, on an inbox of the
puller's own, asking for ``room()`` messages (the subscription's
``prefetch`` minus what this puller delivered that is not settled yet), with
``expires`` (``config.pull_expires``) and idle heartbeats
(``config.heartbeat``). When it is filled, expires (status 408), or is cut
short (409: leadership change, server shutdown), the next one is sent once
there is room. Two missed heartbeats mean the request was lost (the server
restarted): it is renewed. While the connection is down no pull is sent.

``stop`` cancels the loop and drains the inbox, which also ends the open
request on the server (JetStream drops a pull whose reply subject has lost
its interest); messages that were already on their way are returned, so
the subscription hands them back before anyone else pulls the consumer.

The inbox is read through a callback into a deque of the puller's own, not
with ``next_msg``: nats-py's ``next_msg`` takes a message off its queue in a
task of its own, so a cancellation landing after that task finished and
before its caller resumed dropped the message (unacknowledged until its ack
deadline, then redelivered out of order) and left the queue's unfinished
count up, so the drain in ``stop`` waited for it forever. A callback appends
synchronously; the loop only waits for a signal, and cancelling a wait takes
nothing with it.

Unsubscribing is not the whole answer either: a message the server had
already handed to its sending side when the UNSUB arrived is dropped, yet
counted as delivered (it would come back after its ack deadline, out of
order). So ``stop`` first waits, briefly, for what the server said was on
its way to the open request: each delivery's reply subject carries how many
messages were still pending then, and the request how many it may still
bring. Only a message stored in the same instant as the stop can still miss.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Final

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub

from tidings.backends.nats.config import NatsConfig
from tidings.errors import SubscriptionClosed, TidingsError

log = logging.getLogger("tidings.backends.nats")

STRAGGLER_WAIT: Final = 0.05
"""Seconds ``stop`` waits for the next of the messages still owed to the open request before it gives up."""


class Puller:
    """Pulls one consumer of ``stream`` into ``accept``, within ``room()``."""

    def __init__(
        self,
        nc: NatsClient,
        stream: str,
        consumer: str,
        config: NatsConfig,
        *,
        connected: asyncio.Event,
        room: Callable[[Puller], int],
        accept: Callable[[Puller, Msg], None],
        failed: Callable[[TidingsError], None],
        consumer_exists: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.stream = stream
        self.consumer = consumer
        self._nc = nc
        self._config = config
        self._connected = connected
        self._room = room
        self._accept = accept
        self._failed = failed
        self._consumer_exists = consumer_exists
        self._inbox: NatsSub | None = None
        self._arrivals: deque[Msg] = deque()
        self._arrived = asyncio.Event()
        self._open_batch = 0
        """How many messages the open pull request may still bring (0: none is open)."""
        self._last_delivery: Msg | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._renew = asyncio.Event()
        self._stopping = False
        self.pulls = 0

    def __repr__(self) -> str:
        state = "running" if self._task is not None and not self._task.done() else "stopped"
        return f"<Puller {self.stream}/{self.consumer} {state} pulls={self.pulls}>"

    async def start(self) -> None:
        self._inbox = await self._nc.subscribe(self._nc.new_inbox(), cb=self._arrive)
        self._task = asyncio.create_task(self._run(), name=f"nats-pull-{self.stream}-{self.consumer}")

    def wake(self) -> None:
        """There may be room again (a settlement)."""
        self._wake.set()

    def renew(self) -> None:
        """The connection came back: whatever request was open is gone; send a new one."""
        self._renew.set()
        self._wake.set()

    async def stop(self) -> list[Msg]:
        """Stop pulling; returns the messages that were still on their way (to be handed back).

        The inbox is *drained*, not dropped: UNSUB, then a round trip, so the server has sent all it
        will, and what arrived meanwhile is collected rather than lost (a lost one would come back
        only after its ack deadline, behind newer messages, out of order for the next owner). A
        drain that cannot finish within ``request_timeout`` (the connection is down) is cut short:
        the server forgets a disconnected client's pulls anyway.
        """
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        inbox, self._inbox = self._inbox, None
        if inbox is None:
            return []
        await self._collect_owed()
        try:
            await asyncio.wait_for(inbox.drain(), self._config.request_timeout)  # type: ignore[no-untyped-call]
        except (nats.errors.Error, TimeoutError):
            with contextlib.suppress(nats.errors.Error):
                await inbox.unsubscribe()
        leftovers = [msg for msg in self._arrivals if msg.reply]
        self._arrivals.clear()
        return leftovers

    async def _arrive(self, msg: Msg) -> None:
        if msg.reply:
            self._open_batch -= 1
            self._last_delivery = msg
        elif (msg.headers or {}).get("Status", "") != "100":
            self._open_batch = 0  # a status other than a heartbeat ends the request
        self._arrivals.append(msg)
        self._arrived.set()

    def _owed(self) -> int:
        """Messages the server said were on their way to the open request and that have not arrived."""
        last = self._last_delivery
        if self._open_batch <= 0 or last is None or not self._connected.is_set():
            return 0
        try:
            pending = last.metadata.num_pending
        except (nats.errors.NotJSMessageError, ValueError, IndexError):  # not a JetStream reply: no figure
            return 0
        return min(self._open_batch, pending)

    async def _collect_owed(self) -> None:
        """Let the owed messages arrive before UNSUB (module docstring); ``request_timeout`` at most."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._config.request_timeout
        while self._owed() > 0 and loop.time() < deadline:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), STRAGGLER_WAIT)
            except TimeoutError:
                return

    async def _next(self, timeout: float) -> Msg | None:
        """The next message of the inbox, or None after ``timeout`` seconds without one."""
        if not self._arrivals:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)
        return self._arrivals.popleft() if self._arrivals else None

    async def _run(self) -> None:
        try:
            while not self._stopping:  # checked too: asyncio.wait_for in 3.11 can swallow a cancellation
                await self._connected.wait()
                self._renew.clear()
                room = self._room(self)
                if room <= 0:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                await self._pull(room)
        except asyncio.CancelledError:
            raise
        except TidingsError as exc:
            self._failed(exc)
        except Exception as exc:  # a bug or an unexpected library error: end the iteration with it
            log.exception("pulling %s/%s failed", self.stream, self.consumer)
            self._failed(SubscriptionClosed(f"{self!r}: {exc}", reason="internal_error"))

    async def _pull(self, batch: int) -> None:
        """One pull request, read until it is filled, ends or is lost."""
        inbox = self._inbox
        assert inbox is not None
        self.pulls += 1
        request = {
            "batch": batch,
            "expires": int(self._config.pull_expires * 1e9),
            "idle_heartbeat": int(self._config.heartbeat * 1e9),
        }
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{self.consumer}"
        self._open_batch, self._last_delivery = batch, None
        try:
            await self._nc.publish(subject, json.dumps(request).encode(), reply=inbox.subject)
        except nats.errors.Error:
            self._open_batch = 0
            await asyncio.sleep(self._config.reconnect_wait)
            return
        remaining = batch
        while remaining > 0 and not self._renew.is_set() and not self._stopping:
            msg = await self._next(self._config.heartbeat * 2)
            if msg is None:
                self._open_batch = 0
                return  # no heartbeat: the request is gone (or the connection is)
            if msg.reply:
                remaining -= 1
                self._accept(self, msg)
                continue
            status = (msg.headers or {}).get("Status", "")
            if status == "100":
                continue  # idle heartbeat
            description = (msg.headers or {}).get("Description", "")
            if (status == "409" and "Consumer Deleted" in description) or status == "503":
                # reset_group replaces the consumer; a group that was deleted for good ends the subscription.
                await asyncio.sleep(self._config.reconnect_wait)
                if not await self._consumer_exists(self.consumer):
                    raise SubscriptionClosed(
                        f"{self!r}: the group's consumer was deleted", reason="consumer_deleted"
                    )
                return
            if status not in ("404", "408", "409"):
                log.warning(
                    "pull on %s/%s: unexpected status %s %s", self.stream, self.consumer, status, description
                )
                await asyncio.sleep(self._config.reconnect_wait)
            return
