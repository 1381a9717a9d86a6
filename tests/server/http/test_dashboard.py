"""The dashboard's files, as the broker serves them: routes, content types, caching, and no escape.

What the pages do is tested in a real browser (``test_dashboard_browser.py``); here, the serving:
``/`` leads to the page, every module the page imports is served with a JavaScript type, answers
revalidate with ETags, and no path reaches outside the package's ``static/`` directory.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.server.http.conftest import Api
from tidings.server.http import dashboard

STATIC = Path(dashboard.__file__).parent / "static"
IMPORT = re.compile(r"""^\s*import\s[^'"]*?from\s+["'](\.{1,2}/[^"']+)["']""", re.MULTILINE)


async def test_the_root_leads_to_the_dashboard(api: Api):
    async with api.session.get(api.base + "/", allow_redirects=False) as response:
        assert response.status == 302 and response.headers["Location"] == "/dashboard/"
    async with api.session.get(api.base + "/") as response:
        assert response.status == 200 and response.content_type == "text/html"
        page = await response.text()
    assert '<script type="module" src="/static/app.js">' in page and 'id="flow"' not in page  # drawn by JS


async def test_every_module_the_page_imports_is_served_as_javascript(api: Api):
    pending, seen = ["app.js"], set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        async with api.session.get(f"{api.base}/static/{name}") as response:
            assert response.status == 200, name
            assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
            source = await response.text()
        base = Path(name).parent
        for target in IMPORT.findall(source):
            pending.append((base / target).as_posix().replace("pages/../", ""))
    shipped = {p.relative_to(STATIC).as_posix() for p in STATIC.rglob("*.js")}
    assert seen == shipped  # every module is used, every import resolves
    async with api.session.get(api.base + "/static/style.css") as response:
        assert response.content_type == "text/css"


async def test_files_are_revalidated_with_etags(api: Api):
    async with api.session.get(api.base + "/static/flow.js") as response:
        etag = response.headers["ETag"]
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert (await response.read()) == (STATIC / "flow.js").read_bytes()
    async with api.session.get(api.base + "/static/flow.js", headers={"If-None-Match": etag}) as response:
        assert response.status == 304 and (await response.read()) == b""
    async with api.session.get(
        api.base + "/static/flow.js", headers={"If-None-Match": '"stale"'}
    ) as response:
        assert response.status == 200


async def test_nothing_outside_static_is_served(api: Api):
    for path in (
        "/static/../dashboard.py",
        "/static/%2e%2e/dashboard.py",
        "/static/pages/..%2f..%2fdashboard.py",
        "/static/.hidden.js",
        "/static/nope.js",
        "/static/app.py",
        "/static/pages",
    ):
        async with api.session.get(api.base + path) as response:
            assert response.status == 404, path
            assert response.content_type == "application/json", path  # the API's error shape


def test_safe_parts_refuses_what_is_not_a_plain_static_file():
    assert dashboard.safe_parts("pages/dlq.js") == ["pages", "dlq.js"]
    for bad in ("", "a//b.js", "../x.js", "pages/.x.js", "x.py", "a\\b.js", "dir/"):
        assert dashboard.safe_parts(bad) is None, bad


async def test_the_static_routes_stay_out_of_the_openapi_document(api: Api):
    document = await api.get("/openapi.json")
    assert not [p for p in document["paths"] if p == "/" or p.startswith(("/static", "/dashboard"))]
