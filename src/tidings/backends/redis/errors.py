"""redis-py's exceptions, translated once into ``tidings.errors``: the only place that knows them.

=====================================================  ======================================
redis-py                                               tidings
=====================================================  ======================================
``AuthenticationError``, ``AuthorizationError``,       ``NotAuthorized``
``NoPermissionError`` (ACL ``NOPERM``)
``ConnectionError``, ``TimeoutError``,                 ``ConnectionLost`` (``ConnectFailed``
``BusyLoadingError`` (the server is loading its AOF)   while opening)
``OutOfMemoryError``, ``ReadOnlyError``                ``PublishError`` (``out_of_memory``,
                                                       ``read_only``) on publish, else
                                                       ``BrokerError``
any other ``RedisError``                               ``BrokerError``
=====================================================  ======================================

``retryable`` says which failures a publish or a subscription loop waits
out (the server is away or still loading), as opposed to a refusal that
will not change by trying again.
"""

from __future__ import annotations

from redis import exceptions as redis_errors

from tidings.errors import (
    BrokerError,
    ConnectFailed,
    ConnectionLost,
    NotAuthorized,
    PublishError,
    TidingsError,
)


def retryable(exc: BaseException) -> bool:
    """True for a lost or not-yet-ready server: trying again later may work."""
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return False
    return isinstance(exc, redis_errors.ConnectionError | redis_errors.TimeoutError | OSError)


def translate(exc: BaseException, what: str, *, url: str, connecting: bool = False) -> TidingsError:
    """The ``tidings.errors`` exception for ``exc``, raised while doing ``what`` against ``url``."""
    if isinstance(exc, TidingsError):
        return exc
    detail = f"{what} on {url}: {exc}"
    if isinstance(
        exc,
        redis_errors.AuthenticationError | redis_errors.AuthorizationError | redis_errors.NoPermissionError,
    ):
        return NotAuthorized(detail)
    if retryable(exc):
        return ConnectFailed(detail) if connecting else ConnectionLost(detail)
    if what.startswith("publish"):
        if isinstance(exc, redis_errors.OutOfMemoryError):
            return PublishError(detail, reason="out_of_memory")
        if isinstance(exc, redis_errors.ReadOnlyError):
            return PublishError(detail, reason="read_only")
        return PublishError(detail)
    return BrokerError(detail)


def is_busy_group(exc: BaseException) -> bool:
    """``XGROUP CREATE`` of a group that exists: the one error that means "already done"."""
    return isinstance(exc, redis_errors.ResponseError) and str(exc).startswith("BUSYGROUP")


def is_no_group(exc: BaseException) -> bool:
    return isinstance(exc, redis_errors.ResponseError) and "NOGROUP" in str(exc)
