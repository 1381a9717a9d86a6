"""Request/reply over a list and pub/sub: requests are not stored in the topic's streams.

A responder is a subscription of the topic: its backend subscribes the
channel ``P{T}:requests``. ``request`` runs ``scripts.REQUEST``: push the
request on the list ``P{T}:requests`` (expiring with the request) and
``PUBLISH`` a wake-up on the channel; ``PUBLISH`` returns how many backends
listen, and 0 means ``NoResponders`` at once (the request is taken back).
Each wake-up makes every listening backend ``RPOP`` once: one of them gets
the request, hands it to one of its subscriptions of the topic (round
robin) as a ``RequestDelivery``, and ``reply`` publishes the answer on the
requester's channel ``Preply:<backend id>``. A request past its deadline is
dropped by the responder; the requester raises ``RequestTimeout``.

Each backend keeps one pub/sub connection for its responders' channels and
its reply channel; after a lost connection it opens a new one and
subscribes again. Requests wait (``reconnect_timeout``) until the reply
channel is subscribed, so a reply is never published to nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from tidings.backends.base import HeadersIn, Reply
from tidings.backends.redis.codec import (
    Answer,
    Request,
    decode_answer,
    decode_request,
    encode_answer,
    encode_headers,
    encode_request,
    key_bytes,
)
from tidings.backends.redis.config import RedisConfig
from tidings.backends.redis.delivery import RequestDelivery
from tidings.backends.redis.keys import Keys, reply_channel
from tidings.backends.redis.retry import backoff, retrying
from tidings.backends.redis.scripts import Scripts
from tidings.backends.redis.tasks import stop
from tidings.errors import ConnectionLost, NoResponders, RequestTimeout, TidingsError

logger = logging.getLogger("tidings.backends.redis")

Responder = Callable[[RequestDelivery], None]
Listener = Callable[[bytes], None]


class RequestHub:
    """One backend's requests and responders, over one pub/sub connection."""

    def __init__(self, client: Redis, scripts: Scripts, config: RedisConfig, url: str) -> None:
        self._client, self._scripts, self._config, self._url = client, scripts, config, url
        self._reply_channel = reply_channel(config.prefix, uuid.uuid4().hex)
        self._responders: dict[str, list[Responder]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._turn = itertools.count()
        self._waiting: dict[str, asyncio.Future[Answer]] = {}
        self._confirmed: set[str] = set()
        self._changed = asyncio.Event()
        self._pubsub: PubSub | None = None
        self._task: asyncio.Task[None] | None = None
        self._work: set[asyncio.Task[None]] = set()
        self._closed = False

    def __repr__(self) -> str:
        return f"<RequestHub {self._reply_channel} responders={sorted(self._responders)}>"

    async def start(self) -> None:
        self._task = asyncio.create_task(self._pump_forever(), name="redis requests")
        await self._until_subscribed(self._reply_channel)

    async def close(self) -> None:
        self._closed = True
        await stop([self._task, *self._work])
        await self._drop_pubsub()
        for future in self._waiting.values():
            future.cancel()

    # -- responders --------------------------------------------------------------------

    async def add_responder(self, topic: str, responder: Responder) -> None:
        """Deliver ``topic``'s requests to ``responder`` too; returns once the server counts it."""
        await self._add(self._responders, Keys(self._config.prefix, topic).requests, responder)

    async def remove_responder(self, topic: str, responder: Responder) -> None:
        await self._remove(self._responders, Keys(self._config.prefix, topic).requests, responder)

    async def add_listener(self, channel: str, listener: Listener) -> None:
        """Call ``listener`` with each message published on ``channel``; returns once subscribed."""
        await self._add(self._listeners, channel, listener)

    async def remove_listener(self, channel: str, listener: Listener) -> None:
        await self._remove(self._listeners, channel, listener)

    async def _add(self, table: dict[str, list[Any]], channel: str, callback: object) -> None:
        table.setdefault(channel, []).append(callback)
        if self._pubsub is not None and channel not in self._confirmed:
            with contextlib.suppress(Exception):  # a lost connection: the pump subscribes again
                await self._pubsub.subscribe(channel)
        await self._until_subscribed(channel)

    async def _remove(self, table: dict[str, list[Any]], channel: str, callback: object) -> None:
        callbacks = table.get(channel, [])
        if callback in callbacks:
            callbacks.remove(callback)
        if not callbacks:
            table.pop(channel, None)
            if channel not in self._responders and channel not in self._listeners:
                self._confirmed.discard(channel)
                if self._pubsub is not None:
                    with contextlib.suppress(Exception):
                        await self._pubsub.unsubscribe(channel)

    # -- requesting ----------------------------------------------------------------------

    async def request(
        self, topic: str, data: bytes, *, timeout: float, key: str | bytes | None, headers: HeadersIn | None
    ) -> Reply:
        await self._until_subscribed(self._reply_channel)
        now_ms = int(time.time() * 1000)
        request = Request(
            id=uuid.uuid4().hex,
            reply_to=self._reply_channel,
            deadline_ms=now_ms + int(timeout * 1000),
            data=bytes(data),
            key=key_bytes(key),
            headers=encode_headers(headers),
            producer_ms=now_ms,
        )
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = future
        try:
            listening = await retrying(
                lambda: self._scripts.request(
                    keys=[Keys(self._config.prefix, topic).requests],
                    args=[encode_request(request), int(timeout * 1000) + 1000],
                ),
                f"request to {topic!r}",
                url=self._url,
                deadline=self._config.reconnect_timeout,
            )
            if int(listening) == 0:
                raise NoResponders(f"no subscriber of {topic!r} on {self._url} answers requests")
            try:
                answer = await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise RequestTimeout(f"no reply to a request to {topic!r} within {timeout:g} s") from None
        finally:
            self._waiting.pop(request.id, None)
        return Reply(topic=topic, data=answer.data, headers=answer.headers)

    async def _reply(self, request: Request, data: bytes, headers: HeadersIn | None) -> None:
        answer = Answer(id=request.id, data=bytes(data), headers=encode_headers(headers))
        await retrying(
            lambda: self._client.publish(request.reply_to, encode_answer(answer)),
            "reply",
            url=self._url,
            deadline=max(0.0, request.deadline_ms / 1000 - time.time()) + 0.001,
        )

    # -- the pub/sub connection ------------------------------------------------------------

    async def _until_subscribed(self, channel: str) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._config.reconnect_timeout
        while channel not in self._confirmed:
            if loop.time() >= give_up:
                raise ConnectionLost(f"cannot subscribe {channel!r} on {self._url}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), give_up - loop.time())

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        self._confirmed.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed from redis-py 8.2

    async def _pump_forever(self) -> None:
        attempt = 0
        while not self._closed:
            try:
                if self._pubsub is None:
                    pubsub = self._client.pubsub()
                    channels = {self._reply_channel, *self._responders, *self._listeners}
                    await pubsub.subscribe(*channels)
                    self._pubsub = pubsub
                    missing = {*self._responders, *self._listeners} - channels  # added while subscribing
                    if missing:
                        await pubsub.subscribe(*missing)
                message = await self._pubsub.get_message(timeout=1.0)
                attempt = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                if attempt == 1:
                    logger.info("request channels on %s lost (%s): subscribing again", self._url, exc)
                await self._drop_pubsub()
                await asyncio.sleep(backoff(attempt))
                continue
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        channel = _text(message.get("channel", b""))
        if kind in {b"subscribe", "subscribe"}:
            self._confirmed.add(channel)
            self._changed.set()
        elif kind in (b"message", "message"):
            if channel == self._reply_channel:
                answer = decode_answer(message["data"])
                future = self._waiting.get(answer.id)
                if future is not None and not future.done():
                    future.set_result(answer)
            if channel in self._listeners:
                for listener in list(self._listeners[channel]):
                    listener(message["data"])
            if channel in self._responders:
                task = asyncio.create_task(self._take_request(channel))
                self._work.add(task)
                task.add_done_callback(self._work.discard)

    async def _take_request(self, channel: str) -> None:
        """Pop requests until a live one (expired ones are dropped), and hand it to one responder."""
        while True:
            try:
                raw = await retrying(
                    lambda: self._client.rpop(channel),
                    f"taking a request from {channel}",
                    url=self._url,
                    deadline=self._config.reconnect_timeout,
                )
            except TidingsError as exc:  # the request times out for its requester
                logger.info("%s", exc)
                return
            responders = self._responders.get(channel)
            if not isinstance(raw, bytes) or not responders:
                return
            request = decode_request(raw)
            if request.deadline_ms >= time.time() * 1000:
                break
        topic = channel[len(self._config.prefix) :].split("}", 1)[0].lstrip("{")
        responder = responders[next(self._turn) % len(responders)]
        responder(RequestDelivery(topic, request, self._reply))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
