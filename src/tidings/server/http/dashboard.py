"""The dashboard: static files (HTML, CSS, ES modules) served from the package, no build step.

``/`` redirects to ``/dashboard/``, which serves ``static/index.html``; the
page loads its modules from ``/static/...``. The dashboard itself is a
client of the documented JSON API (``/api/stream`` for live snapshots, the
other ``/api/`` routes on demand), so nothing here computes a figure and
these routes stay out of the OpenAPI document: they serve files, not data.

Files are read once, on first request, and kept in memory with a strong
ETag (a hash of the bytes). The names are not fingerprinted (there is no
build step to do it), so every response says ``Cache-Control: no-cache``:
the browser keeps its copy but revalidates it, and the answer is a 304
without a body while the installed package has not changed. Only files
under ``static/`` with a known suffix are served; anything else, including
``..`` or a hidden name, is a JSON 404 like any other unknown path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final

from aiohttp import web

from tidings.server.http.errors import not_found

STATIC_PREFIX: Final = "/static/"
DASHBOARD_PATH: Final = "/dashboard/"

CONTENT_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
CACHE_CONTROL: Final = "no-cache"
"""Keep, but revalidate: unfingerprinted names must not outlive an upgrade of the package."""


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def _static_root() -> Traversable:
    return resources.files("tidings.server.http") / "static"


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:] if dot > 0 else ""


def safe_parts(path: str) -> list[str] | None:
    """``path``'s components if it names a servable file below ``static/``; None otherwise."""
    parts = path.split("/")
    if not parts or any(not part or part.startswith(".") or "\\" in part for part in parts):
        return None
    if _suffix(parts[-1]) not in CONTENT_TYPES:
        return None
    return parts


class Assets:
    """The static files, loaded lazily and kept: the package's files do not change under a running broker."""

    def __init__(self, root: Traversable | None = None) -> None:
        self._root = root or _static_root()
        self._cache: dict[str, Asset] = {}

    def get(self, path: str) -> Asset | None:
        """The file at ``path``; misses are not remembered, so probing names cannot grow the cache."""
        asset = self._cache.get(path)
        if asset is None:
            asset = self._load(path)
            if asset is not None:
                self._cache[path] = asset
        return asset

    def _load(self, path: str) -> Asset | None:
        parts = safe_parts(path)
        if parts is None:
            return None
        node = self._root
        for part in parts:
            node = node / part
        if not node.is_file():
            return None
        body = node.read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        return Asset(body, CONTENT_TYPES[_suffix(parts[-1])], etag)


def _respond(request: web.Request, asset: Asset) -> web.Response:
    headers = {"ETag": asset.etag, "Cache-Control": CACHE_CONTROL, "X-Content-Type-Options": "nosniff"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    headers["Content-Type"] = asset.content_type
    return web.Response(body=asset.body, headers=headers)


class Dashboard:
    """The handlers; ``register`` adds them to an aiohttp app beside the API's routes."""

    def __init__(self, assets: Assets | None = None) -> None:
        self.assets = assets or Assets()

    def register(self, app: web.Application) -> None:
        app.router.add_get("/", self.root)
        app.router.add_get("/dashboard", self.root)
        app.router.add_get(DASHBOARD_PATH, self.index)
        app.router.add_get(STATIC_PREFIX + "{path:.+}", self.static)

    async def root(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(DASHBOARD_PATH)

    async def index(self, request: web.Request) -> web.Response:
        return self._serve(request, "index.html")

    async def static(self, request: web.Request) -> web.Response:
        return self._serve(request, request.match_info["path"])

    def _serve(self, request: web.Request, path: str) -> web.Response:
        asset = self.assets.get(path)
        if asset is None:
            raise not_found("not_found", f"no dashboard file {path!r}")
        return _respond(request, asset)


def register(app: web.Application) -> None:
    """Serve the dashboard from ``app``: ``/`` (redirect), ``/dashboard/`` and ``/static/...``."""
    Dashboard().register(app)
