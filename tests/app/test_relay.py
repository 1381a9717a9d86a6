"""OutboxRelay against a fake broker that goes away: nothing lost, nothing reordered within a key."""

from __future__ import annotations

import asyncio
import collections
from datetime import UTC, datetime

import pytest

from tidings.app import Exponential
from tidings.app.store import OutboxRelay, OutboxRow, RelayConfig, RelayState, Store
from tidings.app.store.relay import groups_of
from tidings.errors import ConnectionLost

FAST = RelayConfig(batch=50, poll_interval=0.05, retry=Exponential(0.01, 0.05, jitter=0))


class FakeBroker:
    """publish(topic, data, key, headers) that fails while ``up`` is False.

    ``lose_acks``: store the event, then fail anyway (the ack was lost on the way back).
    """

    def __init__(self) -> None:
        self.up = True
        self.lose_acks = 0
        self.fail_keys: collections.Counter[bytes | None] = collections.Counter()
        self.stored: list[tuple[str, bytes | None, str]] = []
        self.attempts = 0

    async def publish(self, topic: str, data: bytes, key: bytes | None, headers: dict[str, bytes]) -> None:
        self.attempts += 1
        await asyncio.sleep(0.001)
        if not self.up:
            raise ConnectionLost("the broker is down")
        if self.fail_keys[key] > 0:
            self.fail_keys[key] -= 1
            raise ConnectionLost(f"partition of {key!r} unavailable")
        self.stored.append((topic, key, headers["ce_id"].decode()))
        if self.lose_acks > 0:
            self.lose_acks -= 1
            raise ConnectionLost("the ack was lost")

    def ids(self) -> list[str]:
        return [event_id for _, _, event_id in self.stored]


async def write(store: Store, start: int, count: int, keys: int = 5) -> list[tuple[bytes, str]]:
    """The service's own transactions, each enqueuing one event; returns (key, id) in order."""
    written = []
    for n in range(start, start + count):
        key = f"k{n % keys}".encode()
        async with store.transaction() as tx:
            await tx.enqueue("orders", b"{}", key=key, headers={"ce_id": f"e-{n:05d}".encode()})
        written.append((key, f"e-{n:05d}"))
    return written


def assert_in_order_per_key(broker: FakeBroker, written: list[tuple[bytes, str]]) -> None:
    """The first copy of each event, per key, comes in the order the service wrote them."""
    expected: dict[bytes | None, list[str]] = collections.defaultdict(list)
    for key, event_id in written:
        expected[key].append(event_id)
    seen: dict[bytes | None, list[str]] = collections.defaultdict(list)
    for _, key, event_id in broker.stored:
        if event_id not in seen[key]:
            seen[key].append(event_id)
    assert seen == expected


async def test_every_row_is_published_once_in_order_after_the_broker_comes_back(store):
    broker = FakeBroker()
    written = await write(store, 0, 30)
    async with OutboxRelay(store, broker.publish, FAST) as relay:
        await relay.drain(10)
        assert broker.ids() == [event_id for _, event_id in written]  # one key group at a time here
        broker.up = False
        written += await write(store, 30, 40)  # the service keeps working while the broker is away
        await asyncio.sleep(0.3)
        assert relay.state is RelayState.BACKING_OFF
        assert relay.failed_rounds >= 3
        assert len(broker.stored) == 30
        assert await store.count_pending() == 40
        written += await write(store, 70, 10)
        broker.up = True
        await relay.drain(10)
        assert relay.state is RelayState.RUNNING
    assert sorted(broker.ids()) == sorted(event_id for _, event_id in written)
    assert len(broker.ids()) == len(set(broker.ids())) == 80  # a failed publish stored nothing: no copies
    assert_in_order_per_key(broker, written)
    assert relay.published == 80
    assert relay.state is RelayState.STOPPED


async def test_a_lost_ack_means_a_second_copy_never_a_loss_nor_a_reorder(store):
    broker = FakeBroker()
    broker.lose_acks = 3
    written = await write(store, 0, 40, keys=2)
    async with OutboxRelay(store, broker.publish, FAST) as relay:
        await relay.drain(10)
    assert set(broker.ids()) == {event_id for _, event_id in written}
    duplicates = len(broker.ids()) - len(set(broker.ids()))
    assert 1 <= duplicates <= 3  # at least once: the consumers' inbox drops these by ce_id
    assert_in_order_per_key(broker, written)


async def test_a_failing_key_holds_back_only_its_own_later_rows(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        broker = FakeBroker()
        broker.fail_keys[b"k0"] = 4
        written = await write(store, 0, 20, keys=4)
        relay = OutboxRelay(store, broker.publish, FAST)
        first = await relay.run_once()
        assert first.failed and first.read == 20 and first.published == 15  # k1..k3 all went
        assert [event_id for _, key, event_id in broker.stored if key == b"k0"] == []
        async with relay:
            await relay.drain(10)
        assert_in_order_per_key(broker, written)
        assert len(broker.ids()) == 20
    finally:
        await store.close()


async def test_a_commit_wakes_the_relay_without_waiting_for_the_poll(store):
    broker = FakeBroker()
    config = RelayConfig(poll_interval=30.0)
    async with OutboxRelay(store, broker.publish, config):
        await asyncio.sleep(0.05)  # the relay found nothing and sleeps for 30 s
        await write(store, 0, 1)
        async with asyncio.timeout(2):
            while not broker.stored:
                await asyncio.sleep(0.01)


async def test_rows_another_process_wrote_are_found_by_polling(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    relay_side, other_process = await Store.open(url), await Store.open(url)
    try:
        broker = FakeBroker()
        async with OutboxRelay(relay_side, broker.publish, FAST):
            await asyncio.sleep(0.05)
            written = await write(other_process, 0, 5)  # no notification reaches relay_side
            async with asyncio.timeout(2):
                while len(broker.stored) < 5:
                    await asyncio.sleep(0.01)
        assert broker.ids() == [event_id for _, event_id in written]
    finally:
        await relay_side.close()
        await other_process.close()


async def test_more_rows_than_a_batch_and_a_restart_of_the_relay(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        broker = FakeBroker()
        written = await write(store, 0, 35, keys=1)
        config = RelayConfig(batch=10, poll_interval=0.05)
        relay = OutboxRelay(store, broker.publish, config)
        assert (await relay.run_once()).published == 10
        await relay.stop()  # never started: stopping is harmless
        async with OutboxRelay(store, broker.publish, config) as second:
            await second.drain(10)
        assert broker.ids() == [event_id for _, event_id in written]
    finally:
        await store.close()


async def test_drain_needs_a_running_relay_and_settings_are_checked(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(RuntimeError):
            await OutboxRelay(store, FakeBroker().publish).drain(1)
        assert "idle" in repr(OutboxRelay(store, FakeBroker().publish))
    finally:
        await store.close()
    with pytest.raises(ValueError):
        RelayConfig(batch=0)


def test_rows_are_grouped_by_topic_and_key_in_id_order():
    def row(n: int, topic: str, key: bytes | None) -> OutboxRow:
        return OutboxRow(n, topic, key, {}, b"", datetime.now(UTC))

    rows = [row(5, "a", b"x"), row(1, "a", b"x"), row(2, "b", b"x"), row(3, "a", None), row(4, "a", None)]
    assert [[r.id for r in group] for group in groups_of(rows)] == [[1, 5], [2], [3, 4]]
