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
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable

import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSub

from tidings.backends.nats.config import NatsConfig
from tidings.errors import SubscriptionClosed, TidingsError

log = logging.getLogger("tidings.backends.nats")


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
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._renew = asyncio.Event()
        self._stopping = False
        self.pulls = 0

    def __repr__(self) -> str:
        state = "running" if self._task is not None and not self._task.done() else "stopped"
        return f"<Puller {self.stream}/{self.consumer} {state} pulls={self.pulls}>"

    async def start(self) -> None:
        self._inbox = await self._nc.subscribe(self._nc.new_inbox())
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
        only after its ack deadline, behind newer messages, out of order for the next owner).
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
        leftovers: list[Msg] = []
        drain = asyncio.create_task(_drain(inbox))
        try:
            while not drain.done():
                with contextlib.suppress(nats.errors.TimeoutError):
                    msg = await inbox.next_msg(timeout=0.05)
                    if msg.reply:
                        leftovers.append(msg)
        except nats.errors.Error:  # the connection closed: the server forgets these pulls anyway
            pass
        finally:
            with contextlib.suppress(asyncio.CancelledError, nats.errors.Error, TimeoutError):
                await drain
        return leftovers

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
        try:
            await self._nc.publish(subject, json.dumps(request).encode(), reply=inbox.subject)
        except nats.errors.Error:
            await asyncio.sleep(self._config.reconnect_wait)
            return
        remaining = batch
        while remaining > 0 and not self._renew.is_set() and not self._stopping:
            try:
                msg = await inbox.next_msg(timeout=self._config.heartbeat * 2)
            except nats.errors.TimeoutError:
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


async def _drain(inbox: NatsSub) -> None:
    await inbox.drain()  # type: ignore[no-untyped-call]
