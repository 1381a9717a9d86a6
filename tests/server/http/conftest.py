"""Fixtures: a real broker in this process serving its HTTP API on a free loopback port; an HTTP client."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from tidings.server import BrokerConfig, BrokerServer
from tidings.testing.servers import free_port

FAST = {"progress_save_interval_ms": 20, "shutdown_grace_ms": 500, "default_partitions": 2}


class Api:
    """Starts brokers (one at a time on the test's data directory) and speaks HTTP to the current one."""

    def __init__(self, data_dir: str, session: aiohttp.ClientSession) -> None:
        self.data_dir = data_dir
        self.session = session
        self.server: BrokerServer | None = None

    async def start(self, **changes: Any) -> BrokerServer:
        config = BrokerConfig(port=0, http_port=free_port(), data_dir=self.data_dir, **{**FAST, **changes})
        server = BrokerServer(config)
        await server.start(http=True)
        self.server = server
        return server

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    @property
    def base(self) -> str:
        assert self.server is not None and self.server.http_url is not None
        return self.server.http_url

    async def request(self, method: str, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            body = await response.read()
            assert response.status == expect, f"{method} {path}: {response.status} {body[:500]!r}"
            if response.content_type == "application/json":
                return await response.json()
            return body.decode()

    async def get(self, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        return await self.request("GET", path, expect=expect, **kwargs)

    async def post(self, path: str, *, expect: int = 200, **kwargs: Any) -> Any:
        return await self.request("POST", path, expect=expect, **kwargs)

    async def until(self, path: str, check: Callable[[Any], bool], *, timeout: float = 5.0) -> Any:
        """GET ``path`` until ``check(body)`` holds; the last body, or an assertion naming it."""
        deadline = time.monotonic() + timeout
        while True:
            body = await self.get(path)
            if check(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{path} never satisfied the check; last body: {body}")
            await asyncio.sleep(0.02)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
async def api(tmp_path) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        api = Api(str(tmp_path / "data"), session)
        await api.start()
        try:
            yield api
        finally:
            await api.stop()
