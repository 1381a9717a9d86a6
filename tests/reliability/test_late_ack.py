"""A late ack from the member holding the redelivery is stale (scenario 4a, over real sockets)."""

from __future__ import annotations

import struct

import msgspec
import pytest

from tests.core.groups.helpers import Harness, messages
from tests.reliability import late_ack
from tests.reliability.sizes import CI
from tidings.protocol import Ack, FrameKind, PartitionRanges, decode_frame, delivery_ranges, encode_bytes


async def test_a_late_ack_never_settles_the_newer_delivery(tmp_path):
    figures = await late_ack.run(CI["late_ack"], tmp_path)
    assert figures["late_acks_accepted"] == 0
    assert figures["untagged_acks_settle"] is True


# -- the rule in the engine, without sockets -------------------------------------------------


def tagged_ranges(offset: int, delivery: int) -> tuple[PartitionRanges, ...]:
    return delivery_ranges([("t", 0, offset, delivery)])


def test_the_engine_settles_only_the_current_delivery_of_a_tagged_settlement():
    harness = Harness()
    harness.topic("t")
    harness.subscribe("a", "t", "g", ack_deadline_ms=100)
    (offset,) = harness.produce("t", 0, 1)
    assert messages(harness.take()) == [("a", "t", 0, offset, 1)]
    harness.tick(101)  # the handler overran its deadline: delivery 2, to the same member
    assert messages(harness.take()) == [("a", "t", 0, offset, 2)]
    harness.engine.ack("a", 1, tagged_ranges(offset, 1))  # the late ack: stale
    assert harness.engine.group_stats("g").stale_acks == 1
    harness.engine.nack("a", 1, tagged_ranges(offset, 2), delay_ms=0, reason="second handler failed")
    assert messages(harness.take()) == [("a", "t", 0, offset, 3)]  # the nack counted
    harness.engine.term("a", 1, tagged_ranges(offset, 2), reason="late")  # stale too
    harness.engine.ack("a", 1, tagged_ranges(offset, 3))
    assert harness.engine.group_stats("g").acked == 1


def test_an_ack_tagged_with_the_current_delivery_settles_a_message_waiting_to_come_back():
    harness = Harness()
    harness.topic("t")
    harness.subscribe("a", "t", "g", ack_deadline_ms=100, credits=1)
    (offset,) = harness.produce("t", 0, 1)
    harness.take()
    harness.tick(101)  # back to the group, not yet redelivered (no credit): still delivery 1
    harness.engine.ack("a", 1, tagged_ranges(offset, 1))
    harness.engine.credit("a", 1, 1)
    assert harness.take() == []  # settled: handled after its deadline, no redelivery needed


def test_delivery_ranges_group_per_delivery_and_the_tag_round_trips_the_codec():
    groups = delivery_ranges([("t", 0, 5, 1), ("t", 0, 6, 1), ("t", 0, 7, 2), ("a", 1, 0, 1)])
    assert [(g.topic, g.partition, g.delivery, [(r.first, r.last) for r in g.ranges]) for g in groups] == [
        ("a", 1, 1, [(0, 0)]),
        ("t", 0, 1, [(5, 6)]),
        ("t", 0, 2, [(7, 7)]),
    ]
    frame = Ack(subscription_id=3, offsets=groups)
    assert decode_frame(memoryview(encode_bytes(frame))[4:]) == frame
    with pytest.raises(ValueError, match="appears twice"):
        Ack(subscription_id=3, offsets=(groups[1], groups[1]))


def test_an_ack_from_a_client_before_the_tag_decodes_as_untagged():
    """The old wire form: PartitionRanges as [topic, partition, ranges], no fourth element."""
    old = msgspec.msgpack.encode([3, [["t", 0, [[5, 6]]]]])
    body = struct.pack("<BI", FrameKind.ACK, len(old)) + old
    frame = decode_frame(memoryview(body))
    assert isinstance(frame, Ack) and frame.offsets[0].delivery == 0
