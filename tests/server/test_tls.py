"""TLS on both ports, and client certificates as identities, with a throwaway CA made by ``openssl``."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

import tidings
from tidings.core.auth import parse_auth
from tidings.errors import BrokerConfigError, ConnectFailed, HandshakeRejected, PublishError
from tidings.server import BrokerConfig, BrokerServer

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    stranger_cert: Path
    stranger_key: Path


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


def issue(directory: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A P-256 key and a certificate for it, signed by the CA in ``directory``."""
    (directory / f"{name}.ext").write_text(extensions)
    openssl(directory, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.key")
    openssl(directory, "req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
    openssl(
        directory,
        "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-out", f"{name}.pem", "-extfile", f"{name}.ext",
    )  # fmt: skip
    return directory / f"{name}.pem", directory / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    openssl(directory, "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    openssl(
        directory, "req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=tidings test CA", "-days", "2",
        "-out", "ca.pem",
    )  # fmt: skip
    server = issue(directory, "server", "/CN=localhost", "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    client = issue(directory, "client", "/CN=payment", "extendedKeyUsage=clientAuth\n")
    stranger = issue(directory, "stranger", "/CN=stranger", "extendedKeyUsage=clientAuth\n")
    return Pki(directory / "ca.pem", *server, *client, *stranger)


CERT_AUTH = {"certs": [{"subject": "payment", "publish": ["payments.*"], "role": "read"}]}


@pytest.fixture
async def tls_broker(pki, data_dir):
    servers: list[BrokerServer] = []

    async def start(**changes: object) -> BrokerServer:
        config = BrokerConfig(
            port=0,
            http_port=0,
            data_dir=str(data_dir),
            tls_cert=str(pki.server_cert),
            tls_key=str(pki.server_key),
            shutdown_grace_ms=200,
        ).replace(**changes)
        server = BrokerServer(config.validate())
        await server.start(http=True)
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()


def tls_url(server: BrokerServer) -> str:
    host, port = server.address
    return f"tidings+tls://{host}:{port}"


async def test_the_binary_protocol_over_tls(tls_broker, pki):
    server = await tls_broker()
    assert server.url.startswith("tidings+tls://")
    async with tidings.connect(tls_url(server), service="shop", tls_ca_file=str(pki.ca)) as client:
        await client.publish("orders", b"encrypted")
        subscription = await client.subscribe("orders", group="g", start="earliest")
        message = await asyncio.wait_for(anext(subscription), 5)
        assert message.data == b"encrypted"
        await message.ack()


async def test_an_unknown_certificate_authority_is_refused(tls_broker):
    server = await tls_broker()
    client = tidings.connect(tls_url(server), service="shop", connect_timeout=3)
    with pytest.raises(ConnectFailed, match="TLS failed: CERTIFICATE_VERIFY_FAILED"):
        await client.open()


async def test_plain_tcp_to_a_tls_port_fails_fast(tls_broker):
    server = await tls_broker(handshake_timeout_ms=500)
    host, port = server.address
    client = tidings.connect(f"tidings://{host}:{port}", service="shop", connect_timeout=3)
    with pytest.raises((ConnectFailed, HandshakeRejected)):
        await client.open()


async def test_a_client_certificate_is_a_service_identity(tls_broker, pki):
    server = await tls_broker(tls_client_ca=str(pki.ca), auth=parse_auth(CERT_AUTH, "test"))
    options = {
        "tls_ca_file": str(pki.ca),
        "tls_cert_file": str(pki.client_cert),
        "tls_key_file": str(pki.client_key),
    }
    async with tidings.connect(tls_url(server), service="payment", **options) as client:
        await client.publish("payments.charged", b"by certificate")
        with pytest.raises(PublishError, match=r"may not publish to 'orders\.placed'"):
            await client.publish("orders.placed", b"no")
    with pytest.raises(HandshakeRejected, match="not 'shop'"):  # the certificate names its service
        await tidings.connect(tls_url(server), service="shop", **options).open()
    stranger = {**options, "tls_cert_file": str(pki.stranger_cert), "tls_key_file": str(pki.stranger_key)}
    with pytest.raises(HandshakeRejected, match=r"certificate \(stranger\) is not granted"):
        await tidings.connect(tls_url(server), service="stranger", **stranger).open()
    with pytest.raises(HandshakeRejected, match="authentication is required"):
        await tidings.connect(tls_url(server), service="payment", tls_ca_file=str(pki.ca)).open()


async def test_a_required_client_certificate(tls_broker, pki):
    server = await tls_broker(
        tls_client_ca=str(pki.ca), tls_require_client_cert=True, auth=parse_auth(CERT_AUTH, "test")
    )
    client = tidings.connect(tls_url(server), service="payment", tls_ca_file=str(pki.ca), connect_timeout=3)
    with pytest.raises((ConnectFailed, HandshakeRejected)):
        await client.open()


async def test_https_with_a_client_certificate(tls_broker, pki):
    server = await tls_broker(tls_client_ca=str(pki.ca), auth=parse_auth(CERT_AUTH, "test"))
    assert server.http_url is not None and server.http_url.startswith("https://")
    anonymous = ssl.create_default_context(cafile=str(pki.ca))
    with_cert = ssl.create_default_context(cafile=str(pki.ca))
    with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    async with aiohttp.ClientSession() as http:
        async with http.get(server.http_url + "/healthz", ssl=anonymous) as response:
            assert response.status == 200
        async with http.get(server.http_url + "/api/topics", ssl=anonymous) as response:
            assert response.status == 401
        async with http.get(server.http_url + "/api/topics", ssl=with_cert) as response:
            assert response.status == 200
        url = server.http_url + "/api/topics/payments.charged/events"
        async with http.post(url, json={"data": 1}, ssl=with_cert) as response:
            assert response.status == 200


def test_a_bad_certificate_path_stops_the_broker_with_a_clear_message(tmp_path, pki):
    from tidings.server.tls import server_context  # noqa: PLC0415

    config = BrokerConfig(tls_cert=str(tmp_path / "missing.pem"), tls_key=str(pki.server_key))
    with pytest.raises(BrokerConfigError, match=r"tls: cannot load the certificate .*missing\.pem"):
        server_context(config)
    mismatched = BrokerConfig(tls_cert=str(pki.server_cert), tls_key=str(pki.client_key))
    with pytest.raises(BrokerConfigError, match="tls: cannot load the certificate"):
        server_context(mismatched)


async def test_the_tidings_backend_over_tls(tls_broker, pki):
    from tidings.backends import open_backend  # noqa: PLC0415

    server = await tls_broker()
    async with open_backend(tls_url(server), service="shop", tls_ca_file=str(pki.ca)) as backend:
        await backend.publish("orders", b"through the backend, encrypted")
