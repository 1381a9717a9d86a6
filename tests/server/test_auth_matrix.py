"""Reliability test 9: every operation x role x topic pattern against a real broker, over real sockets.

The expectation (``expected``) is written out by hand from docs/security.md,
not computed with the broker's own ``allowed``, so the test checks the
enforcement points and the decision table at once. Each case is run over the
wire (binary protocol or HTTP) and classified as succeeded or refused by what
the broker answered; the assertion is that the two tables are the same, so
there are zero unauthorised successes and zero wrongful refusals.
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    Appended,
    CreateTopic,
    DeleteTopic,
    DescribeTopic,
    Earliest,
    Error,
    ListTopics,
    NoResponders,
    Produce,
    ProduceResult,
    Rejected,
    Reply,
    Request,
    ResetGroup,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
)
from tidings.server import BrokerServer
from tidings.testing.raw import RawClient

from .auth_helpers import (
    ADMIN_TOKEN,
    READER_PASSWORD,
    SERVICE_TOKEN,
    Login,
    login,
    refused,
    start_secure_broker,
)
from .helpers import batch

ROLES = {
    "anonymous": Login("anonymous"),
    "read-only": Login("dash", username="dash", password=READER_PASSWORD),
    "service": Login("shop", token=SERVICE_TOKEN),
    "admin": Login("ops", token=ADMIN_TOKEN),
}
# The service may publish and subscribe to ``shop.*``. Per kind of topic: one it covers, one it does
# not, and one that overlaps its pattern without being covered (one token too many, or a wider pattern).
TOPICS = {"matching": "shop.{}", "non-matching": "billing.{}", "overlapping": "shop.{}.eu"}
PATTERNS = {"matching": "shop.*", "non-matching": "billing.*", "overlapping": "shop.>"}
BINARY_OPS = (
    "publish",
    "subscribe",
    "subscribe-pattern",
    "request",
    "reply",
    "create_topic",
    "delete_topic",
    "reset_group",
    "describe",
    "list",
)
HTTP_OPS = ("http GET /api/topics", "http GET /metrics", "http POST events", "http redrive")
UNTOPICAL = {"list", "http GET /api/topics", "http GET /metrics"}
_n = itertools.count()


def expected(role: str, operation: str, kind: str) -> bool:
    """docs/security.md's table, by hand."""
    if role == "admin":
        return True
    if role == "read-only":
        return operation in ("describe", "list", "http GET /api/topics", "http GET /metrics")
    if role == "service":
        own = (
            "publish",
            "subscribe",
            "subscribe-pattern",
            "request",
            "reply",
            "describe",
            "http POST events",
        )
        return operation in own and kind == "matching"
    return False  # anonymous: deny by default


@dataclass
class World:
    server: BrokerServer
    admin: RawClient
    clients: dict[str, RawClient]
    http: aiohttp.ClientSession
    base: str
    request_ids: itertools.count[int]

    def rid(self) -> int:
        return next(self.request_ids)


async def admin_ask(world: World, body: object) -> None:
    rid = world.rid()
    await world.admin.send(AdminRequest(request_id=rid, body=body))
    await world.admin.expect(AdminResponse, request_id=rid)


async def admin_group(world: World, topic: str, group: str) -> None:
    """Make ``group`` exist on ``topic`` (a member joins and leaves), so it can be reset."""
    rid = world.rid()
    await world.admin.send(Subscribe(request_id=rid, subscription_id=rid, topic=topic, group=group))
    await world.admin.expect(Subscribed, request_id=rid)
    await world.admin.send(Unsubscribe(request_id=world.rid(), subscription_id=rid))
    await world.admin.expect(Unsubscribed, subscription_id=rid)


async def answer(client: RawClient, rid: int, ok: type, timeout: float = 5.0) -> bool:
    """Whether the request ``rid`` succeeded (``ok`` came back) or was refused (``not_authorized``)."""
    frame = await client.expect(ok | Error, request_id=rid, timeout=timeout)  # type: ignore[arg-type]
    if isinstance(frame, Error):
        assert frame.code == "not_authorized", frame
        return False
    return True


async def run_binary(world: World, client: RawClient, operation: str, kind: str) -> bool:
    n = next(_n)
    topic = TOPICS.get(kind, "shop.{}").format(f"t{n}")
    rid = world.rid()
    if operation == "publish":
        await client.send(Produce(request_id=rid, topic=topic, batches=(batch(b"x"),)))
        result = (await client.expect(ProduceResult, request_id=rid)).results[0]
        if isinstance(result, Rejected):
            assert result.code == "not_authorized", result
            return False
        return isinstance(result, Appended)
    if operation in ("subscribe", "subscribe-pattern"):
        name = topic if operation == "subscribe" else PATTERNS[kind]
        await client.send(Subscribe(request_id=rid, subscription_id=rid, topic=name, group=f"g{n}"))
        ok = await answer(client, rid, Subscribed)
        if ok:  # leave no responder behind for the request cases
            await client.send(Unsubscribe(request_id=world.rid(), subscription_id=rid))
            await client.expect(Unsubscribed, subscription_id=rid)
        return ok
    if operation == "request":
        await client.send(Request(request_id=rid, topic=topic, timeout_ms=500, batch=batch(b"q")))
        return await answer(client, rid, NoResponders)  # passed the check; no one answers
    if operation == "reply":
        return await run_reply(world, client, topic, n)
    if operation == "create_topic":
        body: object = CreateTopic(name=topic)
    elif operation == "delete_topic":
        await admin_ask(world, CreateTopic(name=topic))
        body = DeleteTopic(name=topic)
    elif operation == "reset_group":
        await admin_ask(world, CreateTopic(name=topic))
        await admin_group(world, topic, f"g{n}")
        body = ResetGroup(group=f"g{n}", topic=topic, to=Earliest())
    elif operation == "describe":
        await admin_ask(world, CreateTopic(name=topic))
        body = DescribeTopic(name=topic)
    else:
        body = ListTopics()
    await client.send(AdminRequest(request_id=rid, body=body))
    return await answer(client, rid, AdminResponse)


async def run_reply(world: World, client: RawClient, topic: str, n: int) -> bool:
    """Respond to a request: subscribe to its topic, receive it, reply; success when the reply arrives."""
    sub = world.rid()
    await client.send(Subscribe(request_id=sub, subscription_id=sub, topic=topic, group=f"r{n}"))
    subscribed = await answer(client, sub, Subscribed)
    rid = world.rid()
    await world.admin.send(Request(request_id=rid, topic=topic, timeout_ms=2_000, batch=batch(b"q")))
    if subscribed:
        forwarded = await client.expect(Request, topic=topic)
        await client.send(Reply(request_id=forwarded.request_id, batch=batch(b"answer")))
    frame = await world.admin.expect(Reply | NoResponders | Error, request_id=rid)  # type: ignore[arg-type]
    return isinstance(frame, Reply)


async def run_http(world: World, who: Login, operation: str, kind: str) -> bool:
    n = next(_n)
    topic = TOPICS.get(kind, "shop.{}").format(f"h{n}")
    headers = who.http_headers()
    if operation.startswith("http GET"):
        path = operation.rsplit(maxsplit=1)[-1]
        async with world.http.get(world.base + path, headers=headers) as response:
            return classify(response.status, 200)
    if operation == "http POST events":
        url = f"{world.base}/api/topics/{topic}/events"
        async with world.http.post(url, json={"data": {"n": n}}, headers=headers) as response:
            return classify(response.status, 200)
    dead = f"{topic}.dlq.g"
    await admin_ask(world, CreateTopic(name=dead))
    async with world.http.post(f"{world.base}/api/dlq/{dead}/redrive", headers=headers) as response:
        return classify(response.status, 200)


def classify(status: int, ok: int) -> bool:
    assert status in (ok, 401, 403), status  # anything else would hide a bug behind "refused"
    return status == ok


async def test_auth_matrix(data_dir):
    server = await start_secure_broker(str(data_dir))
    admin = await login(server, ROLES["admin"])
    clients: dict[str, RawClient] = {}
    try:
        anonymous = await refused(server, ROLES["anonymous"])
        assert anonymous.reason == "not_authorized"
        for role, who in ROLES.items():
            if role != "anonymous":
                clients[role] = await login(server, who)
        async with aiohttp.ClientSession() as http:
            world = World(server, admin, clients, http, server.http_url or "", itertools.count(1_000))
            cases: list[tuple[str, str, str, Callable[[], Awaitable[bool]]]] = []
            for role, operation in itertools.product(ROLES, BINARY_OPS + HTTP_OPS):
                for kind in ("-",) if operation in UNTOPICAL else tuple(TOPICS):
                    cases.append((role, operation, kind, case(world, role, operation, kind)))
            observed = {(role, op, kind): await run() for role, op, kind, run in cases}
    finally:
        for client in [admin, *clients.values()]:
            await client.close()
        await server.stop()
    wanted = {key: expected(*key) for key in observed}
    unauthorised = sorted(key for key, ok in observed.items() if ok and not wanted[key])
    wrongly_refused = sorted(key for key, ok in observed.items() if not ok and wanted[key])
    allowed_count = sum(wanted.values())
    print(
        f"\nauth matrix: {len(observed)} cases ({len(ROLES)} roles x {len(BINARY_OPS + HTTP_OPS)} operations "
        f"x topic kinds); {allowed_count} allowed, {len(observed) - allowed_count} refused; "
        f"unauthorised successes: {len(unauthorised)}; wrongful refusals: {len(wrongly_refused)}"
    )
    assert unauthorised == []
    assert wrongly_refused == []
    assert len(observed) == len(ROLES) * (len(UNTOPICAL) + 3 * (len(BINARY_OPS + HTTP_OPS) - len(UNTOPICAL)))


def case(world: World, role: str, operation: str, kind: str) -> Callable[[], Awaitable[bool]]:
    who = ROLES[role]

    async def run() -> bool:
        if operation.startswith("http"):
            return await run_http(world, who, operation, kind)
        client = world.clients.get(role)
        if client is None:  # anonymous: the handshake itself was refused, so nothing can succeed
            return False
        return await run_binary(world, client, operation, kind)

    return run


@pytest.mark.parametrize("role", ["read-only", "service"])
async def test_a_refusal_names_the_service_the_operation_and_the_topic(data_dir, role):
    server = await start_secure_broker(str(data_dir))
    try:
        client = await login(server, ROLES[role])
        await client.send(Produce(request_id=1, topic="billing.invoices", batches=(batch(b"x"),)))
        result = (await client.expect(ProduceResult, request_id=1)).results[0]
        name = ROLES[role].service
        assert result == Rejected(
            code="not_authorized", message=f"service {name!r} may not publish to 'billing.invoices'"
        )
        await client.send(Subscribe(request_id=2, subscription_id=2, topic="shop.>", group="g"))
        error = await client.expect(Error, request_id=2)
        assert error.message == f"service {name!r} may not subscribe to 'shop.>'"
        await client.close()
    finally:
        await server.stop()
