"""redis://: Redis Streams through redis-py. It declares everything.

The factory is here, not in conftest.py: a private ``redis-server`` per test
with ``appendfsync always`` (every acknowledged write fsynced, so a kill -9
loses nothing acknowledged), restarted on the same port and directory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.binaries import started
from tests.conformance.suite import ConformanceSuite
from tidings.backends import Capabilities, open_backend
from tidings.testing.conformance import BackendFactory
from tidings.testing.servers import ServerProcess, free_port, start_redis


@pytest.fixture
async def redis_factory(tmp_path: Path) -> AsyncIterator[BackendFactory]:
    port, data = free_port(), tmp_path / "data"

    def start() -> ServerProcess:
        return start_redis(data, port=port, appendfsync="always")

    runs = [await asyncio.to_thread(started, start, "Redis conformance (redis-server)")]
    url = runs[0].url

    async def restart(crash: bool) -> None:
        await asyncio.to_thread(runs[-1].kill if crash else runs[-1].stop)
        runs.append(await asyncio.to_thread(start))

    try:
        yield BackendFactory(url, lambda service: open_backend(url, service=service), restart)
    finally:
        for server in runs:
            server.kill()


class TestRedis(ConformanceSuite):
    capabilities = Capabilities(
        persistent=True,
        ordered_per_key=True,
        consumer_groups=True,
        shared_groups=True,
        replay_from_earliest=True,
        replay_by_offset=True,
        replay_by_time=True,
        request_reply=True,
        no_responders=True,
        ack_deadline=True,
        nack_delay=True,
        max_deliveries=True,
        native_dead_letters=True,
        idempotent_publish=True,
        dedupe_by_id=True,
        reconnects=True,
        topic_patterns=True,
    )

    @pytest.fixture
    def factory(self, redis_factory: BackendFactory) -> BackendFactory:
        return redis_factory
