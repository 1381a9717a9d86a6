"""nats://: NATS JetStream in a private nats-server (file storage, ``sync_interval: always``).

The factory lives here, not in conftest.py: each test gets its own
nats-server on a free port with a store directory of its own; ``restart``
stops it (SIGTERM, or SIGKILL for a crash) and starts it again on the same
port and store. The server's HTTP monitoring port is on too, so the
adapter's fsync check reads the real setting instead of warning that it
cannot. A missing nats-server binary skips loudly (fails under ``CI=true``).
"""

from __future__ import annotations

import asyncio

import pytest

from tests.binaries import started
from tests.conformance.suite import ConformanceSuite
from tidings.backends import Capabilities, open_backend
from tidings.testing.conformance import BackendFactory
from tidings.testing.servers import ServerProcess, free_port, start_nats


@pytest.fixture
async def nats_factory(tmp_path):
    port, http_port = free_port(), free_port()
    monitor = f"http: 127.0.0.1:{http_port}\n"

    def start() -> ServerProcess:
        # The same directory every run: its store (directory/jetstream) must survive the restarts.
        return start_nats(tmp_path / "nats", port=port, sync_always=True, extra_config=monitor)

    runs = [await asyncio.to_thread(started, start, "NATS conformance (nats-server)")]
    url = runs[0].url

    async def restart(crash: bool) -> None:
        await asyncio.to_thread(runs[-1].kill if crash else runs[-1].stop)
        runs.append(await asyncio.to_thread(start))

    def make(service: str):
        return open_backend(url, service=service, monitor_url=f"http://127.0.0.1:{http_port}")

    try:
        yield BackendFactory(url, make, restart)
    finally:
        for server in runs:
            server.kill()


class TestNats(ConformanceSuite):
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
    def factory(self, nats_factory):
        return nats_factory
