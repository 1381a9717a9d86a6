"""Against a real nats-server: what the conformance suite does not look at.

The fsync check at connect, the streams the backend creates (file storage,
replicas, duplicate window, one subject per partition), the Admin calls,
and the translation of nats-py's errors into ``tidings.errors``.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from nats.js import api

from tests.backends.nats.conftest import NatsServer, start
from tidings.backends import OutgoingMessage, open_backend
from tidings.backends.nats import NatsBackend, naming
from tidings.errors import (
    ConnectFailed,
    GroupModeConflict,
    InvalidArgument,
    InvalidBackendConfig,
    InvalidTopicName,
    NoResponders,
    NotConnected,
    RequestTimeout,
    TopicExists,
    UnknownTopic,
)
from tidings.testing.servers import free_port


def backend(server: NatsServer, **options) -> NatsBackend:
    made = open_backend(server.url, service="test", monitor_url=server.monitor_url, **options)
    assert isinstance(made, NatsBackend)
    return made


# -- the fsync check ------------------------------------------------------------------


async def test_no_warning_when_the_server_syncs_every_write(nats_server, caplog) -> None:
    with caplog.at_level(logging.WARNING, "tidings.backends.nats"):
        async with backend(nats_server) as b:
            assert b.durability_warning is None
    assert "DURABILITY" not in caplog.text


async def test_warns_loudly_when_the_server_syncs_on_an_interval(tmp_path, caplog) -> None:
    server = start(tmp_path, sync_always=False)
    try:
        with caplog.at_level(logging.WARNING, "tidings.backends.nats"):
            async with backend(server) as b:
                assert b.durability_warning is not None
                assert "not 'always'" in b.durability_warning and "120 s" in b.durability_warning
        assert "DURABILITY" in caplog.text
        with pytest.raises(InvalidBackendConfig, match="sync_check='require'"):
            await backend(server, sync_check="require").open()
        async with backend(server, sync_check="off") as quiet:
            assert quiet.durability_warning is None
    finally:
        server.process.kill()


async def test_warns_when_it_cannot_tell(nats_server) -> None:
    async with open_backend(nats_server.url, service="test") as b:  # no monitor_url, not a system user
        assert isinstance(b, NatsBackend)
        assert b.durability_warning is not None and "cannot verify" in b.durability_warning


# -- streams ------------------------------------------------------------------------


async def test_streams_are_created_as_configured(nats_server) -> None:
    async with backend(nats_server, duplicate_window=30.0, partitions=3) as b:
        receipt = await b.publish("orders.placed-auto", b"x", key="k")
        info = await b.nc.jetstream().stream_info(naming.stream_name("orders.placed-auto"))
        config = info.config
        assert config.storage == api.StorageType.FILE
        assert config.num_replicas == 1
        assert config.duplicate_window == 30.0
        assert config.subjects == naming.subjects("orders.placed-auto", 3)
        assert (config.metadata or {}).get("tidings-topic") == "orders.placed-auto"
        assert 0 <= receipt.partition < 3 and receipt.offset == 1

        await b.create_topic("orders.created", partitions=2)
        with pytest.raises(TopicExists):
            await b.create_topic("orders.created", partitions=2)
        # empty partitions: nothing stored on their subjects yet (offsets are the stream's sequences)
        assert await b.topic_end_offsets("orders.created") == {0: 0, 1: 0}


async def test_admin_offsets_and_reset(nats_server) -> None:
    async with backend(nats_server) as b:
        await b.create_topic("ledger.admin", partitions=1)
        receipts = await b.publish_batch("ledger.admin", [open_message(f"m{i}".encode()) for i in range(4)])
        assert [r.offset for r in receipts] == [1, 2, 3, 4]
        assert await b.group_offsets("auditors", "ledger.admin") == {}
        subscription = await b.subscribe("ledger.admin", group="auditors", start="earliest")
        for _ in range(2):
            delivery = await anext(subscription)
            await delivery.ack()
        assert await b.group_offsets("auditors", "ledger.admin") == {0: 3}
        await subscription.close()
        await b.reset_group("auditors", "ledger.admin", 2)
        again = await b.subscribe("ledger.admin", group="auditors")
        delivery = await anext(again)
        assert (delivery.offset, delivery.data) == (2, b"m1")
        await again.close()
        with pytest.raises(UnknownTopic):
            await b.topic_end_offsets("never.created")


# -- patterns -----------------------------------------------------------------------


async def test_a_pattern_takes_requests_and_names_each_topic(nats_server) -> None:
    async with backend(nats_server) as b:
        await b.publish("fleet.truck-1", b"before", key="t1")
        subscription = await b.subscribe("fleet.*", group="dispatch", start="earliest", mode="shared")

        asking = asyncio.create_task(b.request("fleet.truck-9", b"where?", timeout=5.0))
        events = []
        while True:
            delivery = await asyncio.wait_for(anext(subscription), 5.0)
            if delivery.is_request:  # a topic with no stream yet: requests need none
                await delivery.reply(delivery.topic.encode())
                break
            events.append(delivery)
        assert (await asyncio.wait_for(asking, 5.0)).data == b"fleet.truck-9"
        if not events:
            events.append(await asyncio.wait_for(anext(subscription), 5.0))
        assert [(e.topic, e.data) for e in events] == [("fleet.truck-1", b"before")]
        await events[0].ack()
        await b.publish("fleet.truck-2", b"later topic", key="t2")
        second = await asyncio.wait_for(anext(subscription), 5.0)
        assert (second.topic, second.data) == ("fleet.truck-2", b"later topic")
        await subscription.close()
        with pytest.raises(InvalidTopicName):
            await b.subscribe("fleet.>.x", group="g")


# -- errors -------------------------------------------------------------------------


async def test_errors_are_tidings_errors(nats_server) -> None:
    async with backend(nats_server) as b:
        with pytest.raises(NoResponders):
            await b.request("nobody.listens", b"?", timeout=2.0)
        with pytest.raises(InvalidTopicName):
            await b.publish("bad topic", b"x")
        with pytest.raises(InvalidArgument, match="reserved"):
            await b.publish("fine", b"x", headers={"Nats-Rollup": "all"})
        with pytest.raises(InvalidArgument):
            await b.request("fine", b"x", timeout=0)
        subscription = await b.subscribe("slow.service", group="silent")
        with pytest.raises(RequestTimeout):
            await b.request("slow.service", b"?", timeout=0.2)
        await subscription.close()
        shared = await b.subscribe("modes", group="workers", mode="shared")
        with pytest.raises(GroupModeConflict, match="is shared, not partitioned"):
            await b.subscribe("modes", group="workers", mode="partitioned")
        await shared.close()
    with pytest.raises(NotConnected):
        await b.publish("fine", b"after close")


async def test_connect_failure() -> None:
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await open_backend(f"nats://127.0.0.1:{free_port()}", service="t", connect_timeout=0.5).open()


def open_message(data: bytes) -> OutgoingMessage:
    return OutgoingMessage(data, key="k")
