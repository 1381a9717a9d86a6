"""``/openapi.json``: the OpenAPI 3.1 document, generated from the route table and the body Structs.

Schemas come from ``msgspec.json.schema_components`` over every request and
response type named in the routes (plus ``ErrorBody``), so the document is
exactly what the handlers encode. Nothing here is written by hand but the
prose.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from tidings.server.http.models import ErrorBody
from tidings.server.http.routes import Route

REF: Final = "#/components/schemas/{name}"

_ERROR_TEXT: Final = {
    400: "Bad request: a malformed parameter or body.",
    404: "Unknown topic, group, partition or dead letter.",
    409: "Conflict.",
    413: "The body is larger than the broker's max frame size.",
    500: "The broker failed.",
    503: "The broker is not ready.",
}


def _schema_ref(kind: type) -> dict[str, Any]:
    return {"$ref": REF.format(name=kind.__name__)}


def _operation(route: Route) -> dict[str, Any]:
    parameters = [
        {
            "name": p.name,
            "in": p.where,
            "required": p.required or p.where == "path",
            "description": p.description,
            "schema": {"type": p.kind},
        }
        for p in route.params
    ]
    if route.response is not None:
        ok = {"description": "OK", "content": {route.content_type: {"schema": _schema_ref(route.response)}}}
    else:
        ok = {"description": "OK", "content": {route.content_type: {"schema": {"type": "string"}}}}
    responses: dict[str, Any] = {"200": ok}
    for status in sorted({*route.errors, 500}):
        responses[str(status)] = {
            "description": _ERROR_TEXT.get(status, "Error."),
            "content": {"application/json": {"schema": _schema_ref(ErrorBody)}},
        }
    operation: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.tag],
        "responses": responses,
    }
    if parameters:
        operation["parameters"] = parameters
    if route.request is not None:
        request_schema = _schema_ref(route.request)
        operation["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [request_schema, {"type": "array", "items": request_schema}]}
                    if route.method == "POST" and route.path.endswith("/events")
                    else request_schema
                }
            },
        }
    return operation


def document(routes: Sequence[Route], *, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes``."""
    types: list[Any] = [ErrorBody]
    for route in routes:
        for kind in (route.response, route.request):
            if kind is not None and kind not in types:
                types.append(kind)
    _, components = msgspec.json.schema_components(types, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Tidings broker HTTP API",
            "version": version,
            "description": (
                "Topics, consumer groups, the service flow map, events, dead letters, health and "
                "metrics of one Tidings broker. Times are ms since the Unix epoch; rates are per "
                "second over the last 10 s. See docs/http-api.md."
            ),
        },
        "paths": paths,
        "components": {"schemas": components},
    }
