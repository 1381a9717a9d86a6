"""Reading the broker's HTTP API from the command line: ``--http URL``, and typed GETs.

``map``, ``top``, ``asyncapi --from-broker`` and the ``describe`` commands show
the same figures as the dashboard, so they read the same JSON (``/api/...``)
and decode it into the API's own body Structs (``tidings.server.http.models``):
one contract, no second parser to drift. Plain ``urllib`` is enough for a few
GETs and keeps the commands synchronous.

Without ``--http`` the URL is derived from the broker's: same host, port
7401 (the broker's default HTTP port), so ``--url tidings://10.0.0.5:7400``
reads ``http://10.0.0.5:7401``. A ``tidings+tls://`` broker gives ``https://``.
Failures are ``HttpApiError`` (a ``TidingsError``): one line from ``main``.
With authentication on (docs/security.md), ``$TIDINGS_TOKEN`` is sent as a
bearer token, as the client sends it on the binary protocol.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from typing import Annotated, Final, TypeVar
from urllib.parse import quote, urlsplit

import msgspec
import typer

from tidings.errors import TidingsError

T = TypeVar("T")

DEFAULT_HTTP_PORT: Final = 7401
DEFAULT_HOST: Final = "127.0.0.1"
TIMEOUT: Final = 5.0

HttpUrl = Annotated[
    str | None,
    typer.Option(
        "--http",
        envvar="TIDINGS_HTTP_URL",
        help="The broker's HTTP API (default: the broker's host, port 7401).",
        show_default=False,
    ),
]


class HttpApiError(TidingsError):
    """The broker's HTTP API could not be read: unreachable, an error answer, or an unexpected body."""


def derive_http_url(http: str | None, broker_url: str | None) -> str:
    """``http`` if given; else the HTTP API beside ``broker_url`` (host kept, port 7401)."""
    if http:
        return http.rstrip("/")
    if not broker_url:
        return f"http://{DEFAULT_HOST}:{DEFAULT_HTTP_PORT}"
    parts = urlsplit(broker_url if "://" in broker_url else f"tidings://{broker_url}")
    host = parts.hostname or DEFAULT_HOST
    if ":" in host:
        host = f"[{host}]"
    scheme = "https" if parts.scheme == "tidings+tls" else "http"
    return f"{scheme}://{host}:{DEFAULT_HTTP_PORT}"


def path(*parts: str) -> str:
    """``/api/a/b`` with every part percent-encoded (topic and group names may hold anything)."""
    return "/api/" + "/".join(quote(part, safe="") for part in parts)


def get(url: str) -> urllib.request.Request:
    """A GET of ``url`` carrying ``$TIDINGS_TOKEN`` as a bearer token when it is set."""
    token = os.environ.get("TIDINGS_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return urllib.request.Request(url, headers=headers, method="GET")


def fetch(base: str, route: str, kind: type[T], *, timeout: float = TIMEOUT) -> T:
    """GET ``base + route`` and decode the JSON body as ``kind``."""
    url = base.rstrip("/") + route
    try:
        with urllib.request.urlopen(get(url), timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        raise HttpApiError(f"{url}: {exc.code} {_detail(exc)}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HttpApiError(f"cannot reach the broker's HTTP API at {base}: {reason}") from None
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise HttpApiError(f"{url}: unexpected answer: {exc}") from None
    except msgspec.DecodeError:
        raise HttpApiError(f"{url}: the answer is not JSON (is this the broker's HTTP port?)") from None


def _detail(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        return exc.reason or ""
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("error") or exc.reason)
    return str(exc.reason)
