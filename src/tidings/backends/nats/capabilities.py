"""What ``nats://`` declares: every capability of the contract."""

from __future__ import annotations

from typing import Final

from tidings.backends.base import Capabilities

CAPABILITIES: Final = Capabilities(
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
