"""memory://: the broker in-process. Everything tidings:// declares except persistence."""

from __future__ import annotations

import pytest

from tests.conformance.suite import ConformanceSuite
from tidings.backends import Capabilities


class TestMemory(ConformanceSuite):
    capabilities = Capabilities(
        persistent=False,
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
        dedupe_by_id=False,
        reconnects=True,
        topic_patterns=True,
    )

    @pytest.fixture
    def factory(self, memory_factory):
        return memory_factory
