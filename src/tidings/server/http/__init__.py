"""The broker's HTTP API: JSON under ``/api/``, ``/metrics``, ``/healthz``, ``/readyz``, ``/openapi.json``.

Modules, one job each: ``app`` (``HttpApi``: the aiohttp server and its
handlers), ``routes`` (the route table), ``models`` (every body, as Structs),
``openapi`` (the document, generated), ``errors`` (JSON errors),
``topics``, ``groups``, ``flow``, ``events``, ``dlq`` (the views), ``sse``
(live updates), ``metrics`` (Prometheus), ``schemas`` (announced JSON
Schemas). docs/http-api.md is the user's guide.
"""

from tidings.server.http.app import HttpApi
from tidings.server.http.metrics import Metrics

__all__ = ["HttpApi", "Metrics"]
