"""Authentication end to end: the handshake, the real client, the HTTP API, and the broker's start-up rule."""

from __future__ import annotations

import subprocess
import sys

import aiohttp
import pytest

import tidings
from tidings.errors import (
    BrokerConfigError,
    HandshakeRejected,
    NotAuthorized,
    PublishError,
    SubscriptionClosed,
)
from tidings.protocol import AdminRequest, AdminResponse, CreateTopic, Reply, Request, Subscribe, Subscribed
from tidings.server import BrokerConfig

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


@pytest.fixture
async def secure(data_dir):
    server = await start_secure_broker(str(data_dir))
    yield server
    await server.stop()


async def test_a_token_cannot_claim_another_service(secure):
    rejected = await refused(secure, Login("payment", token=SERVICE_TOKEN))
    assert rejected.reason == "not_authorized"
    assert "for service 'shop', not 'payment'" in str(rejected)


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (Login("shop"), "authentication is required"),
        (Login("shop", token="not-the-token-0123456789"), "token is not valid"),
        (Login("dash", username="dash", password="guess"), "unknown username or wrong password"),
    ],
)
async def test_the_handshake_refusal_says_why(secure, who, message):
    rejected = await refused(secure, who)
    assert rejected.reason == "not_authorized"
    assert message in str(rejected)


async def test_a_forged_reply_reaches_no_one(secure):
    """A Reply is only taken from the session the request was routed to: guessing its id gets nothing."""
    requester = await login(secure, Login("ops", token=ADMIN_TOKEN))
    responder = await login(secure, Login("shop", token=SERVICE_TOKEN))
    forger = await login(secure, Login("dash", username="dash", password=READER_PASSWORD))
    await responder.send(Subscribe(request_id=1, subscription_id=1, topic="shop.rpc", group="rpc"))
    await responder.expect(Subscribed, request_id=1)
    await requester.send(Request(request_id=7, topic="shop.rpc", timeout_ms=5_000, batch=batch(b"q")))
    forwarded = await responder.expect(Request, topic="shop.rpc")
    await forger.send(Reply(request_id=forwarded.request_id, batch=batch(b"forged")))
    await responder.send(Reply(request_id=forwarded.request_id, batch=batch(b"genuine")))
    reply = await requester.expect(Reply, request_id=7)
    assert b"genuine" in bytes(reply.batch)
    await requester.none_of(Reply, within=0.1)
    for client in (requester, responder, forger):
        await client.close()


async def test_the_client_sdk_with_a_token(secure):
    async with tidings.connect(secure.url, service="shop", token=SERVICE_TOKEN) as client:
        await client.publish("shop.orders", b"ok")
        # the producer first looks up the partitions, which the same grant covers
        with pytest.raises(PublishError, match=r"may not describe 'billing\.invoices'") as refused_publish:
            await client.publish("billing.invoices", b"no")
        assert "not_authorized" in str(refused_publish.value)
        with pytest.raises(SubscriptionClosed, match=r"may not subscribe to 'billing\.invoices'") as closed:
            await client.subscribe("billing.invoices", group="g")
        assert closed.value.reason == "not_authorized"
        with pytest.raises(NotAuthorized, match="may not create topic"):
            await client.admin.create_topic("shop.created")


async def test_the_client_reads_the_token_from_the_environment(secure, monkeypatch):
    monkeypatch.setenv("TIDINGS_TOKEN", SERVICE_TOKEN)
    async with tidings.connect(secure.url, service="shop") as client:
        await client.publish("shop.orders", b"from the environment")


async def test_the_client_takes_a_username_and_password_from_the_url(secure):
    host, port = secure.address
    async with tidings.connect(f"tidings://dash:{READER_PASSWORD}@{host}:{port}", service="dash") as client:
        assert "shop.orders" not in await client.admin.list_topics()  # reading is allowed
        with pytest.raises(PublishError, match="may not publish"):
            await client.publish("shop.orders", b"no")
    assert READER_PASSWORD not in repr(client)


async def test_the_client_reports_a_refused_handshake(secure):
    client = tidings.connect(secure.url, service="shop", token="wrong-token-0123456789", reconnect_timeout=1)
    with pytest.raises(HandshakeRejected, match="token is not valid"):
        await client.open()


async def test_the_tidings_backend_passes_credentials_through(secure):
    from tidings.backends import open_backend  # noqa: PLC0415

    backend = open_backend(secure.url, service="shop", token=SERVICE_TOKEN)
    async with backend:
        await backend.publish("shop.orders", b"through the backend")


# -- HTTP ------------------------------------------------------------------------------------------


async def test_http_health_stays_open_and_the_api_asks_for_credentials(secure):
    base = secure.http_url
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/readyz", "/openapi.json"):
            async with http.get(base + path) as response:
                assert response.status == 200, path
        async with http.get(base + "/api/topics") as response:
            assert response.status == 401
            assert "Basic" in response.headers["WWW-Authenticate"]
            body = await response.json()
            assert body["error"] == "not_authorized" and "authentication is required" in body["detail"]
        async with http.get(base + "/api/topics", headers={"Authorization": "Bearer nope"}) as response:
            assert response.status == 401
        basic = Login("dash", username="dash", password=READER_PASSWORD).http_headers()
        async with http.get(base + "/api/topics", headers=basic) as response:
            assert response.status == 200
        async with http.post(base + "/api/topics/shop.x/events", json={"data": 1}, headers=basic) as response:
            assert response.status == 403
            assert (await response.json())["detail"] == "service 'dash' may not publish to 'shop.x'"


async def test_http_publishes_under_the_principals_name_only(secure):
    base = secure.http_url
    bearer = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        url = base + "/api/topics/shop.orders/events"
        async with http.post(url, json={"data": 1}, headers={**bearer, "X-Tidings-Service": "payment"}) as r:
            assert r.status == 403
            assert "may not publish as 'payment'" in (await r.json())["detail"]
        async with http.post(url, json={"data": 1}, headers=bearer) as response:
            assert response.status == 200
    assert "shop" in secure.core.topology.encode().decode()  # the flow map names the token's service


async def test_http_redrive_needs_admin(secure):
    admin = await login(secure, Login("ops", token=ADMIN_TOKEN))
    await admin.send(AdminRequest(request_id=1, body=CreateTopic(name="shop.orders.dlq.g")))
    await admin.expect(AdminResponse, request_id=1)
    await admin.close()
    url = secure.http_url + "/api/dlq/shop.orders.dlq.g/redrive"
    async with aiohttp.ClientSession() as http:
        async with http.post(url, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}) as response:
            assert response.status == 403
        async with http.post(url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as response:
            assert response.status == 200


# -- start-up rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "broker.example.com"])
def test_a_public_address_without_auth_is_refused(host):
    with pytest.raises(BrokerConfigError, match=f"refusing to listen on {host} without authentication"):
        BrokerConfig(host=host).check_exposure()
    BrokerConfig(host=host, insecure=True).check_exposure()
    BrokerConfig(host=host, auth_token="a-shared-token").check_exposure()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.53"])
def test_loopback_needs_no_auth(host):
    BrokerConfig(host=host).check_exposure()


def test_the_cli_refuses_a_public_address_without_auth(tmp_path):
    """It refuses before binding anything, so this never opens a public port."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tidings",
            "broker",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--data",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "refusing to listen on 0.0.0.0 without authentication" in result.stderr
    assert "--insecure" in result.stderr


def test_the_auth_table_loads_from_the_config_file(tmp_path):
    from tidings.server import load_file  # noqa: PLC0415

    path = tmp_path / "broker.toml"
    path.write_text(
        'host = "0.0.0.0"\n[auth]\n[[auth.tokens]]\nservice = "shop"\n'
        f'token = "{SERVICE_TOKEN}"\npublish = ["shop.*"]\n'
    )
    config = load_file(str(path))
    assert config.auth.enabled and config.auth_enabled
    config.check_exposure()
    path.write_text('[auth]\n[[auth.tokens]]\nservice = "shop"\ntoken = "short"\n')
    with pytest.raises(BrokerConfigError, match=r"broker.toml: auth.tokens\[0\]: token: at least 16"):
        load_file(str(path))


def test_secrets_stay_out_of_reprs():
    from tidings.backends import open_backend  # noqa: PLC0415
    from tidings.client import ClientConfig  # noqa: PLC0415
    from tidings.protocol import PROTOCOL_VERSION, Hello  # noqa: PLC0415

    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        service="shop",
        client_id="c",
        max_frame_size=1 << 20,
        auth_token=SERVICE_TOKEN,
        username="dash",
        password=READER_PASSWORD,
    )
    url = f"tidings://dash:{READER_PASSWORD}@h:1"
    config = ClientConfig(url=url, token=SERVICE_TOKEN, password=READER_PASSWORD)
    backend = open_backend(url, service="shop", token=SERVICE_TOKEN)
    for text in (repr(hello), repr(config), repr(backend), repr(backend.config)):
        assert SERVICE_TOKEN not in text and READER_PASSWORD not in text, text
    assert "tidings://dash:***@h:1" in repr(config)


def test_the_cli_hashes_a_password_and_makes_tokens():
    from tidings.core.auth import verify_password  # noqa: PLC0415

    command = [sys.executable, "-m", "tidings", "auth"]
    hashed = subprocess.run(
        [*command, "hash-password", "--stdin"], input="s3cret\n", capture_output=True, text=True, check=True
    ).stdout.strip()
    assert hashed.startswith("scrypt$16384$8$1$") and verify_password("s3cret", hashed)
    token = subprocess.run([*command, "new-token"], capture_output=True, text=True, check=True).stdout.strip()
    assert len(token) >= 40
