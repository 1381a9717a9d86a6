"""Private redis-servers: one per module (``appendfsync always``), and fresh ones for other settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.binaries import started
from tidings.testing.servers import ServerProcess, start_redis


def _start(directory: Path, appendfsync: str | None) -> ServerProcess:
    return started(lambda: start_redis(directory, appendfsync=appendfsync), "redis-server")


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = _start(tmp_path_factory.mktemp("redis"), "always")
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[str | None], ServerProcess]]:
    """``start_server(appendfsync)``: a redis-server of this test only (None: no AOF)."""
    started: list[ServerProcess] = []

    def start(appendfsync: str | None) -> ServerProcess:
        started.append(_start(tmp_path / f"redis-{len(started)}", appendfsync))
        return started[-1]

    try:
        yield start
    finally:
        for server in started:
            server.kill()
