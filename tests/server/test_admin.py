"""Administration over a socket: topics created, described, listed and deleted; groups listed and reset."""

from __future__ import annotations

import itertools

from tests.server.helpers import batch
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    CreateTopic,
    DeleteTopic,
    DescribeGroup,
    DescribeTopic,
    Earliest,
    Error,
    ListGroups,
    ListTopics,
    Produce,
    ProduceResult,
    ResetGroup,
    Subscribe,
    Subscribed,
    TopicDeleted,
    Unsubscribed,
)

REQUEST_IDS = itertools.count(1)


async def admin(client, body):
    request_id = next(REQUEST_IDS)
    await client.send(AdminRequest(request_id=request_id, body=body))
    return await client.expect(AdminResponse, request_id=request_id)


async def admin_error(client, body, request_id=4000):
    await client.send(AdminRequest(request_id=request_id, body=body))
    return await client.expect(Error, request_id=request_id)


async def test_create_describe_list_delete(connect, data_dir):
    client = await connect()
    created = (
        await admin(client, CreateTopic(name="orders", partitions=3, config={"retention.ms": "60000"}))
    ).body
    assert [p.partition for p in created.partitions] == [0, 1, 2]
    assert created.config["retention.ms"] == "60000" and created.config["fsync"] == "always"
    await client.send(Produce(request_id=1, topic="orders", partition=2, batches=(batch(b"a", b"b"),)))
    await client.expect(ProduceResult, request_id=1)
    described = (await admin(client, DescribeTopic(name="orders"))).body
    assert [(p.start_offset, p.end_offset) for p in described.partitions] == [(0, 0), (0, 0), (0, 2)]
    await admin(client, CreateTopic(name="audit"))
    assert (await admin(client, ListTopics())).body.topics == ("audit", "orders")
    deleted = (await admin(client, DeleteTopic(name="orders"))).body
    assert deleted == TopicDeleted(name="orders")
    assert (await admin(client, ListTopics())).body.topics == ("audit",)
    assert not (data_dir / "topics" / "orders").exists()


async def test_admin_errors_are_request_scoped(connect):
    client = await connect()
    await admin(client, CreateTopic(name="orders"))
    exists = await admin_error(client, CreateTopic(name="orders"))
    assert exists.code == "topic_exists" and "'orders'" in exists.message
    unknown = await admin_error(client, DescribeTopic(name="missing"), request_id=4001)
    assert unknown.code == "unknown_topic" and "'missing'" in unknown.message
    bad = await admin_error(client, CreateTopic(name="x", config={"retention.ms": "soon"}), request_id=4002)
    assert bad.code == "invalid_config" and "retention.ms" in bad.message
    odd = await admin_error(client, CreateTopic(name="y", config={"colour": "blue"}), request_id=4003)
    assert odd.code == "invalid_config" and "'colour'" in odd.message
    missing = await admin_error(client, DescribeGroup(group="nobody"), request_id=4004)
    assert missing.code == "unknown_group"
    assert (await admin(client, ListTopics())).body.topics == ("orders",)  # the connection went on


async def test_topics_survive_a_restart(start_broker, connect):
    server = await start_broker()
    client = await connect(server)
    await admin(client, CreateTopic(name="kept", partitions=2, config={"fsync": "never"}))
    await client.close()
    await server.stop()
    client = await connect(await start_broker())
    described = (await admin(client, DescribeTopic(name="kept"))).body
    assert len(described.partitions) == 2 and described.config["fsync"] == "never"


async def test_deleting_a_topic_ends_its_subscriptions(connect):
    client = await connect()
    consumer = await connect()
    await admin(client, CreateTopic(name="doomed"))
    await consumer.send(Subscribe(request_id=1, subscription_id=8, topic="doomed", group="g"))
    await consumer.expect(Subscribed)
    await admin(client, DeleteTopic(name="doomed"))
    ended = await consumer.expect(Unsubscribed, subscription_id=8)
    assert ended.request_id is None and "doomed" in ended.reason


async def test_groups_listed_described_and_reset(connect):
    client = await connect()
    await client.send(Produce(request_id=1, topic="orders", batches=(batch(b"a", b"b", b"c"),)))
    await client.expect(ProduceResult, request_id=1)
    await client.send(
        Subscribe(request_id=2, subscription_id=1, topic="orders", group="billing", start=Earliest())
    )
    await client.expect(Subscribed)
    groups = (await admin(client, ListGroups())).body.groups
    assert [g.group for g in groups] == ["billing"] and groups[0].members == 1
    described = (await admin(client, DescribeGroup(group="billing"))).body
    assert described.members[0].service == "tests"
    reset = (await admin(client, ResetGroup(group="billing", topic="orders", to=Earliest()))).body
    assert [o.offset for o in reset.offsets] == [0]
