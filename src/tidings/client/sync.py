"""``tidings.connect_sync``: the client for scripts and REPLs that do not run an event loop.

A ``SyncClient`` runs a private event loop in a daemon thread and hands each
call to it (``asyncio.run_coroutine_threadsafe``), blocking the caller until
the answer comes. It is the asyncio ``Client`` underneath, with the same
batching, acks and reconnects; only the calling convention differs. Calls may
come from any thread. Subscriptions are plain iterators of ``SyncMessage``,
whose ``ack()``, ``nack()``, ``term()`` and ``reply()`` block likewise.

One publish per call waits for its own ack (a round trip plus the linger);
for throughput use ``publish_many``, which batches.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator
from concurrent.futures import Future
from datetime import datetime
from typing import Any, Literal, TypeVar

from tidings.client.client import Client, connect
from tidings.client.consumer import Subscription
from tidings.client.message import HeadersIn, Message, PublishResult, PublishResults, StartIn
from tidings.client.transport import TransportFactory
from tidings.errors import NotConnected
from tidings.protocol import GroupDescription, GroupReset, GroupSummary, TopicDeleted, TopicDescription

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tidings-sync-client", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a SyncClient method was called from its own event loop thread")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()


class SyncMessage:
    """A ``Message`` whose settling and replying block instead of being awaited."""

    def __init__(self, message: Message, runner: _LoopThread) -> None:
        self.message = message
        self._runner = runner

    def __repr__(self) -> str:
        return f"<Sync{self.message!r}"[:-1] + ">"

    topic = property(lambda self: self.message.topic)
    partition = property(lambda self: self.message.partition)
    offset = property(lambda self: self.message.offset)
    key = property(lambda self: self.message.key)
    headers = property(lambda self: self.message.headers)
    data = property(lambda self: self.message.data)
    delivery_count = property(lambda self: self.message.delivery_count)
    is_request = property(lambda self: self.message.is_request)

    @property
    def timestamp(self) -> datetime:
        return self.message.timestamp

    @property
    def append_time(self) -> datetime | None:
        return self.message.append_time

    def text(self) -> str:
        return self.message.text()

    def json(self) -> Any:
        return self.message.json()

    def ack(self) -> None:
        self._runner.run(self.message.ack())

    def nack(self, delay: float = 0.0, *, reason: str | None = None) -> None:
        self._runner.run(self.message.nack(delay, reason=reason))

    def term(self, reason: str | None = None) -> None:
        self._runner.run(self.message.term(reason))

    def reply(self, data: Any, *, headers: HeadersIn | None = None) -> None:
        self._runner.run(self.message.reply(data, headers=headers))


class SyncSubscription:
    """Iterate to receive messages; ``next(sub)`` blocks until one comes. Close it when done."""

    def __init__(self, subscription: Subscription, runner: _LoopThread) -> None:
        self.subscription = subscription
        self._runner = runner

    def __repr__(self) -> str:
        return f"<Sync{self.subscription!r}"[:-1] + ">"

    def __iter__(self) -> Iterator[SyncMessage]:
        return self

    def __next__(self) -> SyncMessage:
        try:
            message = self._runner.run(self.subscription.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None
        return SyncMessage(message, self._runner)

    def get(self, timeout: float | None = None) -> SyncMessage | None:
        """The next message, or None after ``timeout`` seconds (or when the subscription ends)."""

        async def next_or_none() -> Message | None:
            try:
                async with asyncio.timeout(timeout):
                    return await self.subscription.__anext__()
            except (TimeoutError, StopAsyncIteration):
                return None

        message = self._runner.run(next_or_none())
        return None if message is None else SyncMessage(message, self._runner)

    def close(self) -> None:
        self._runner.run(self.subscription.close())

    def __enter__(self) -> SyncSubscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SyncAdmin:
    """``client.admin``, blocking."""

    def __init__(self, client: Client, runner: _LoopThread) -> None:
        self._admin = client.admin
        self._runner = runner

    def create_topic(
        self, name: str, partitions: int = 1, config: dict[str, str] | None = None
    ) -> TopicDescription:
        return self._runner.run(self._admin.create_topic(name, partitions, config))

    def delete_topic(self, name: str) -> TopicDeleted:
        return self._runner.run(self._admin.delete_topic(name))

    def describe_topic(self, name: str) -> TopicDescription:
        return self._runner.run(self._admin.describe_topic(name))

    def list_topics(self) -> tuple[str, ...]:
        return self._runner.run(self._admin.list_topics())

    def list_groups(self, topic: str | None = None) -> tuple[GroupSummary, ...]:
        return self._runner.run(self._admin.list_groups(topic))

    def describe_group(self, group: str) -> GroupDescription:
        return self._runner.run(self._admin.describe_group(group))

    def reset_group(self, group: str, topic: str, to: StartIn = "earliest") -> GroupReset:
        return self._runner.run(self._admin.reset_group(group, topic, to))


class SyncClient:
    """A blocking client. Make one with ``tidings.connect_sync(...)``; use ``with`` or call ``close()``."""

    def __init__(self, client: Client, runner: _LoopThread) -> None:
        self.client = client
        self._runner = runner
        self.admin = SyncAdmin(client, runner)

    def __repr__(self) -> str:
        return f"<Sync{self.client!r}"[:-1] + ">"

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def publish(
        self, topic: str, data: Any, *, key: str | bytes | None = None, headers: HeadersIn | None = None
    ) -> PublishResult:
        return self._run(self.client.publish(topic, data, key=key, headers=headers))

    def publish_many(
        self,
        topic: str,
        items: Iterable[Any],
        *,
        key: str | bytes | None = None,
        headers: HeadersIn | None = None,
    ) -> PublishResults:
        return self._run(self.client.publish_many(topic, list(items), key=key, headers=headers))

    def request(
        self, topic: str, data: Any, *, timeout: float = 5.0, headers: HeadersIn | None = None
    ) -> SyncMessage:
        message = self._run(self.client.request(topic, data, timeout=timeout, headers=headers))
        return SyncMessage(message, self._runner)

    def subscribe(
        self,
        topic: str,
        group: str | None = None,
        *,
        start: StartIn = "latest",
        mode: Literal["partitioned", "shared"] = "partitioned",
        prefetch: int = 100,
        ack_deadline: float = 30.0,
        max_deliveries: int | None = 5,
    ) -> SyncSubscription:
        subscription = self._run(
            self.client.subscribe(
                topic,
                group,
                start=start,
                mode=mode,
                prefetch=prefetch,
                ack_deadline=ack_deadline,
                max_deliveries=max_deliveries,
            )
        )
        return SyncSubscription(subscription, self._runner)

    def flush(self) -> None:
        self._run(self.client.flush())

    def close(self) -> None:
        if self._runner.loop.is_closed():
            return
        try:
            self._runner.run(self.client.close())
        finally:
            self._runner.stop()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._runner.loop.is_closed():
            coro.close()
            raise NotConnected("the client is closed")
        return self._runner.run(coro)


def connect_sync(
    url: str | None = None,
    service: str | None = None,
    client_id: str | None = None,
    token: str | None = None,
    *,
    transport: TransportFactory | None = None,
    **settings: Any,
) -> SyncClient:
    """Connect now and return a blocking client (same arguments as ``tidings.connect``)."""
    runner = _LoopThread()

    async def open_client() -> Client:
        return await connect(url, service, client_id, token, transport=transport, **settings).open()

    try:
        client = runner.run(open_client())
    except BaseException:
        runner.stop()
        raise
    return SyncClient(client, runner)
