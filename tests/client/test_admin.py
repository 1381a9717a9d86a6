"""``client.admin``: each call is one AdminRequest, answered by its body type or an error by code."""

from __future__ import annotations

import asyncio

import pytest

from tests.client.helpers import close, open_client
from tidings.client.channel import error_class
from tidings.errors import BrokerError, TopicExists
from tidings.protocol import (
    AdminRequest,
    AdminResponse,
    AtOffset,
    CreateTopic,
    DeleteTopic,
    DescribeGroup,
    DescribeTopic,
    Earliest,
    Error,
    GroupDescription,
    GroupList,
    GroupMember,
    GroupMode,
    GroupPartition,
    GroupReset,
    GroupSummary,
    ListGroups,
    ListTopics,
    PartitionInfo,
    PartitionOffset,
    ResetGroup,
    TopicDeleted,
    TopicDescription,
    TopicList,
)

DESCRIPTION = TopicDescription(
    name="orders", partitions=(PartitionInfo(partition=0, start_offset=0, end_offset=9),)
)
GROUP = GroupDescription(
    group="inventory",
    members=(
        GroupMember(
            member_id="m1", client_id="c1", service="inventory", topic="orders", mode=GroupMode.PARTITIONED
        ),
    ),
    partitions=(GroupPartition(topic="orders", partition=0, committed=4, end_offset=9, lag=5),),
)

CASES = [
    (
        lambda a: a.create_topic("orders", 3, {"retention.ms": "1000"}),
        CreateTopic(name="orders", partitions=3, config={"retention.ms": "1000"}),
        DESCRIPTION,
        DESCRIPTION,
    ),
    (
        lambda a: a.delete_topic("orders"),
        DeleteTopic(name="orders"),
        TopicDeleted(name="orders"),
        TopicDeleted(name="orders"),
    ),
    (lambda a: a.describe_topic("orders"), DescribeTopic(name="orders"), DESCRIPTION, DESCRIPTION),
    (lambda a: a.list_topics(), ListTopics(), TopicList(topics=("a", "b")), ("a", "b")),
    (
        lambda a: a.list_groups(),
        ListGroups(),
        GroupList(groups=(GroupSummary(group="g", topics=("orders",), members=1, lag=3),)),
        (GroupSummary(group="g", topics=("orders",), members=1, lag=3),),
    ),
    (lambda a: a.describe_group("inventory"), DescribeGroup(group="inventory"), GROUP, GROUP),
    (
        lambda a: a.reset_group("inventory", "orders", to=5),
        ResetGroup(group="inventory", topic="orders", to=AtOffset(offset=5)),
        GroupReset(group="inventory", topic="orders", offsets=(PartitionOffset(partition=0, offset=5),)),
        GroupReset(group="inventory", topic="orders", offsets=(PartitionOffset(partition=0, offset=5),)),
    ),
]


@pytest.mark.parametrize(("call", "body", "answer", "expected"), CASES)
async def test_admin_calls(listener, call, body, answer, expected):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(call(client.admin))
    request = await broker.receive(AdminRequest)
    assert request.body == body
    broker.send(AdminResponse(request_id=request.request_id, body=answer))
    assert await pending == expected
    await close(client, broker)


async def test_reset_defaults_to_earliest(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.admin.reset_group("g", "orders"))
    request = await broker.receive(AdminRequest)
    assert request.body.to == Earliest()
    broker.send(
        AdminResponse(request_id=request.request_id, body=GroupReset(group="g", topic="orders", offsets=()))
    )
    await pending
    await close(client, broker)


async def test_errors_become_the_class_of_their_code(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.admin.create_topic("orders"))
    request = await broker.receive(AdminRequest)
    broker.send(Error(code="topic_exists", message="orders exists", request_id=request.request_id))
    with pytest.raises(TopicExists, match="orders exists"):
        await pending
    pending = asyncio.ensure_future(client.admin.delete_topic("orders"))
    request = await broker.receive(AdminRequest)
    broker.send(Error(code="brand_new_code", message="from a newer broker", request_id=request.request_id))
    with pytest.raises(BrokerError) as caught:
        await pending
    assert caught.value.code == "brand_new_code"
    assert error_class("brand_new_code") is type(caught.value)
    await close(client, broker)


async def test_a_wrong_answer_type_is_an_error(listener):
    client, broker = await open_client(listener)
    pending = asyncio.ensure_future(client.admin.list_topics())
    request = await broker.receive(AdminRequest)
    broker.send(AdminResponse(request_id=request.request_id, body=TopicDeleted(name="x")))
    with pytest.raises(BrokerError, match="expected TopicList"):
        await pending
    await close(client, broker)
