"""Partition ownership in a partitioned group: the assignment (pure), and members joining and crashing."""

from __future__ import annotations

import asyncio
import itertools
import time

from tests.backends.nats.conftest import start
from tidings.backends import OutgoingMessage, open_backend
from tidings.backends.nats import NatsBackend
from tidings.backends.nats.ownership import assign, new_member_id


def test_assignment_covers_every_partition_once() -> None:
    for members in (["a"], ["a", "b"], ["c", "a", "b"]):
        for partitions in range(1, 9):
            owned = assign(members, partitions)
            every = sorted(p for parts in owned.values() for p in parts)
            assert every == list(range(partitions))
            sizes = [len(parts) for parts in owned.values()]
            assert max(sizes) - min(sizes) <= 1


def test_assignment_is_the_same_on_every_member() -> None:
    assert assign(["b", "a"], 4) == assign(["a", "b"], 4) == {"a": {0, 2}, "b": {1, 3}}


def test_member_ids_sort_by_join_time() -> None:
    first = new_member_id()
    time.sleep(0.001)
    assert first < new_member_id()


async def test_a_crashed_members_partitions_move_to_the_survivor(tmp_path) -> None:
    server = start(tmp_path, sync_always=True)
    options = {"monitor_url": server.monitor_url, "member_ttl": 1.0}
    try:
        a, b, producer = (open_backend(server.url, service=s, **options) for s in ("a", "b", "p"))
        async with a, b, producer:
            assert isinstance(a, NatsBackend) and isinstance(b, NatsBackend)
            await producer.create_topic("ledger.ha", partitions=4)
            first = await a.subscribe("ledger.ha", group="ledger", start="earliest")
            second = await b.subscribe("ledger.ha", group="ledger", start="earliest")
            await producer.publish_batch(
                "ledger.ha", [OutgoingMessage(f"{k}:0".encode(), key=f"k{k}") for k in range(16)]
            )
            got: dict[str, set[int]] = {"a": set(), "b": set()}
            for name, subscription in (("a", first), ("b", second)):
                while True:
                    try:
                        delivery = await asyncio.wait_for(anext(subscription), 1.0)
                    except TimeoutError:
                        break
                    got[name].add(delivery.partition)
                    await delivery.ack()
            assert got["a"] and got["b"] and not got["a"] & got["b"], got

            # b crashes: its connection drops without leaving the group.
            await b.nc.close()
            started = time.monotonic()
            await producer.publish_batch(
                "ledger.ha", [OutgoingMessage(f"{k}:1".encode(), key=f"k{k}") for k in range(16)]
            )
            taken: set[int] = set()
            while len(taken) < 4:
                delivery = await asyncio.wait_for(anext(first), 10.0)
                taken.add(delivery.partition)
                await delivery.ack()
            moved_after = time.monotonic() - started
            assert taken == {0, 1, 2, 3}
            assert moved_after < 5.0, f"partitions moved after {moved_after:.1f} s (member_ttl 1 s)"
    finally:
        server.process.kill()


async def test_a_member_joining_under_load_keeps_every_keys_order(nats_server) -> None:
    """Partitions move while messages flow: per key, deliveries stay in order with no gap, no duplicate,
    and a key's next message reaches its new owner only after the old owner settled the previous one."""
    options = {"monitor_url": nats_server.monitor_url}
    a, b, producer = (open_backend(nats_server.url, service=s, **options) for s in ("a", "b", "p"))
    keys, rounds = [f"acct-{k}" for k in range(8)], 60
    events: list[tuple[float, float, str, str, int]] = []  # received, acked, member, key, n
    async with a, b, producer:
        await producer.create_topic("ledger.join", partitions=4)

        async def consume(name: str, subscription) -> None:
            async for delivery in subscription:
                received = time.monotonic()
                await delivery.ack()
                key, _, number = delivery.data.decode().rpartition(":")
                events.append((received, time.monotonic(), name, key, int(number)))

        first = await a.subscribe("ledger.join", group="ledger", start="earliest", prefetch=5)
        tasks = [asyncio.create_task(consume("a", first))]
        for round_ in range(rounds):
            await producer.publish_batch(
                "ledger.join", [OutgoingMessage(f"{key}:{round_}".encode(), key=key) for key in keys]
            )
            if round_ == 20:
                second = await b.subscribe("ledger.join", group="ledger", start="earliest", prefetch=5)
                tasks.append(asyncio.create_task(consume("b", second)))
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 15
        while len(events) < len(keys) * rounds and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
    assert len(events) == len(keys) * rounds, f"{len(events)} of {len(keys) * rounds} delivered"
    assert {event[2] for event in events} == {"a", "b"}, "both members took part"
    for key in keys:
        mine = sorted((e for e in events if e[3] == key), key=lambda e: e[0])
        assert [e[4] for e in mine] == list(range(rounds)), f"{key}: {[e[4] for e in mine]}"
        for before, after in itertools.pairwise(mine):
            if before[2] != after[2]:
                assert before[1] <= after[0], f"{key} reached {after[2]} before {before[2]} settled"
