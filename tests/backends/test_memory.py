"""memory:// instances: shared by name, private without one, gone with their last user."""

from __future__ import annotations

import pytest

from tidings.backends import memory, open_backend
from tidings.errors import ConnectFailed, TopicExists


async def test_a_named_instance_is_shared_within_the_process():
    async with (
        open_backend("memory://shop", service="checkout") as checkout,
        open_backend("memory://shop", service="inventory") as inventory,
    ):
        subscription = await inventory.subscribe("orders", group="inventory")
        await checkout.publish("orders", b"order-1", key="c-1")
        delivery = await anext(subscription)
        assert (delivery.data, delivery.key) == (b"order-1", b"c-1")
        await delivery.ack()
        assert checkout.broker is inventory.broker is not None


async def test_private_instances_are_separate():
    async with open_backend("memory://", service="a") as a, open_backend("memory://", service="b") as b:
        assert a.broker is not b.broker
        await a.create_topic("orders")
        await b.create_topic("orders")  # no TopicExists: another broker
        with pytest.raises(TopicExists):
            await a.create_topic("orders")


async def test_an_instance_lives_while_a_backend_holds_it_then_its_data_is_deleted():
    backend = open_backend("memory://lifecycle", service="a")
    await backend.open()
    broker = backend.broker
    assert broker is not None and broker.data_dir.exists()
    await backend.create_topic("orders")
    async with memory.shared("lifecycle") as held:
        assert held is broker
        await backend.close()
        assert "lifecycle" in memory._instances  # still held by the block
    assert "lifecycle" not in memory._instances and not broker.data_dir.exists()
    with pytest.raises(ConnectFailed):
        await broker.connect()
    await backend.open()  # a closed backend opens again, on a fresh instance
    await backend.create_topic("orders")
    await backend.close()


async def test_a_restarted_instance_keeps_its_data_and_clients_reconnect():
    async with memory.shared("restart") as broker, open_backend("memory://restart", service="a") as backend:
        subscription = await backend.subscribe("orders", group="g", start="earliest")
        await backend.publish("orders", b"before")
        first = await anext(subscription)
        await first.ack()
        await broker.restart()
        await backend.publish("orders", b"after")
        second = await anext(subscription)
        assert second.data == b"after" and broker.restarts == 1
