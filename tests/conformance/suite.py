"""The pytest layer over ``tidings.testing.conformance``: one test per scenario, skipped only by capability.

A backend's test file subclasses ``ConformanceSuite``, restates the
capabilities it expects (``capabilities``) and provides the ``factory``
fixture. ``test_declares_its_capabilities`` pins the declaration, so a
capability cannot be dropped (and its scenarios silently skipped) without
an edit here; every skipped scenario prints the capability and the reason.
"""

from __future__ import annotations

from typing import ClassVar

import pytest

from tidings.backends import Capabilities
from tidings.testing.conformance import SCENARIOS, BackendFactory, Scenario, run_scenario


class ConformanceSuite:
    capabilities: ClassVar[Capabilities]

    @pytest.fixture
    def factory(self) -> BackendFactory:
        raise NotImplementedError("a backend's test file provides the factory fixture")

    def test_declares_its_capabilities(self, factory: BackendFactory) -> None:
        declared = factory.make("probe").capabilities
        assert declared == self.capabilities
        for name in declared.missing():
            assert declared.reasons.get(name), f"{factory.url} gives no reason for lacking {name!r}"

    @pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
    async def test_scenario(self, scenario: Scenario, factory: BackendFactory) -> None:
        reason = scenario.skip_reason(factory.make("probe").capabilities)
        if reason is not None:
            pytest.skip(f"{factory.url}: {reason}")
        await run_scenario(scenario, factory)
