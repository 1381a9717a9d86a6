"""The route table: every HTTP route, once, with what OpenAPI needs to document it.

``app`` registers handlers from this table and ``openapi`` documents the
same table, so a route cannot be served undocumented or documented but not
served (``tests/server/http`` checks both directions against a live broker).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    where: Literal["path", "query", "header"]
    description: str
    kind: Literal["string", "integer"] = "string"
    required: bool = False


@dataclass(frozen=True, slots=True)
class Route:
    method: Literal["GET", "POST"]
    path: str
    handler: Handler
    summary: str
    response: type | None
    """The 200 body's Struct (JSON); None for a body of ``content_type`` described in ``summary``."""
    content_type: str = "application/json"
    request: type | None = None
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    tag: str = "broker"

    @property
    def operation_id(self) -> str:
        name = getattr(self.handler, "__name__", "handler")
        return name.removeprefix("_")


TOPIC = Param("topic", "path", "A topic name.", required=True)
GROUP = Param("group", "path", "A consumer group name.", required=True)
