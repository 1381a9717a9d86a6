"""Scenarios: where a new group starts (earliest, an offset, a time) and where an existing one resumes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from tidings.backends.base import Admin, OutgoingMessage
from tidings.testing.conformance.harness import Harness, check, datas, scenario


def _numbered(prefix: str, count: int, start: int = 0) -> list[OutgoingMessage]:
    return [OutgoingMessage(f"{prefix}-{i}".encode(), key="k") for i in range(start, start + count)]


@scenario("replay_from_earliest")
async def replay_from_earliest(h: Harness) -> None:
    """A new group with start="earliest" receives everything already stored, in order."""
    backend = await h.backend()
    topic = await h.topic(backend, "history")
    sent = _numbered("event", 5)
    await backend.publish_batch(topic, sent)
    subscription = await h.subscribe(backend, topic, group=h.name("late"), start="earliest")
    got = datas(await h.receive_many(subscription, 5))
    check(got == [m.data for m in sent], f"replayed {got}")


@scenario("consumer_groups", "replay_from_earliest")
async def committed_position_wins(h: Harness) -> None:
    """A group that comes back resumes after what it acked: start applies only to a new group."""
    backend = await h.backend()
    topic = await h.topic(backend, "resume")
    group = h.name("g")
    await backend.publish_batch(topic, _numbered("event", 3))
    subscription = await backend.subscribe(topic, group=group, start="earliest")
    await h.receive_many(subscription, 3)
    await subscription.close()
    await backend.publish_batch(topic, _numbered("event", 2, start=3))
    again = await h.subscribe(backend, topic, group=group, start="earliest")
    got = datas(await h.receive_many(again, 2))
    check(got == [b"event-3", b"event-4"], f"resumed with {got}, expected only the two new events")


@scenario("replay_by_offset")
async def replay_from_offset(h: Harness) -> None:
    """A new group with start=<offset> begins at that offset (from a receipt)."""
    backend = await h.backend()
    topic = await h.topic(backend, "history")
    receipts = await backend.publish_batch(topic, _numbered("event", 6))
    subscription = await h.subscribe(backend, topic, group=h.name("from3"), start=receipts[3].offset)
    got = await h.receive_many(subscription, 3)
    check(
        datas(got) == [b"event-3", b"event-4", b"event-5"], f"from offset {receipts[3].offset}: {datas(got)}"
    )
    check([d.offset for d in got] == [r.offset for r in receipts[3:]], "offsets match the receipts")


@scenario("replay_by_time")
async def replay_from_time(h: Harness) -> None:
    """A new group with start=<datetime> begins at the first message stored at or after that time."""
    backend = await h.backend()
    topic = await h.topic(backend, "history")
    await backend.publish_batch(topic, _numbered("old", 3))
    probe = await h.subscribe(backend, topic, group=h.name("probe"), start="earliest")
    old = await h.receive_many(probe, 3)
    stored = [d.append_time for d in old]
    check(all(t is not None for t in stored), f"deliveries carry append_time: {stored}")
    last_old = max(t for t in stored if t is not None)
    cut = last_old + timedelta(milliseconds=1)
    while datetime.now(UTC) < cut + timedelta(milliseconds=20):  # the next appends are stamped after it
        await asyncio.sleep(0.005)
    await backend.publish_batch(topic, _numbered("new", 3))
    subscription = await h.subscribe(backend, topic, group=h.name("since"), start=cut)
    got = datas(await h.receive_many(subscription, 3))
    check(got == [b"new-0", b"new-1", b"new-2"], f"from {cut.isoformat()}: {got}")


@scenario("consumer_groups", "replay_from_earliest")
async def admin_offsets_meet_at_the_head(h: Harness) -> None:
    """Where the backend implements ``Admin``: every stored message's offset is below its partition's
    end offset, and once a group settled everything, its committed offset reaches the end offset of
    every partition holding messages (the rule ``tidings replay`` stops by), empty partitions and
    partitions whose last message is older than another's included."""
    backend = await h.backend()
    if not isinstance(backend, Admin):  # the optional protocol: nothing to hold the backend to
        return
    topic = await h.topic(backend, "head", partitions=3)
    receipts = [await backend.publish(topic, f"m{i}".encode(), key=f"key-{i}") for i in range(6)]
    receipts += [await backend.publish(topic, f"late{i}".encode(), key="key-0") for i in range(3)]
    ends = await backend.topic_end_offsets(topic)
    check(set(ends) == {0, 1, 2}, f"end offsets of a 3-partition topic: {ends}")
    below = [(r.partition, r.offset) for r in receipts if not r.offset < ends[r.partition]]
    check(not below, f"stored at or past their partition's end offset {ends}: {below}")
    group = h.name("head-reader")
    subscription = await h.subscribe(backend, topic, group=group, start="earliest")
    await h.receive_many(subscription, len(receipts))
    deadline = asyncio.get_running_loop().time() + 5.0
    while True:  # committed positions may be saved a moment after the acks
        committed = await backend.group_offsets(group, topic)
        behind = {
            p: (committed.get(p, 0), end) for p, end in ends.items() if end and committed.get(p, 0) < end
        }
        if not behind or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.05)
    check(not behind, f"after every ack, committed < end on partitions (committed, end): {behind}")
