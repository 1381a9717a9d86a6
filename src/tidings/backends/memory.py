"""``memory://``: the broker in this process, for tests; the same semantics because it is the same code.

A memory backend is the ``tidings://`` backend whose client dials an
``InProcessBroker`` (``tidings.testing.inprocess``) through in-memory pipes
instead of TCP. The broker's core, consumer groups and storage run as they
do in ``tidings broker``, on the test's event loop, with their files in a
temporary directory (fsync never). So consumer groups, ack deadlines,
dead letters, replay and request/reply behave exactly as on the real
broker, and the conformance suite holds memory:// to the same scenarios.

Instances:

* ``memory://`` alone is a private broker: a fresh one per backend.
* ``memory://NAME`` is shared within the process: every backend opened with
  the same name (on the same event loop) talks to the same broker, so two
  Apps in one test see each other's events. It lives while at least one
  backend holds it open, then it is stopped and its directory deleted; the
  next backend with that name starts from nothing. (A name in use on
  another, finished event loop is replaced.)

``shared(name)`` gives tests the ``InProcessBroker`` of a named instance,
held open for the block, for instance to ``restart()`` it.

Not declared, and why: ``persistent`` (the data goes with the process) and
``dedupe_by_id`` (as tidings://). Everything else is the broker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from tidings.backends.tidings import CAPABILITIES as BROKER_CAPABILITIES
from tidings.backends.tidings import TidingsBackend, TidingsBackendConfig
from tidings.client import Transport
from tidings.errors import InvalidBackendConfig
from tidings.testing.inprocess import InProcessBroker

CAPABILITIES: Final = dataclasses.replace(
    BROKER_CAPABILITIES,
    persistent=False,
    reasons={
        **BROKER_CAPABILITIES.reasons,
        "persistent": "an in-process broker: its data lives in a temporary directory deleted when the "
        "last backend using the instance closes (it does survive restart() of the instance)",
    },
)
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,100}\Z")


@dataclass(slots=True)
class _Instance:
    broker: InProcessBroker
    loop: asyncio.AbstractEventLoop
    users: int = 0


_instances: dict[str, _Instance] = {}
_lock: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}


async def acquire(name: str | None) -> InProcessBroker:
    """The running broker of instance ``name`` (None: a new private one), held until ``release``."""
    loop = asyncio.get_running_loop()
    async with _lock.setdefault(loop, asyncio.Lock()):
        for stale in [n for n, i in _instances.items() if i.loop.is_closed()]:
            _discard(_instances.pop(stale).broker)  # its loop is gone, and its tasks with it
        for old in [other for other in _lock if other.is_closed()]:
            del _lock[old]
        key = name if name is not None else f"private-{uuid.uuid4().hex}"
        instance = _instances.get(key)
        if instance is not None and instance.loop is not loop:
            raise InvalidBackendConfig(f"memory://{name} is in use on another event loop")
        if instance is None:
            directory = Path(tempfile.mkdtemp(prefix=f"tidings-memory-{name or 'private'}-"))
            broker = InProcessBroker(directory, name=name or "private")
            try:
                await broker.start()
            except BaseException:
                _discard(broker)
                raise
            instance = _instances[key] = _Instance(broker, loop)
        instance.users += 1
        return instance.broker


async def release(broker: InProcessBroker) -> None:
    """Let go of an instance ``acquire`` gave; the last user stops it and deletes its directory."""
    for key, instance in list(_instances.items()):
        if instance.broker is broker:
            instance.users -= 1
            if instance.users <= 0:
                del _instances[key]
                try:
                    await broker.stop()
                finally:
                    _discard(broker)
            return


@contextlib.asynccontextmanager
async def shared(name: str) -> AsyncIterator[InProcessBroker]:
    """Hold ``memory://name`` open for the block and give its broker (to restart it, say)."""
    broker = await acquire(name)
    try:
        yield broker
    finally:
        await release(broker)


def _discard(broker: InProcessBroker) -> None:
    shutil.rmtree(broker.data_dir, ignore_errors=True)


def parse_name(url: str) -> str | None:
    """``memory://NAME`` -> NAME; ``memory://`` -> None (private). ``InvalidBackendConfig`` otherwise."""
    rest = url.split("://", 1)[1] if "://" in url else url
    name = rest.rstrip("/")
    if not name:
        return None
    if not _NAME.match(name):
        raise InvalidBackendConfig(
            f"bad memory URL {url!r}: expected memory:// or memory://NAME (NAME: 1-100 of A-Z a-z 0-9 _ -)"
        )
    return name


def from_url(url: str, *, service: str, **options: Any) -> MemoryBackend:
    """The opener ``open_backend`` uses for ``memory://``; ``options`` as for tidings:// (no URL in them)."""
    name = parse_name(url)
    TidingsBackendConfig.check_options(options, url)
    client_url = f"tidings://{name or 'private'}.memory:7400"  # what the client's logs call it
    config = TidingsBackendConfig.from_url(client_url, service=service, **options)
    config.client_config()
    return MemoryBackend(config, name=name)


class MemoryBackend(TidingsBackend):
    """A ``TidingsBackend`` on an in-process broker. See the module docstring."""

    def __init__(self, config: TidingsBackendConfig, *, name: str | None) -> None:
        super().__init__(config, transport=self._dial, capabilities=CAPABILITIES)
        self.name = name
        self.broker: InProcessBroker | None = None
        """The instance's broker while open."""

    @property
    def url(self) -> str:
        return f"memory://{self.name or ''}"

    async def _dial(self) -> Transport:
        if self.broker is None:
            raise InvalidBackendConfig(f"{self.url}: the backend is not open")
        return await self.broker.connect()

    async def open(self) -> None:
        if self.broker is not None:
            return
        self.broker = await acquire(self.name)
        try:
            await super().open()
        except BaseException:
            await self._release()
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            await self._release()

    async def _release(self) -> None:
        broker, self.broker = self.broker, None
        if broker is not None:
            await release(broker)
