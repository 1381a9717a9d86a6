"""nats-py's exceptions, translated once into ``tidings.errors``.

Every call into nats-py that can fail goes through ``translated(what)``, so a
user of the backend sees ``TidingsError`` subclasses only, each naming what
was being done. The mapping, most specific first:

=====================================  ==========================================
nats-py                                tidings
=====================================  ==========================================
``NoRespondersError``                  ``NoResponders`` (a request nobody serves)
``TimeoutError`` (a request)           ``RequestTimeout``
``AuthorizationError``                 ``NotAuthorized``
``NoServersError``, ``OSError``        ``ConnectFailed``
``ConnectionClosedError``,             ``NotConnected`` (the backend was closed)
``ConnectionDrainingError``
``StaleConnectionError``,              ``ConnectionLost`` (the connection is away and
``OutboundBufferLimitError``,          did not come back in time)
``ConnectionReconnectingError``,
``FlushTimeoutError``
``MaxPayloadError``                    ``PublishError(reason="message_too_large")``
``BadSubjectError``, ``BadHeaderError``  ``InvalidArgument``
JetStream ``NotFoundError``            ``UnknownTopic`` (stream) / ``UnknownGroup``
JetStream ``APIError`` (others)        ``BrokerError`` with JetStream's code and text
=====================================  ==========================================
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Final, TypeVar

import nats.errors
import nats.js.errors

from tidings.errors import (
    BrokerError,
    ConnectFailed,
    ConnectionLost,
    InvalidArgument,
    NoResponders,
    NotAuthorized,
    NotConnected,
    PublishError,
    RequestTimeout,
    TidingsError,
    UnknownGroup,
    UnknownTopic,
)

T = TypeVar("T")

STREAM_NOT_FOUND: Final = 10059
CONSUMER_NOT_FOUND: Final = 10014
STREAM_NAME_IN_USE: Final = 10058
CONSUMER_EXISTS: Final = 10148


def api_code(exc: BaseException) -> int | None:
    """JetStream's ``err_code`` of an API error, else None."""
    if isinstance(exc, nats.js.errors.APIError):
        code = exc.err_code
        return int(code) if code is not None else None
    return None


def translate(exc: BaseException, what: str) -> TidingsError:
    """The ``tidings.errors`` exception for ``exc``, raised while doing ``what``."""
    if isinstance(exc, TidingsError):
        return exc
    message = f"{what}: {exc or type(exc).__name__}"
    if isinstance(exc, nats.errors.NoRespondersError | nats.js.errors.NoStreamResponseError):
        return NoResponders(message)
    if isinstance(exc, nats.errors.FlushTimeoutError | nats.errors.StaleConnectionError):
        return ConnectionLost(message)
    if isinstance(exc, nats.errors.TimeoutError | TimeoutError):
        return RequestTimeout(message)
    if isinstance(exc, nats.errors.AuthorizationError):
        return NotAuthorized(message)
    if isinstance(exc, nats.errors.NoServersError | OSError):
        return ConnectFailed(message)
    if isinstance(exc, nats.errors.ConnectionClosedError | nats.errors.ConnectionDrainingError):
        return NotConnected(message)
    if isinstance(exc, nats.errors.OutboundBufferLimitError | nats.errors.ConnectionReconnectingError):
        return ConnectionLost(message)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return PublishError(message, reason="message_too_large")
    if isinstance(exc, nats.errors.BadSubjectError | nats.errors.BadHeaderError):
        return InvalidArgument(message)
    code = api_code(exc)
    if code == STREAM_NOT_FOUND:
        return UnknownTopic(message)
    if code == CONSUMER_NOT_FOUND:
        return UnknownGroup(message)
    if isinstance(exc, nats.js.errors.APIError):
        return BrokerError(f"{what}: JetStream error {code}: {exc.description}")
    return BrokerError(message)


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    """Raise whatever nats-py raises inside as its ``tidings.errors`` class (see the table above)."""
    try:
        yield
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise translate(exc, what) from exc


def transient(exc: BaseException) -> bool:
    """JetStream is away for now (a restart, a leader election), not refusing: worth asking again."""
    if isinstance(exc, nats.js.errors.APIError):
        return isinstance(exc, nats.js.errors.ServiceUnavailableError) or exc.code == 503
    return isinstance(
        exc,
        nats.errors.TimeoutError
        | nats.errors.NoRespondersError
        | nats.errors.OutboundBufferLimitError
        | nats.errors.StaleConnectionError,
    )


async def retrying(what: str, call: Callable[[], Awaitable[T]], patience: float) -> T:
    """``await call()``, asked again while JetStream is away (``transient``) for up to ``patience`` seconds.

    A cluster that lost its meta or stream leader answers nothing for a few seconds; a management call
    (look up or create a stream or consumer) waits that out instead of failing the subscribe or publish.
    """
    deadline = time.monotonic() + patience
    pause = 0.05
    while True:
        try:
            return await call()
        except (nats.errors.Error, TimeoutError) as exc:
            if not transient(exc) or time.monotonic() + pause > deadline:
                raise translate(exc, what) from exc
        await asyncio.sleep(pause)
        pause = min(pause * 2, 1.0)
