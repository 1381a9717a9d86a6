"""HTTP errors as JSON: ``{"error": ..., "detail": ...}`` with the status that fits.

Handlers raise ``ApiError`` (or let a ``TidingsError`` through); the
middleware in ``app`` turns either into an ``ErrorBody`` response, so no
handler formats an error itself and every error has the same shape.
"""

from __future__ import annotations

from typing import Final

from tidings.errors import (
    GroupModeConflict,
    InvalidTopicConfig,
    InvalidTopicName,
    OffsetOutOfRangeError,
    TidingsError,
    UnknownGroup,
    UnknownPartition,
    UnknownTopic,
)


class ApiError(Exception):
    """An answer other than 2xx: ``status``, a short ``error`` code and a ``detail`` for people."""

    def __init__(self, status: int, error: str, detail: str = "") -> None:
        super().__init__(detail or error)
        self.status = status
        self.error = error
        self.detail = detail


STATUS_OF: Final[tuple[tuple[type[TidingsError], int, str], ...]] = (
    (UnknownTopic, 404, "unknown_topic"),
    (UnknownGroup, 404, "unknown_group"),
    (UnknownPartition, 404, "unknown_partition"),
    (OffsetOutOfRangeError, 400, "offset_out_of_range"),
    (InvalidTopicName, 400, "invalid_topic_name"),
    (InvalidTopicConfig, 400, "invalid_config"),
    (GroupModeConflict, 409, "group_mode_conflict"),
)
"""How broker errors map to HTTP (first match wins); any other ``TidingsError`` is a 500."""


def from_tidings(exc: TidingsError) -> ApiError:
    for kind, status, error in STATUS_OF:
        if isinstance(exc, kind):
            return ApiError(status, error, str(exc))
    return ApiError(500, getattr(exc, "code", None) or "internal_error", str(exc))


def bad_request(detail: str) -> ApiError:
    return ApiError(400, "bad_request", detail)


def not_found(error: str, detail: str) -> ApiError:
    return ApiError(404, error, detail)
