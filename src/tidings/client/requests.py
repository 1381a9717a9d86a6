"""Request/reply on the client: asking (``request``) and routing the requests a responder receives.

A requester sends ``Request(request_id, topic, timeout_ms, batch)`` and
waits for the answer with that ``request_id``: a ``Reply`` (the responder's
one-record batch), ``NoResponders`` at once when no one is subscribed, or an
Error (``request_timeout`` from the broker). It also keeps its own clock: no
answer within ``timeout`` is a ``RequestTimeout`` even if the broker stays
silent, and a reply that comes later is dropped by the pump.

A responder is any subscription whose topic (or pattern) matches: the broker
forwards a request to one connection, and ``route_request`` hands it to one
matching subscription of that connection, taking turns. The message is then
answered with ``msg.reply``, on the connection it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any

from tidings import errors
from tidings.client.channel import Channel, broker_error
from tidings.client.config import check_topic
from tidings.client.connection import ClientConnection
from tidings.client.consumer import Subscription, SubscriptionState
from tidings.client.message import HeadersIn, Message, encode_data, encode_headers, encode_key
from tidings.protocol import Error, Frame, NoResponders, Reply, Request, topic_matches
from tidings.records import BatchBuilder, iter_records


async def request(
    channel: Channel,
    topic: str,
    data: Any,
    *,
    timeout: float,
    key: str | bytes | None = None,
    headers: HeadersIn | None = None,
) -> Message:
    check_topic(topic)
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0 seconds, not {timeout}")
    builder = BatchBuilder()
    builder.add(encode_data(data), key=encode_key(key), headers=encode_headers(headers))
    batch = builder.build()
    deadline = time.monotonic() + timeout
    conn = await channel.connection()
    request_id = conn.next_id()
    frame = Request(request_id=request_id, topic=topic, timeout_ms=max(1, round(timeout * 1000)), batch=batch)
    future = conn.request(frame)
    # A timer that fails the answer's future, rather than ``asyncio.wait_for``: wait_for puts a
    # future of its own and a callback between the answer and this coroutine, one more turn of
    # the event loop per request, which showed in request/reply's tail.
    timer = asyncio.get_running_loop().call_later(max(deadline - time.monotonic(), 0.001), _expire, future)
    try:
        answer = await future
    except TimeoutError:
        conn.forget(request_id)
        raise errors.RequestTimeout(f"no reply to the request on {topic} in {timeout:g} s") from None
    finally:
        timer.cancel()
    if isinstance(answer, Reply):
        record = next(iter(iter_records(answer.batch)))
        return Message(topic=topic, partition=-1, offset=-1, record=record)
    if isinstance(answer, NoResponders):
        raise errors.NoResponders(f"no responders subscribed to {topic}")
    if isinstance(answer, Error):
        raise broker_error(answer, what=f"request on {topic} failed")
    raise errors.BrokerError(f"the broker answered a Request with {type(answer).__name__}")


def _expire(future: asyncio.Future[Frame]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def route_request(
    frame: Request, conn: ClientConnection, subscriptions: Iterable[Subscription], turn: int
) -> None:
    """Give a forwarded request to one matching subscription (the ``turn``-th), else ``no_responders``."""
    responders = [
        s
        for s in subscriptions
        if s.state is SubscriptionState.ACTIVE and topic_matches(s.topic, frame.topic)
    ]
    if responders:
        responders[turn % len(responders)].on_request(frame, conn)
        return
    with contextlib.suppress(errors.TidingsError):
        conn.send(
            Error(
                code="no_responders", message=f"no subscription to {frame.topic}", request_id=frame.request_id
            )
        )
