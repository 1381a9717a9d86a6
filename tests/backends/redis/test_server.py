"""The redis:// backend against real redis-servers: what the conformance suite does not see."""

from __future__ import annotations

import asyncio
import logging
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from tidings.backends import OutgoingMessage, open_backend
from tidings.backends.base import DLQ_DELIVERIES, DLQ_REASON, dead_letter_topic
from tidings.backends.redis import RedisBackend
from tidings.backends.redis.keys import Keys
from tidings.errors import (
    ConnectFailed,
    GroupModeConflict,
    NotAuthorized,
    PublishError,
    TopicExists,
    UnknownTopic,
)
from tidings.records import partition_for_key
from tidings.testing.servers import ServerProcess, free_port, start_redis

WAIT = 5.0


def _name(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}"


def _backend(server: ServerProcess, **options: Any) -> RedisBackend:
    backend = open_backend(server.url, service="test", **options)
    assert isinstance(backend, RedisBackend)
    return backend


@pytest.fixture
async def raw(redis_server: ServerProcess) -> AsyncIterator[Redis]:
    """A plain redis-py client, to look at what the backend stored."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def backend(redis_server: ServerProcess) -> AsyncIterator[RedisBackend]:
    async with _backend(redis_server) as opened:
        yield opened


# -- durability warnings -------------------------------------------------------------------


@pytest.mark.parametrize("appendfsync", [None, "everysec"])
async def test_warns_loudly_when_acks_are_not_durable(
    start_server: Callable[[str | None], ServerProcess],
    appendfsync: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = start_server(appendfsync)
    with caplog.at_level(logging.WARNING, logger="tidings.backends.redis"):
        async with _backend(server) as backend:
            assert backend.durability is not None and not backend.durability.acks_durable
    [record] = [r for r in caplog.records if "MAY LOSE ACKNOWLEDGED MESSAGES" in r.getMessage()]
    assert record.levelno == logging.WARNING
    expected = "appendonly no" if appendfsync is None else "appendfsync everysec"
    assert expected in record.getMessage()


async def test_no_warning_when_every_ack_is_fsynced(
    redis_server: ServerProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tidings.backends.redis"):
        async with _backend(redis_server) as backend:
            assert backend.durability is not None
            assert (backend.durability.appendonly, backend.durability.appendfsync) == ("yes", "always")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_denied_config_command_is_warned_about_not_fatal(
    redis_server: ServerProcess, raw: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    user = _name("limited")
    await raw.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-config")
    url = redis_server.url.replace("redis://", f"redis://{user}:pw@")
    with caplog.at_level(logging.WARNING, logger="tidings.backends.redis"):
        async with open_backend(url, service="test") as backend:
            assert isinstance(backend, RedisBackend) and backend.durability is not None
            assert not backend.durability.known
            await backend.publish(_name("t"), b"works without CONFIG")
    assert any("unknown persistence settings" in r.getMessage() for r in caplog.records)


# -- errors ----------------------------------------------------------------------------------


async def test_nothing_listening_is_connect_failed() -> None:
    backend = open_backend(f"redis://127.0.0.1:{free_port()}/0", service="test", connect_timeout=1.0)
    with pytest.raises(ConnectFailed, match="connecting"):
        await backend.open()


async def test_a_wrong_password_is_not_authorized(redis_server: ServerProcess, raw: Redis) -> None:
    user = _name("user")
    await raw.execute_command("ACL", "SETUSER", user, "on", ">right", "~*", "&*", "+@all")
    backend = open_backend(redis_server.url.replace("redis://", f"redis://{user}:wrong@"), service="test")
    with pytest.raises(NotAuthorized):
        await backend.open()


async def test_a_full_server_refuses_publishes(backend: RedisBackend, raw: Redis) -> None:
    await raw.config_set("maxmemory", 1)
    try:
        with pytest.raises(PublishError) as refused:
            await backend.publish(_name("t"), b"x" * 1000)
        assert refused.value.reason == "out_of_memory"
    finally:
        await raw.config_set("maxmemory", 0)


# -- ids, offsets, partitions, retention ---------------------------------------------------------


async def test_entry_ids_are_append_time_and_offset(backend: RedisBackend, raw: Redis) -> None:
    topic = _name("ids")
    before = int(time.time() * 1000)
    receipts = await backend.publish_batch(topic, [OutgoingMessage(f"m{i}".encode()) for i in range(5)])
    receipts.append(await backend.publish(topic, b"m5"))
    after = int(time.time() * 1000)
    entries = await raw.xrange(Keys("tidings:", topic).stream(0))
    ids = [entry_id.decode() for entry_id, _ in entries]
    assert [int(i.split("-")[1]) for i in ids] == [r.offset for r in receipts] == list(range(6))
    times = [int(i.split("-")[0]) for i in ids]
    assert times == sorted(times) and before - 5 <= times[0] and times[-1] <= after + 5


async def test_keys_land_on_the_brokers_partition(backend: RedisBackend) -> None:
    topic = _name("keyed")
    await backend.create_topic(topic, partitions=4)
    for number in range(20):
        key = f"customer-{number}"
        receipt = await backend.publish(topic, b"x", key=key)
        assert receipt.partition == partition_for_key(key.encode(), 4)


async def test_retention_trims_each_partition_with_maxlen(redis_server: ServerProcess, raw: Redis) -> None:
    topic = _name("retained")
    async with _backend(redis_server, retention=3) as backend:
        receipts = await backend.publish_batch(topic, [OutgoingMessage(f"m{i}".encode()) for i in range(10)])
        assert await raw.xlen(Keys("tidings:", topic).stream(0)) == 3
        subscription = await backend.subscribe(topic, group=_name("g"), start="earliest")
        got = [await asyncio.wait_for(anext(subscription), WAIT) for _ in range(3)]
        assert [d.offset for d in got] == [r.offset for r in receipts[-3:]] == [7, 8, 9]
        early = await backend.subscribe(topic, group=_name("g"), start=2)  # clamped to the oldest retained
        assert (await asyncio.wait_for(anext(early), WAIT)).offset == 7
    async with _backend(redis_server) as unbounded:
        other = _name("unbounded")
        await unbounded.publish_batch(other, [OutgoingMessage(b"m") for _ in range(10)])
        assert await raw.xlen(Keys("tidings:", other).stream(0)) == 10


@pytest.mark.parametrize(("start", "first"), [(0, 0), (1, 1), (17, 17), (29, 29), (30, None), (99, None)])
async def test_replay_by_offset_starts_at_that_offset(
    backend: RedisBackend, start: int, first: int | None
) -> None:
    topic = _name("offsets")
    for chunk in range(3):  # three batches, so ids span several milliseconds and share some
        await backend.publish_batch(topic, [OutgoingMessage(f"{chunk}-{i}".encode()) for i in range(10)])
        await asyncio.sleep(0.003)
    subscription = await backend.subscribe(topic, group=_name("g"), start=start)
    if first is None:  # past the end: from the next message published
        first = (await backend.publish(topic, b"new")).offset
    assert (await asyncio.wait_for(anext(subscription), WAIT)).offset == first


async def test_replay_by_time_uses_the_ids_millisecond(backend: RedisBackend) -> None:
    topic = _name("times")
    old = await backend.publish(topic, b"old")
    await asyncio.sleep(0.01)
    cut = datetime.now(UTC)
    await asyncio.sleep(0.01)
    new = await backend.publish(topic, b"new")
    subscription = await backend.subscribe(topic, group=_name("g"), start=cut)
    delivery = await asyncio.wait_for(anext(subscription), WAIT)
    assert (delivery.data, delivery.offset) == (b"new", new.offset) and old.offset < new.offset
    assert delivery.append_time is not None and delivery.append_time >= cut - timedelta(milliseconds=1)


async def test_a_msg_id_is_forgotten_after_the_dedupe_window(redis_server: ServerProcess) -> None:
    topic = _name("window")
    async with _backend(redis_server, dedupe_window=0.2) as backend:
        first = await backend.publish(topic, b"x", msg_id="payment-1")
        assert (await backend.publish(topic, b"x", msg_id="payment-1")).duplicate
        await asyncio.sleep(0.3)
        again = await backend.publish(topic, b"x", msg_id="payment-1")
        assert not again.duplicate and again.offset == first.offset + 1


# -- admin -----------------------------------------------------------------------------------------


async def test_admin_topics_and_group_positions(backend: RedisBackend) -> None:
    topic, group = _name("admin"), _name("g")
    await backend.create_topic(topic, partitions=2)
    with pytest.raises(TopicExists):
        await backend.create_topic(topic, partitions=2)
    with pytest.raises(UnknownTopic):
        await backend.topic_end_offsets(_name("missing"))
    assert await backend.topic_end_offsets(topic) == {0: 0, 1: 0}
    assert await backend.group_offsets(group, topic) == {}
    for number in range(6):
        await backend.publish(topic, f"m{number}".encode(), key="same")
    partition = partition_for_key(b"same", 2)
    assert (await backend.topic_end_offsets(topic))[partition] == 6

    subscription = await backend.subscribe(topic, group=group, start="earliest")
    deliveries = [await asyncio.wait_for(anext(subscription), WAIT) for _ in range(3)]
    await deliveries[0].ack()
    await deliveries[2].ack()  # offset 1 is still out: the committed offset stays at 1
    assert (await backend.group_offsets(group, topic))[partition] == 1
    await deliveries[1].ack()
    assert (await backend.group_offsets(group, topic))[partition] == 3
    await subscription.close()

    await backend.reset_group(group, topic, "earliest")
    assert (await backend.group_offsets(group, topic))[partition] == 0
    again = await backend.subscribe(topic, group=group)
    assert (await asyncio.wait_for(anext(again), WAIT)).data == b"m0"


# -- leaving a group ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["shared", "partitioned"])
async def test_a_leaving_member_hands_its_unsettled_messages_back(
    redis_server: ServerProcess, mode: str
) -> None:
    topic, group = _name("handover"), _name("g")
    async with _backend(redis_server) as first, _backend(redis_server) as second:
        leaving = await first.subscribe(topic, group=group, mode=mode, ack_deadline=30.0)  # type: ignore[arg-type]
        await first.publish(topic, b"held")
        held = await asyncio.wait_for(anext(leaving), WAIT)
        staying = await second.subscribe(topic, group=group, mode=mode, ack_deadline=30.0)  # type: ignore[arg-type]
        started = time.monotonic()
        await leaving.close()
        again = await asyncio.wait_for(anext(staying), WAIT)
        assert (again.data, again.offset, again.delivery_count) == (b"held", held.offset, 2)
        assert time.monotonic() - started < WAIT  # not after the 30 s ack deadline
        await again.ack()


# -- topic patterns ----------------------------------------------------------------------------------


async def test_a_pattern_starts_existing_topics_at_start_and_new_ones_at_their_beginning(
    backend: RedisBackend,
) -> None:
    base = _name("shop")
    await backend.publish(f"{base}.orders", b"before")
    subscription = await backend.subscribe(f"{base}.*", group=_name("g"))  # start="latest"
    await backend.publish(f"{base}.refunds", b"new topic")  # created now: taken from its first message
    await backend.publish(f"{base}.orders", b"after")
    got = {(await asyncio.wait_for(anext(subscription), WAIT)).data for _ in range(2)}
    assert got == {b"new topic", b"after"}


async def test_a_rescan_finds_topics_whose_announcement_was_missed(
    redis_server: ServerProcess, raw: Redis
) -> None:
    base = _name("shop")
    async with _backend(redis_server, pattern_rescan_interval=0.1) as backend:
        subscription = await backend.subscribe(f"{base}.>", group=_name("g"))
        # another tool made the topic: no announcement on the topics channel
        await raw.hset(Keys("tidings:", f"{base}.eu.orders").meta, "partitions", 1)
        await raw.xadd(Keys("tidings:", f"{base}.eu.orders").stream(0), {"d": b"quiet", "t": b"0"}, id="1-0")
        delivery = await asyncio.wait_for(anext(subscription), WAIT)
        assert (delivery.topic, delivery.data, delivery.offset) == (f"{base}.eu.orders", b"quiet", 0)


async def test_a_group_keeps_its_mode(backend: RedisBackend) -> None:
    topic, group = _name("modes"), _name("g")
    await backend.subscribe(topic, group=group, mode="shared")
    with pytest.raises(GroupModeConflict, match="shared, not partitioned"):
        await backend.subscribe(topic, group=group, mode="partitioned")


async def test_iteration_ends_after_close(backend: RedisBackend) -> None:
    topic = _name("closing")
    subscription = await backend.subscribe(topic, group=_name("g"), prefetch=10)
    await backend.publish_batch(topic, [OutgoingMessage(b"x") for _ in range(3)])
    await asyncio.wait_for(anext(subscription), WAIT)
    await subscription.close()
    assert [d async for d in subscription] == []


# -- a crash of the server ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["partitioned", "shared"])
async def test_after_a_kill_9_unsettled_messages_come_back_and_acked_ones_do_not(
    tmp_path: Path, mode: str
) -> None:
    port, data = free_port(), tmp_path / "data"
    servers = [await asyncio.to_thread(start_redis, data, port=port, appendfsync="always")]
    try:
        async with _backend(servers[0]) as backend:
            topic = _name("crash")
            await backend.create_topic(topic, partitions=2)
            subscription = await backend.subscribe(topic, group=_name("g"), mode=mode, start="earliest")  # type: ignore[arg-type]
            receipts = await backend.publish_batch(
                topic, [OutgoingMessage(f"m{i}".encode(), key=f"k{i}") for i in range(6)]
            )
            deliveries = [await asyncio.wait_for(anext(subscription), WAIT) for _ in range(6)]
            for delivery in deliveries[:3]:
                await delivery.ack()
            held = {(d.partition, d.offset) for d in deliveries[3:]}

            await asyncio.to_thread(servers[0].kill)
            servers.append(await asyncio.to_thread(start_redis, data, port=port, appendfsync="always"))

            again = [await asyncio.wait_for(anext(subscription), 30.0) for _ in range(3)]
            assert {(d.partition, d.offset) for d in again} == held
            assert all(d.delivery_count == 2 for d in again)
            for delivery in again:
                await delivery.ack()
            after = await backend.publish(topic, b"after", key="k0")
            assert after.offset > max(r.offset for r in receipts if r.partition == after.partition)
            assert (await asyncio.wait_for(anext(subscription), WAIT)).data == b"after"
    finally:
        for server in servers:
            server.kill()


async def test_a_nack_delay_longer_than_the_ack_deadline_is_kept(backend: RedisBackend) -> None:
    topic = _name("delayed")
    subscription = await backend.subscribe(topic, group=_name("g"), ack_deadline=0.2)
    await backend.publish(topic, b"later")
    first = await asyncio.wait_for(anext(subscription), WAIT)
    nacked = time.monotonic()
    await first.nack(0.8)
    again = await asyncio.wait_for(anext(subscription), WAIT)
    waited = time.monotonic() - nacked
    assert (again.offset, again.delivery_count) == (first.offset, 2)
    assert 0.75 <= waited < 0.8 + 1.0, f"redelivered {waited:.3f} s after nack(0.8) with a 0.2 s ack deadline"
    await again.ack()


async def test_max_deliveries_after_ack_deadlines_dead_letters(backend: RedisBackend) -> None:
    topic, group = _name("stuck"), _name("g")
    subscription = await backend.subscribe(topic, group=group, ack_deadline=0.2, max_deliveries=2)
    await backend.publish(topic, b"stuck", key="k")
    counts = [(await asyncio.wait_for(anext(subscription), WAIT)).delivery_count for _ in range(2)]
    assert counts == [1, 2]
    dead = await backend.subscribe(dead_letter_topic(topic, group), group=_name("dlq"), start="earliest")
    letter = await asyncio.wait_for(anext(dead), WAIT)
    assert letter.data == b"stuck" and letter.headers[DLQ_DELIVERIES] == b"2"
    assert b"ack deadline" in letter.headers[DLQ_REASON]


CRASHING_MEMBER = """
import asyncio, sys
from tidings.backends import open_backend

async def main():
    backend = open_backend(sys.argv[1], service="doomed", lease_ttl=1.0, rebalance_interval=0.1)
    await backend.open()
    subscription = await backend.subscribe(sys.argv[2], group=sys.argv[3], ack_deadline=60.0)
    print("joined", flush=True)
    delivery = await anext(subscription)
    print("holding", delivery.data.decode(), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_crashed_members_partitions_and_messages_go_to_the_others(
    redis_server: ServerProcess,
) -> None:
    """A member killed with SIGKILL stops renewing its lease: after lease_ttl another member owns the
    partition and gets the message the dead one held, long before its 60 s ack deadline."""
    topic, group = _name("takeover"), _name("g")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CRASHING_MEMBER, redis_server.url, topic, group, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        assert await asyncio.wait_for(process.stdout.readline(), 20.0) == b"joined\n"
        async with _backend(
            redis_server, lease_ttl=1.0, rebalance_interval=0.1, rebalance_timeout=0.5
        ) as other:
            survivor = await other.subscribe(topic, group=group, ack_deadline=60.0)
            await other.publish(topic, b"held by the doomed member")
            assert (
                await asyncio.wait_for(process.stdout.readline(), WAIT)
                == b"holding held by the doomed member\n"
            )
            process.kill()
            killed = time.monotonic()
            delivery = await asyncio.wait_for(anext(survivor), WAIT)
            assert (delivery.data, delivery.delivery_count) == (b"held by the doomed member", 2)
            assert time.monotonic() - killed < 3.0
            await delivery.ack()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
