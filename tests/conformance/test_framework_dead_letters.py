"""The framework's own dead-lettering, on a real broker: memory:// with ``native_dead_letters`` hidden.

Where a backend does not dead-letter by itself, the handler runner publishes the event to
``<topic>.dlq.<group>`` with the ``DLQ_*`` headers and acks it (``tidings.app.handlers.settle``).
Hiding the capability of the in-process broker runs that path against real groups and real
topics: the framework's dead-letter scenarios must pass on it exactly as on a native backend,
and the dead letters must have been published by the framework, not moved by the broker.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from tidings.backends import Capabilities, open_backend
from tidings.backends.base import Backend
from tidings.testing.conformance import SCENARIOS, BackendFactory, run_scenario


class WithoutNativeDeadLetters:
    """A real backend whose capabilities say it cannot dead-letter: everything else is delegated."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.capabilities: Capabilities = dataclasses.replace(
            backend.capabilities,
            native_dead_letters=False,
            reasons={"native_dead_letters": "hidden to test the framework's own dead-lettering"},
        )
        self.published_to: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def publish(self, topic: str, data: bytes, **options: Any) -> Any:
        self.published_to.append(topic)
        return await self._backend.publish(topic, data, **options)

    async def __aenter__(self) -> WithoutNativeDeadLetters:
        await self._backend.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._backend.close()


FRAMEWORK_DEAD_LETTERS = [s for s in SCENARIOS if s.name.startswith("framework_") and "dead" in s.name]


def test_the_scenarios_exist():
    assert {s.name for s in FRAMEWORK_DEAD_LETTERS} == {
        "framework_dead_letters_after_retries",
        "framework_invalid_event_dead_lettered_at_once",
    }


@pytest.mark.parametrize("scenario", FRAMEWORK_DEAD_LETTERS, ids=[s.name for s in FRAMEWORK_DEAD_LETTERS])
async def test_framework_dead_letters_without_native_support(scenario, memory_factory):
    made: list[WithoutNativeDeadLetters] = []

    def make(service: str) -> Backend:
        wrapped = WithoutNativeDeadLetters(open_backend(memory_factory.url, service=service))
        made.append(wrapped)
        return wrapped  # type: ignore[return-value]

    await run_scenario(scenario, BackendFactory(memory_factory.url, make))
    assert made and all(not b.capabilities.native_dead_letters for b in made)
    assert any(".dlq." in topic for b in made for topic in b.published_to), "the framework published none"
