"""Shared pieces of the auth tests: a broker with authentication on, and raw clients that log in."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from tidings.core.auth import AuthConfig, hash_password, parse_auth
from tidings.errors import HandshakeRejected
from tidings.protocol import PROTOCOL_VERSION, Hello, Welcome
from tidings.protocol.codec import DEFAULT_MAX_FRAME_SIZE
from tidings.server import BrokerConfig, BrokerServer
from tidings.testing.raw import RawClient

SERVICE_TOKEN = "shop-service-token-0123456789"
ADMIN_TOKEN = "admin-token-0123456789abcdef"
READER_PASSWORD = "reader-password"
_ids = itertools.count(1)


def auth_config() -> AuthConfig:
    """Four kinds of principal: a service on ``shop.*``, a read-only user, an admin, and nobody else."""
    reader_hash = hash_password(READER_PASSWORD, n=2**10)
    return parse_auth(
        {
            "tokens": [
                {
                    "service": "shop",
                    "token": SERVICE_TOKEN,
                    "publish": ["shop.*"],
                    "subscribe": ["shop.*"],
                },
                {"service": "*", "token": ADMIN_TOKEN, "admin": True},
            ],
            "users": [{"username": "dash", "password": reader_hash, "role": "read"}],
        },
        "test",
    )


async def start_secure_broker(data_dir: str, **changes: object) -> BrokerServer:
    config = BrokerConfig(
        port=0,
        http_port=0,
        data_dir=data_dir,
        auth=auth_config(),
        progress_save_interval_ms=20,
        shutdown_grace_ms=200,
    ).replace(**changes)
    server = BrokerServer(config)
    await server.start(http=True)
    return server


@dataclass(frozen=True)
class Login:
    """How a role logs in, over either door."""

    service: str
    token: str | None = None
    username: str | None = None
    password: str | None = None

    def http_headers(self) -> dict[str, str]:
        if self.token is not None:
            return {"Authorization": f"Bearer {self.token}"}
        if self.username is not None:
            import base64  # noqa: PLC0415 - only here

            basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            return {"Authorization": f"Basic {basic}"}
        return {}


async def login(server: BrokerServer, who: Login, *, timeout: float = 5.0) -> RawClient:
    """A raw client past the handshake, or ``HandshakeRejected`` with the broker's reason."""
    client = await RawClient.open(*server.address)
    hello = Hello(
        protocol_version=PROTOCOL_VERSION,
        service=who.service,
        client_id=f"{who.service}-{next(_ids)}",
        max_frame_size=DEFAULT_MAX_FRAME_SIZE,
        auth_token=who.token,
        username=who.username,
        password=who.password,
    )
    await client.send(hello)
    try:
        client.welcome = await client.expect(Welcome, timeout=timeout)
    except BaseException:
        await client.close()
        raise
    return client


async def refused(server: BrokerServer, who: Login) -> HandshakeRejected:
    try:
        client = await login(server, who)
    except HandshakeRejected as exc:
        return exc
    await client.close()
    raise AssertionError(f"{who} was let in")
