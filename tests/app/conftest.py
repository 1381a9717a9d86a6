"""Fixtures: a private PostgreSQL for the whole session, and a fresh store per test on SQLite or on it.

PostgreSQL is started by tidings.testing.servers.start_postgres (initdb into a temp dir, a free
loopback port, stopped by its PID). Without the binaries the PostgreSQL cases are skipped, loudly,
on a developer's machine, and fail under CI=true, where a skip would hide a missing install step.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import uuid

import asyncpg
import pytest

from tests.binaries import started
from tidings.app.store import Store
from tidings.testing.servers import start_postgres


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    server = started(lambda: start_postgres(tmp_path_factory.mktemp("postgres")), "PostgreSQL")
    yield server
    if server.alive():
        server.process.send_signal(signal.SIGINT)  # fast shutdown: do not wait for idle pool connections
    server.stop()
    shutil.rmtree(server.directory, ignore_errors=True)


def _admin(port: int, statement: str) -> None:
    """One statement on the server's ``postgres`` database, on a thread (fixtures may run inside a loop)."""

    async def run() -> None:
        connection = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on the session's PostgreSQL, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin(postgres_server.port, f"CREATE DATABASE {name}")
    yield f"postgresql://postgres@127.0.0.1:{postgres_server.port}/{name}"
    _admin(postgres_server.port, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'service.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(store_url):
    opened = await Store.open(store_url)
    yield opened
    await opened.close()
