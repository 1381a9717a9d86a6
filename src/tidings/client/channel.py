"""What the parts of the client share: a way to the current connection, and error translation.

The producer, the consumer and the admin API outlive any one connection, so
they never hold a ``ClientConnection``. They hold a ``Channel`` (the
``Client``), ask it for the connection of the moment, and wait while it
reconnects. ``call`` is the one request/response helper: fresh request id,
send, wait with a timeout, and turn a request-scoped ``Error`` frame into
the matching ``tidings.errors`` exception (``broker_error``). Users only
ever see ``tidings.errors``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, TypeVar

from tidings import errors
from tidings.client.config import ClientConfig
from tidings.client.connection import ClientConnection
from tidings.protocol import Error, Frame

F = TypeVar("F", bound=Frame)

_by_code: dict[str, type[errors.BrokerError]] = {}


class Channel(Protocol):
    """The client as its parts see it."""

    @property
    def config(self) -> ClientConfig: ...

    async def connection(self) -> ClientConnection:
        """The open connection, waiting up to ``reconnect_timeout`` while the client reconnects.

        ``ConnectionLost`` when none comes in time; ``NotConnected`` once the client is closed.
        """
        ...


def error_class(code: str) -> type[errors.BrokerError]:
    """The ``BrokerError`` subclass whose ``code`` is ``code``.

    The broker core defines one class per code in ``tidings.errors``
    (``UnknownTopic``, ``NotAuthorized``, ...). A code this build does not know
    (a newer broker) gets a subclass made on the spot, so ``exc.code`` is
    always the broker's code and ``except BrokerError`` still catches it.
    """
    if not _by_code:
        pending: list[type[errors.BrokerError]] = [errors.BrokerError]
        while pending:
            kind = pending.pop()
            _by_code.setdefault(kind.code, kind)
            pending.extend(kind.__subclasses__())
    known = _by_code.get(code)
    if known is None:
        name = "".join(part.title() for part in code.split("_")) or "Unknown"
        known = _by_code[code] = type(
            name, (errors.BrokerError,), {"code": code, "__module__": errors.__name__}
        )
    return known


def broker_error(frame: Error, *, what: str) -> errors.BrokerError:
    """The exception for a request-scoped Error frame: the class of its code, with both messages."""
    try:
        return error_class(frame.code)(f"{what}: {frame.message} ({frame.code})")
    except TypeError:  # a subclass with a constructor of its own
        return errors.BrokerError(f"{what}: {frame.message} ({frame.code})")


async def call(
    channel: Channel,
    make: Callable[[int], Frame],
    expect: type[F],
    *,
    what: str,
    timeout: float | None = None,
    retry: bool = False,
) -> F:
    """Send the request ``make(request_id)`` and return its ``expect`` response.

    An Error answer raises ``broker_error``; no answer in ``timeout`` (default
    ``request_timeout``) raises ``RequestTimeout``. With ``retry``, a request
    whose connection broke is sent again on the next one: only for requests
    that are safe to repeat (reads).
    """
    limit = channel.config.request_timeout if timeout is None else timeout
    while True:
        conn = await channel.connection()
        request_id = conn.next_id()
        try:
            future = conn.request(make(request_id))
            answer = await asyncio.wait_for(future, limit)
        except TimeoutError:
            conn.forget(request_id)
            raise errors.RequestTimeout(f"{what}: no answer from the broker in {limit:g} s") from None
        except errors.ConnectionLost:
            if retry:
                continue
            raise
        if isinstance(answer, Error):
            raise broker_error(answer, what=what)
        if not isinstance(answer, expect):
            raise errors.BrokerError(
                f"{what}: the broker answered {type(answer).__name__}, expected {expect.__name__}"
            )
        return answer
