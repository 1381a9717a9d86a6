"""A private nats-server per module (file storage, fsync on every write, HTTP monitoring on)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.binaries import started
from tidings.testing.servers import ServerProcess, free_port, start_nats


@dataclass
class NatsServer:
    process: ServerProcess
    monitor_url: str

    @property
    def url(self) -> str:
        return self.process.url


def start(directory, *, sync_always: bool) -> NatsServer:
    http_port = free_port()
    process = started(
        lambda: start_nats(directory, sync_always=sync_always, extra_config=f"http: 127.0.0.1:{http_port}\n"),
        "nats-server",
    )
    return NatsServer(process, f"http://127.0.0.1:{http_port}")


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory) -> Iterator[NatsServer]:
    server = start(tmp_path_factory.mktemp("nats"), sync_always=True)
    try:
        yield server
    finally:
        server.process.kill()
