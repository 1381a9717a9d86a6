"""tidings://: the broker in a subprocess. It declares everything but deduplication by message id."""

from __future__ import annotations

import pytest

from tests.conformance.suite import ConformanceSuite
from tidings.backends import Capabilities


class TestTidings(ConformanceSuite):
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
        dedupe_by_id=False,
        reconnects=True,
        topic_patterns=True,
    )

    @pytest.fixture
    def factory(self, tidings_factory):
        return tidings_factory
