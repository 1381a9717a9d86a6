"""Fixtures: a real broker in this process, listening on a free loopback port, and raw clients."""

from __future__ import annotations

import pytest
import uvloop

from tidings.server import BrokerConfig, BrokerServer
from tidings.testing.raw import RawClient

FAST = {
    "progress_save_interval_ms": 20,
    "shutdown_grace_ms": 500,
}


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


class Brokers:
    """Starts brokers on the test's data directory (one at a time: the directory is locked)."""

    def __init__(self, data_dir) -> None:
        self.data_dir = data_dir
        self.started: list[BrokerServer] = []

    async def __call__(self, **changes) -> BrokerServer:
        config = BrokerConfig(port=0, data_dir=str(self.data_dir), **{**FAST, **changes})
        server = BrokerServer(config)
        await server.start()
        self.started.append(server)
        return server

    async def stop_all(self) -> None:
        for server in self.started:
            await server.stop()


@pytest.fixture
async def start_broker(data_dir):
    brokers = Brokers(data_dir)
    yield brokers
    await brokers.stop_all()


@pytest.fixture
async def broker(start_broker) -> BrokerServer:
    return await start_broker()


@pytest.fixture
async def connect(start_broker):
    """Connect a raw client (handshake done) to ``server``, else the last broker started (else a new one)."""
    clients: list[RawClient] = []

    async def open_client(server: BrokerServer | None = None, **options) -> RawClient:
        if server is None:
            server = start_broker.started[-1] if start_broker.started else await start_broker()
        client = await RawClient.connect(*server.address, **options)
        clients.append(client)
        return client

    yield open_client
    for client in clients:
        await client.close()


def pytest_asyncio_loop_factories(config, item):
    """Run the in-process brokers on uvloop, as ``tidings broker`` does."""
    return {"uvloop": uvloop.new_event_loop}
