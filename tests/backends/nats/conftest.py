"""A private nats-server per module (file storage, fsync on every write, HTTP monitoring on)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tidings.testing.servers import MissingBinary, ServerProcess, free_port, start_nats


@dataclass
class NatsServer:
    process: ServerProcess
    monitor_url: str

    @property
    def url(self) -> str:
        return self.process.url


def start(directory, *, sync_always: bool) -> NatsServer:
    http_port = free_port()
    try:
        process = start_nats(
            directory, sync_always=sync_always, extra_config=f"http: 127.0.0.1:{http_port}\n"
        )
    except MissingBinary as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"nats-server is required under CI: {exc}")
        pytest.skip(f"NATS TESTS NOT RUN: {exc}")
    return NatsServer(process, f"http://127.0.0.1:{http_port}")


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory) -> Iterator[NatsServer]:
    server = start(tmp_path_factory.mktemp("nats"), sync_always=True)
    try:
        yield server
    finally:
        server.process.kill()
