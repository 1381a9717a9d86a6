"""The client commands of the CLI (publish, tail, topics, groups), against a scripted broker over TCP.

Each command runs in a worker thread (it calls ``asyncio.run`` itself) or, for
the error paths, as the installed ``tidings`` entry point in a subprocess,
while the test's event loop plays the broker on a real TCP port.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from typer.testing import CliRunner

from tests.client.helpers import TcpListener, play_close, stored, values
from tests.client.test_subscribe import deliver
from tidings.cli.main import app
from tidings.protocol import (
    Ack,
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
    Latest,
    ListTopics,
    PartitionInfo,
    PartitionOffset,
    Produce,
    ResetGroup,
    Subscribe,
    Subscribed,
    TopicDeleted,
    TopicDescription,
    TopicList,
    TopicPartition,
)
from tidings.records import iter_records

from .helpers import appended

TIDINGS = Path(sys.executable).parent / "tidings"
runner = CliRunner()


def invoke(*args: str, stdin: str | None = None):
    """Run ``tidings ARGS`` in a worker thread (the test's loop is busy being the broker)."""
    return asyncio.ensure_future(
        asyncio.to_thread(runner.invoke, app, list(args), input=stdin, env={"COLUMNS": "200"})
    )


def description(name: str, partitions: int = 1, end: int = 0) -> TopicDescription:
    parts = tuple(PartitionInfo(partition=p, start_offset=0, end_offset=end) for p in range(partitions))
    return TopicDescription(name=name, partitions=parts, config={"retention.ms": "-1"})


async def answer_admin(broker, body):
    request = await broker.receive(AdminRequest)
    broker.send(AdminResponse(request_id=request.request_id, body=body))
    return request.body


async def test_publish_one_event_prints_where_it_was_stored():
    async with TcpListener() as tcp:
        command = invoke(
            "publish", "orders", '{"id": 1}', "--key", "c1", "-H", "source=cli", "--url", tcp.url
        )
        broker = await tcp.accept()
        assert broker.hello.service == "tidings-cli"
        assert (await answer_admin(broker, description("orders"))) == DescribeTopic(name="orders")
        produce = await broker.receive(Produce)
        (record,) = [r for b in produce.batches for r in iter_records(b)]
        assert (record.key, record.value, record.headers) == (b"c1", b'{"id": 1}', (("source", b"cli"),))
        broker.send(appended(produce, 41))
        await play_close(broker)
        result = await command
    assert result.exit_code == 0, result.output
    assert result.stdout == "orders/0@41\n"


async def test_publish_from_stdin_sends_one_event_per_line():
    async with TcpListener() as tcp:
        command = invoke("publish", "orders", "-", "--url", tcp.url, stdin='a\nb\n{"c": 3}\n')
        broker = await tcp.accept()
        await answer_admin(broker, description("orders"))
        produce = await broker.receive(Produce)
        assert values(produce) == [b"a", b"b", b'{"c": 3}']
        broker.send(appended(produce))
        await play_close(broker)
        result = await command
    assert result.exit_code == 0, result.output
    assert result.stdout == "published 3 events to orders\n"


async def test_tail_json_from_earliest_with_a_fresh_group_and_a_count():
    async with TcpListener() as tcp:
        command = invoke("tail", "orders", "--from", "earliest", "--count", "2", "--json", "--url", tcp.url)
        broker = await tcp.accept()
        subscribe = await broker.subscribed()
        assert subscribe.start == Earliest() and subscribe.group.startswith("tidings-tail-")
        batch = stored([b'{"id": 1}', b"plain text", b"\xff\xfe"], base_offset=0)
        broker.send(deliver(subscribe.subscription_id, [batch], [(0, 0, 2, 1)]))
        frames = await play_close(broker)
        result = await command
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(line["offset"], line["data"]) for line in lines] == [(0, {"id": 1}), (1, "plain text")]
    assert lines[0]["topic"] == "orders" and lines[0]["delivery_count"] == 1
    assert lines[0]["append_time"].startswith("2023-11-14")  # stored() stamps 1_700_000_000_000
    acks = [f for f in frames if isinstance(f, Ack)]
    assert [r.first for a in acks for p in a.offsets for r in p.ranges] == [0]


async def test_tail_text_in_a_named_group():
    async with TcpListener() as tcp:
        command = invoke("tail", "orders.*", "--group", "audit", "-n", "1", "--url", tcp.url)
        broker = await tcp.accept()
        subscribe = await broker.receive(Subscribe)
        assert (subscribe.topic, subscribe.group, subscribe.start) == ("orders.*", "audit", Latest())
        broker.send(Subscribed(request_id=subscribe.request_id, subscription_id=subscribe.subscription_id))
        batch = stored([b"line\nbreak"], base_offset=9)
        broker.send(
            deliver(subscribe.subscription_id, [batch], [(0, 9, 9, 1)], topic="orders.eu", partition=2)
        )
        await play_close(broker)
        result = await command
    assert result.exit_code == 0, result.output
    assert result.stdout == "orders.eu/2@9 line\\nbreak\n"


async def test_topics_list_describe_create_delete():
    async with TcpListener() as tcp:
        command = invoke("topics", "list", "--url", tcp.url)
        broker = await tcp.accept()
        assert await answer_admin(broker, TopicList(topics=("orders", "payments"))) == ListTopics()
        requests = [await broker.receive(AdminRequest) for _ in range(2)]
        for request in requests:
            size = 3 if request.body.name == "payments" else 1
            broker.send(
                AdminResponse(request_id=request.request_id, body=description(request.body.name, size, 5))
            )
        await play_close(broker)
        listed = await command

        command = invoke("topics", "describe", "orders", "--url", tcp.url)
        broker = await tcp.accept()
        await answer_admin(broker, description("orders", 2, 7))
        await play_close(broker)
        described = await command

        command = invoke("topics", "create", "audit", "-p", "4", "-c", "retention.ms=1000", "--url", tcp.url)
        broker = await tcp.accept()
        body = await answer_admin(broker, description("audit", 4))
        assert body == CreateTopic(name="audit", partitions=4, config={"retention.ms": "1000"})
        await play_close(broker)
        created = await command

        command = invoke("topics", "delete", "audit", "--yes", "--url", tcp.url)
        broker = await tcp.accept()
        assert await answer_admin(broker, TopicDeleted(name="audit")) == DeleteTopic(name="audit")
        await play_close(broker)
        deleted = await command

    assert listed.exit_code == 0, listed.output
    rows = [line for line in listed.stdout.splitlines() if "orders" in line or "payments" in line]
    assert "5" in rows[0] and "3" in rows[1] and "15" in rows[1]
    assert described.exit_code == 0 and "retention.ms" in described.stdout and "7" in described.stdout
    assert created.stdout.strip() == "created audit with 4 partition(s)"
    assert deleted.stdout.strip() == "deleted audit"


async def test_topics_delete_asks_first():
    result = await invoke("topics", "delete", "audit", "--url", "tidings://127.0.0.1:1", stdin="n\n")
    assert result.exit_code == 1 and "Aborted" in result.output


async def test_groups_list_describe_reset():
    group = GroupDescription(
        group="inventory",
        members=(
            GroupMember(
                member_id="s1/1",
                client_id="inv-1",
                service="inventory",
                topic="orders",
                mode=GroupMode.PARTITIONED,
                assigned=(TopicPartition(topic="orders", partition=0),),
            ),
        ),
        partitions=(
            GroupPartition(topic="orders", partition=0, committed=40, end_offset=52, lag=12, in_flight=3),
        ),
    )
    async with TcpListener() as tcp:
        command = invoke("groups", "list", "--url", tcp.url)
        broker = await tcp.accept()
        await answer_admin(
            broker,
            GroupList(groups=(GroupSummary(group="inventory", topics=("orders",), members=1, lag=12),)),
        )
        await play_close(broker)
        listed = await command

        command = invoke("groups", "describe", "inventory", "--url", tcp.url)
        broker = await tcp.accept()
        assert await answer_admin(broker, group) == DescribeGroup(group="inventory")
        await play_close(broker)
        described = await command

        command = invoke("groups", "reset", "inventory", "--topic", "orders", "--to", "17", "--url", tcp.url)
        broker = await tcp.accept()
        reset = GroupReset(
            group="inventory", topic="orders", offsets=(PartitionOffset(partition=0, offset=17),)
        )
        body = await answer_admin(broker, reset)
        assert body == ResetGroup(group="inventory", topic="orders", to=AtOffset(offset=17))
        await play_close(broker)
        was_reset = await command

    assert listed.exit_code == 0 and "inventory" in listed.stdout and "12" in listed.stdout
    assert described.exit_code == 0, described.output
    for text in ("inv-1", "orders/0", "partitioned", "40", "52", "12"):
        assert text in described.stdout
    assert was_reset.exit_code == 0 and "17" in was_reset.stdout


async def run_installed(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(TIDINGS),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_broker_error_is_one_line_and_exit_1():
    async with TcpListener() as tcp:
        command = asyncio.ensure_future(run_installed("topics", "describe", "ghost", "--url", tcp.url))
        broker = await tcp.accept()
        request = await broker.receive(AdminRequest)
        broker.send(
            Error(code="unknown_topic", message="unknown topic 'ghost'", request_id=request.request_id)
        )
        await play_close(broker)
        code, out, err = await command
    assert code == 1 and out == ""
    assert err.splitlines() == ["error: describe topic ghost: unknown topic 'ghost' (unknown_topic)"]


async def test_no_broker_is_one_line_and_exit_1(unused_tcp_port):
    code, out, err = await run_installed(
        "publish", "orders", "x", "--url", f"tidings://127.0.0.1:{unused_tcp_port}"
    )
    assert code == 1 and out == ""
    (line,) = err.splitlines()
    assert line.startswith(f"error: cannot connect to tidings://127.0.0.1:{unused_tcp_port}")


async def test_the_url_comes_from_the_environment(monkeypatch):
    async with TcpListener() as tcp:
        monkeypatch.setenv("TIDINGS_URL", tcp.url)
        command = invoke("topics", "list")
        broker = await tcp.accept()
        await answer_admin(broker, TopicList(topics=()))
        await play_close(broker)
        result = await command
    assert result.exit_code == 0 and result.stdout.strip() == "no topics"
