"""Backend factories for the conformance suite: each test gets a private server.

* ``memory://``: a named in-process instance of its own, held open for the
  test; ``restart`` restarts that in-process broker on the same directory.
* ``tidings://``: ``tidings broker`` in a subprocess on a free port with a
  temporary data directory, killed by its PID at the end; ``restart`` stops
  it (SIGTERM, or SIGKILL for a crash) and starts it again on the same port
  and data. Blocking process work runs in a thread, off the event loop the
  clients need to answer the broker's goodbye.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tidings.backends import memory, open_backend
from tidings.testing.conformance import BackendFactory
from tidings.testing.servers import ServerProcess, free_port, start_broker


@pytest.fixture
async def memory_factory():
    name = f"conformance-{uuid.uuid4().hex[:8]}"
    url = f"memory://{name}"
    async with memory.shared(name) as broker:

        async def restart(crash: bool) -> None:
            await broker.restart(crash=crash)

        yield BackendFactory(url, lambda service: open_backend(url, service=service), restart)


@pytest.fixture
async def tidings_factory(tmp_path):
    port, data = free_port(), tmp_path / "data"
    runs: list[ServerProcess] = [
        await asyncio.to_thread(start_broker, tmp_path / "run-0", port=port, data=data)
    ]
    url = runs[0].url

    async def restart(crash: bool) -> None:
        await asyncio.to_thread(runs[-1].kill if crash else runs[-1].stop)
        directory = tmp_path / f"run-{len(runs)}"
        runs.append(await asyncio.to_thread(start_broker, directory, port=port, data=data))

    try:
        yield BackendFactory(url, lambda service: open_backend(url, service=service), restart)
    finally:
        for server in runs:
            server.kill()
