"""``HttpApi``: the broker's HTTP server (aiohttp), on the broker's event loop, beside the binary listener.

Handlers run on the event loop and read the core directly: the figures are
in memory, so most answers cost microseconds. What can take long runs
elsewhere: log reads for browsing go to a worker thread, and published
events wait on the group commit like any Produce. Every body is a Struct of
``models`` and every route is in ``ROUTES`` order in ``routes()``, which
``openapi`` documents. Errors are JSON (``errors``), including aiohttp's own
(404 for an unknown path, 405, 413 for a body above ``max_frame_size``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final

import msgspec
from aiohttp import web

from tidings.core.broker import BROKER_VERSION, BrokerCore
from tidings.errors import ListenError, TidingsError
from tidings.protocol.frames import Produce
from tidings.protocol.values import Appended, Rejected
from tidings.server.http import dashboard, dlq, events, flow, groups, openapi, sse, topics
from tidings.server.http.auth import require_auth
from tidings.server.http.errors import ApiError, bad_request, from_tidings
from tidings.server.http.models import (
    DeadLetterPage,
    DeadLetterTopics,
    DeadLetterView,
    ErrorBody,
    EventPage,
    FlowMap,
    GroupList,
    GroupView,
    Health,
    Published,
    PublishEvent,
    PublishResult,
    Readiness,
    RedriveRequest,
    RedriveResult,
    Snapshot,
    TopicList,
    TopicView,
)
from tidings.server.http.routes import GROUP, TOPIC, Param, Route

if TYPE_CHECKING:
    from tidings.server.broker import BrokerServer

log = logging.getLogger(__name__)

HTTP_SERVICE: Final = "http"
"""The flow map's name for events published over HTTP without an ``X-Tidings-Service`` header."""
REDRIVE_SERVICE: Final = "tidings-redrive"
SHUTDOWN_TIMEOUT: Final = 1.0

_STATUS_OF_CODE: Final = {"unknown_topic": 404, "unknown_partition": 404, "invalid_topic_name": 400}


def json_response(body: msgspec.Struct, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(body), status=status, content_type="application/json")


def _error_response(error: ApiError) -> web.Response:
    return json_response(ErrorBody(error=error.error, detail=error.detail), error.status)


@web.middleware
async def errors_as_json(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every failure, ours or aiohttp's, leaves as ``{"error", "detail"}`` with its status."""
    try:
        return await handler(request)
    except ApiError as exc:
        return _error_response(exc)
    except TidingsError as exc:
        return _error_response(from_tidings(exc))
    except web.HTTPRequestEntityTooLarge as exc:
        return _error_response(ApiError(413, "too_large", exc.text or "the body is too large"))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_response(ApiError(exc.status, exc.reason.lower().replace(" ", "_"), exc.text or ""))


class HttpApi:
    """The HTTP API of one ``BrokerServer``: ``start`` binds, ``stop`` closes (streams end at once)."""

    def __init__(self, server: BrokerServer) -> None:
        self.server = server
        self.closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    def __repr__(self) -> str:
        return f"<HttpApi {self.url}>"

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        server = None if self._site is None else self._site._server  # aiohttp keeps the server there
        sockets = getattr(server, "sockets", None)
        if not sockets:
            return self.server.config.host, self.server.config.http_port
        host, port = sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        scheme = "https" if self.server.config.tls else "http"
        return f"{scheme}://{host}:{port}"

    def application(self) -> web.Application:
        doorman = require_auth(lambda: None if self.server.core is None else self.server.core.authenticator)
        middlewares = [errors_as_json, doorman]  # auth.py: credentials and permissions, as on the wire
        app = web.Application(middlewares=middlewares, client_max_size=self.server.config.max_frame_size)
        for route in self.routes():
            app.router.add_route(route.method, route.path, route.handler)
        dashboard.register(app)  # static files, not API: outside the route table and the OpenAPI document
        return app

    async def start(self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None) -> None:
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else str(exc)  # asyncio's text repeats the address
            raise ListenError(f"cannot serve HTTP on {host}:{port}: {reason.lower()}") from exc
        self._runner, self._site = runner, site

    async def stop(self) -> None:
        self.closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- helpers -------------------------------------------------------------------------------

    def _core(self) -> BrokerCore:
        core = self.server.core
        if core is None:
            raise ApiError(503, "not_ready", "the broker is starting")
        return core

    def _now(self) -> int:
        return self.server.clock()

    # -- the route table -----------------------------------------------------------------------

    def routes(self) -> list[Route]:
        """Every route, for registration and for the OpenAPI document."""
        limit = Param("limit", "query", f"Events to return, 1..{events.MAX_LIMIT}.", "integer")
        partition = Param("partition", "query", "Only this partition.", "integer")
        offset = Param("offset", "query", "Start at this offset.", "integer")
        at_time = Param(
            "time", "query", "Start at the first event appended at or after this time (ms).", "integer"
        )
        key = Param("key", "query", "Only events with this key (UTF-8).")
        service = Param("X-Tidings-Service", "header", "The publishing service's name on the flow map.")
        dlq_topic = Param("topic", "path", "A dead-letter topic (<topic>.dlq.<group>).", required=True)
        dlq_offset = Param("offset", "path", "The dead letter's offset.", "integer", required=True)
        return [
            Route(
                "GET", "/healthz", self.healthz, "Liveness: the broker process answers.", Health, tag="health"
            ),
            Route(
                "GET",
                "/readyz",
                self.readyz,
                "Readiness: the logs are open and the broker is not stopping.",
                Readiness,
                errors=(503,),
                tag="health",
            ),
            Route(
                "GET",
                "/metrics",
                self.metrics,
                "Prometheus metrics (text exposition format).",
                None,
                content_type="text/plain",
                tag="metrics",
            ),
            Route("GET", "/openapi.json", self.openapi, "This document.", None, tag="meta"),
            Route(
                "GET",
                "/api/topics",
                self.list_topics,
                "Every topic: partitions, offsets, size, rates, retention.",
                TopicList,
            ),
            Route(
                "GET",
                "/api/topics/{topic}",
                self.get_topic,
                "One topic.",
                TopicView,
                params=(TOPIC,),
                errors=(400, 404),
            ),
            Route(
                "GET",
                "/api/topics/{topic}/events",
                self.browse_events,
                "Browse events by partition and offset or time, optionally filtered by key.",
                EventPage,
                params=(TOPIC, partition, offset, at_time, key, limit),
                errors=(400, 404),
            ),
            Route(
                "POST",
                "/api/topics/{topic}/events",
                self.publish_events,
                "Publish one JSON event or a list; answers once they are durable.",
                PublishResult,
                request=PublishEvent,
                params=(TOPIC, partition, service),
                errors=(400, 404, 413),
            ),
            Route(
                "GET",
                "/api/groups",
                self.list_groups,
                "Every consumer group: members, lag, delay.",
                GroupList,
            ),
            Route(
                "GET",
                "/api/groups/{group}",
                self.get_group,
                "One group: members, mode, per-partition committed offset, lag, oldest unacked age, "
                "redeliveries, dead letters, processing delay.",
                GroupView,
                params=(GROUP,),
                errors=(404,),
            ),
            Route(
                "GET",
                "/api/flow",
                self.get_flow,
                "The flow map: services, topics, edges with rates and lag.",
                FlowMap,
            ),
            Route(
                "GET",
                "/api/dlq",
                self.list_dead_letter_topics,
                "Every dead-letter topic.",
                DeadLetterTopics,
                tag="dead letters",
            ),
            Route(
                "GET",
                "/api/dlq/{topic}",
                self.list_dead_letters,
                "The letters of a dead-letter topic.",
                DeadLetterPage,
                params=(dlq_topic, offset, limit),
                errors=(400, 404),
                tag="dead letters",
            ),
            Route(
                "GET",
                "/api/dlq/{topic}/{offset}",
                self.get_dead_letter,
                "One dead letter.",
                DeadLetterView,
                params=(dlq_topic, dlq_offset),
                errors=(400, 404),
                tag="dead letters",
            ),
            Route(
                "POST",
                "/api/dlq/{topic}/redrive",
                self.redrive,
                "Republish dead letters to their original topic: offsets listed, or all from from_offset.",
                RedriveResult,
                request=RedriveRequest,
                params=(dlq_topic,),
                errors=(400, 404),
                tag="dead letters",
            ),
            Route(
                "GET",
                "/api/stream",
                self.stream,
                "Server-Sent Events: a Snapshot (flow, topics, groups) every second.",
                Snapshot,
                content_type="text/event-stream",
                params=(Param("interval", "query", "Milliseconds between snapshots (>= 200).", "integer"),),
                tag="live",
            ),
        ]

    # -- health, metrics, meta -----------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        core = self._core()
        uptime = int((time.monotonic() - self.server.started_at) * 1000)
        return json_response(Health(broker_id=core.broker_id, version=BROKER_VERSION, uptime_ms=uptime))

    async def readyz(self, request: web.Request) -> web.Response:
        if self.server.core is None:
            return json_response(Readiness(ready=False, detail="starting"), 503)
        if self.server.stopping:
            return json_response(Readiness(ready=False, detail="stopping"), 503)
        return json_response(Readiness(ready=True))

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.server.metrics.render()
        return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})

    async def openapi(self, request: web.Request) -> web.Response:
        document = openapi.document(self.routes(), version=BROKER_VERSION)
        return web.Response(body=msgspec.json.encode(document), content_type="application/json")

    # -- topics and events ---------------------------------------------------------------------

    async def list_topics(self, request: web.Request) -> web.Response:
        return json_response(TopicList(topics=topics.topic_views(self._core(), self._now())))

    async def get_topic(self, request: web.Request) -> web.Response:
        core = self._core()
        topic = core.topics.get(request.match_info["topic"])
        return json_response(topics.topic_view(core, topic, self._now()))

    async def browse_events(self, request: web.Request) -> web.Response:
        name = request.match_info["topic"]
        topic = self._core().topics.get(name)
        return json_response(await events.browse(topic, request.query))

    async def publish_events(self, request: web.Request) -> web.Response:
        core = self._core()
        name = request.match_info["topic"]
        partition = events.parse_int("partition", request.query.get("partition"))
        body = await request.read()
        if not body:
            raise bad_request("the body is empty: send an event object or a list of them")
        batches = tuple(events.event_batch(e, self._now()) for e in events.parse_events(body))
        service = request.headers.get("X-Tidings-Service") or HTTP_SERVICE
        results = await self._produce(core, service, name, batches, partition)
        return json_response(PublishResult(topic=name, results=results))

    async def _produce(
        self, core: BrokerCore, service: str, topic: str, batches: tuple[bytes, ...], partition: int | None
    ) -> list[Published]:
        try:
            frame = Produce(request_id=0, topic=topic, batches=batches, partition=partition)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
        results = await self.server.produce_local(service, frame)
        published: list[Published] = []
        for result in results:
            if isinstance(result, Rejected):
                raise ApiError(_STATUS_OF_CODE.get(result.code, 500), result.code, result.message)
            assert isinstance(result, Appended)
            published.extend(
                Published(partition=result.partition, offset=o)
                for o in range(result.base_offset, result.last_offset + 1)
            )
        return published

    # -- groups and flow -----------------------------------------------------------------------

    async def list_groups(self, request: web.Request) -> web.Response:
        return json_response(GroupList(groups=groups.group_summaries(self._core())))

    async def get_group(self, request: web.Request) -> web.Response:
        return json_response(groups.group_view(self._core(), request.match_info["group"], self._now()))

    async def get_flow(self, request: web.Request) -> web.Response:
        return json_response(flow.flow_map(self._core(), self._now()))

    # -- dead letters --------------------------------------------------------------------------

    async def list_dead_letter_topics(self, request: web.Request) -> web.Response:
        return json_response(DeadLetterTopics(dead_letter_topics=dlq.dead_letter_topics(self._core())))

    async def list_dead_letters(self, request: web.Request) -> web.Response:
        topic = dlq.find(self._core(), request.match_info["topic"])
        offset = events.parse_int("offset", request.query.get("offset"))
        return json_response(await dlq.letters(topic, offset, events.parse_limit(request.query.get("limit"))))

    async def get_dead_letter(self, request: web.Request) -> web.Response:
        topic = dlq.find(self._core(), request.match_info["topic"])
        offset = events.parse_int("offset", request.match_info["offset"])
        assert offset is not None  # a path parameter is never empty
        return json_response(dlq.letter_view(topic.name, await dlq.letter(topic, offset)))

    async def redrive(self, request: web.Request) -> web.Response:
        core = self._core()
        topic = dlq.find(core, request.match_info["topic"])
        body = await request.read()
        try:
            ask = msgspec.json.decode(body, type=RedriveRequest) if body.strip() else RedriveRequest()
        except msgspec.DecodeError as exc:
            raise bad_request(f"the body must be a RedriveRequest: {exc}") from None
        records, next_offset = await dlq.to_redrive(topic, ask)
        results: list[Published] = []
        for original, batches in dlq.redrive_batches(records):  # one Produce per run of one topic
            results.extend(await self._produce(core, REDRIVE_SERVICE, original, batches, None))
        result = RedriveResult(
            topic=topic.name, redriven=len(results), results=results, next_offset=next_offset
        )
        return json_response(result)

    # -- live ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        core = self._core()
        now = self._now()
        return Snapshot(
            time=now,
            flow=flow.flow_map(core, now),
            topics=topics.topic_views(core, now),
            groups=groups.group_summaries(core),
        )

    async def stream(self, request: web.Request) -> web.StreamResponse:
        interval = events.parse_int("interval", request.query.get("interval"))
        interval = sse.DEFAULT_INTERVAL_MS if interval is None else max(interval, sse.MIN_INTERVAL_MS)
        self._core()
        return await sse.stream(request, self.snapshot, self.closing, interval_ms=interval)
