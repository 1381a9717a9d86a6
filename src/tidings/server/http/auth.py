"""The HTTP API's door: the same credentials and the same permissions as the binary protocol.

An aiohttp middleware (``require_auth``), registered by ``HttpApi``. With
authentication off it lets everything through, as before. With it on:

* ``/api/...`` and ``/metrics`` need credentials: ``Authorization: Bearer
  <token>``, ``Authorization: Basic`` (a configured user), or a client
  certificate on a TLS connection. Missing or wrong credentials get a 401
  with ``WWW-Authenticate`` (so a browser opening the dashboard asks for a
  username and password, and sends them on its ``/api/stream`` too).
* ``/healthz``, ``/readyz``, ``/openapi.json`` and the dashboard's static
  files stay open: they hold no data, and probes carry no secrets.
* What each route needs (``need``): reading (GET) needs the ``read`` role;
  publishing events needs ``publish`` on the topic; a redrive needs
  ``admin``; anything else a new route adds is admin-only until it is
  listed here. A refusal is a 403 naming the operation and the topic.

Events published over HTTP are shown on the flow map under the principal's
service name; an ``X-Tidings-Service`` header may only name a service the
principal may claim.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Final

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware

from tidings.core.auth import Authenticator, Credentials, Operation, authorize
from tidings.core.auth.acl import ANY_SERVICE
from tidings.errors import NotAuthorized
from tidings.server.http.models import ErrorBody
from tidings.server.tls import subjects

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICE_HEADER: Final = "X-Tidings-Service"
CHALLENGE: Final = 'Basic realm="tidings", charset="UTF-8", Bearer realm="tidings"'
PROTECTED: Final = ("/api/", "/metrics")

_PUBLISH: Final = "/api/topics/{topic}/events"
_REDRIVE: Final = "/api/dlq/{topic}/redrive"


def protected(path: str) -> bool:
    return path.startswith(PROTECTED[0]) or path == PROTECTED[1]


def need(method: str, route: str, match: dict[str, str]) -> tuple[Operation, str | None]:
    """The permission a request needs, from its method and its route's template (deny by default)."""
    if method in ("GET", "HEAD"):
        return Operation.READ, None
    if method == "POST" and route == _PUBLISH:
        return Operation.PUBLISH, match.get("topic")
    if method == "POST" and route == _REDRIVE:
        return Operation.REDRIVE, match.get("topic")
    return Operation.CREATE_TOPIC, None  # an unlisted write: administrators only


def credentials(request: web.Request) -> Credentials:
    """The credentials of a request: its ``Authorization`` header, else its TLS client certificate."""
    names = subjects(request.transport.get_extra_info("peercert")) if request.transport is not None else ()
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credentials(token=value.strip(), subjects=names)
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise NotAuthorized("the Basic credentials are not base64 of username:password") from None
        username, _, password = decoded.partition(":")
        return Credentials(username=username, password=password, subjects=names)
    if header:
        raise NotAuthorized("the Authorization header must be 'Bearer <token>' or 'Basic <credentials>'")
    return Credentials(subjects=names)


def _error(status: int, detail: str) -> web.Response:
    headers = {"WWW-Authenticate": CHALLENGE} if status == 401 else None
    error = "not_ready" if status == 503 else "not_authorized"
    body = msgspec.json.encode(ErrorBody(error=error, detail=detail))
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def require_auth(authenticator: Callable[[], Authenticator | None]) -> Middleware:
    """The middleware; ``authenticator`` gives the broker core's (``None`` while the broker starts)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not protected(request.path):
            return await handler(request)
        doorman = authenticator()
        if doorman is None:  # the broker is starting: fail closed, whatever the configuration
            return _error(503, "the broker is starting")
        if not doorman.enabled:
            return await handler(request)
        try:
            principal = doorman.authenticate(credentials(request))
        except NotAuthorized as exc:
            return _error(401, str(exc))
        route = request.match_info.route.resource
        template = route.canonical if route is not None else request.path
        operation, topic = need(request.method, template, dict(request.match_info))
        claimed = request.headers.get(SERVICE_HEADER)
        try:
            authorize(principal, operation, topic)
            if claimed is not None and not principal.may_claim(claimed):
                raise NotAuthorized(f"service {principal.name!r} may not publish as {claimed!r}")
        except NotAuthorized as exc:
            return _error(403, str(exc))
        if claimed is None and principal.name != ANY_SERVICE and operation is Operation.PUBLISH:
            request = request.clone(headers={**request.headers, SERVICE_HEADER: principal.name})
        return await handler(request)

    return middleware
