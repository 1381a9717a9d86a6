"""The SDK, the sync facade and the CLI against a real broker: ``tidings broker`` in a subprocess.

One broker for the module (``--port 0`` and a temporary ``--data``), started
from the installed entry point and killed by its PID at the end. Every test
uses its own topics and groups, so they do not see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import tidings
from tidings.client import TcpTransport, parse_url
from tidings.errors import NoResponders, RequestTimeout, TopicExists, UnknownTopic
from tidings.records import partition_for_key

TIDINGS = Path(sys.executable).parent / "tidings"
READY = re.compile(r"tidings broker listening on (tidings://\S+)")


@pytest.fixture(scope="module")
def broker_url(tmp_path_factory) -> Iterator[str]:
    data = tmp_path_factory.mktemp("broker-data")
    process = subprocess.Popen(
        [
            str(TIDINGS),
            "broker",
            "--port",
            "0",
            "--http-port",
            "0",
            "--data",
            str(data),
            "--default-partitions",
            "2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = READY.search(line)
        if match is None:
            rest = process.stdout.read() if process.poll() is not None else ""
            pytest.fail(f"the broker did not start: {line!r} {rest!r}")
        yield match.group(1)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


async def eventually(check, timeout: float = 5.0):
    async with asyncio.timeout(timeout):
        while True:
            result = await check()
            if result:
                return result
            await asyncio.sleep(0.02)


async def test_publish_subscribe_ack_and_the_group_catches_up(broker_url):
    async with tidings.connect(broker_url, service="checkout") as client:
        await client.admin.create_topic("it.orders", partitions=3)
        keys = [f"customer-{i % 7}" for i in range(300)]
        results = await asyncio.gather(
            *(client.publish("it.orders", {"n": i}, key=key) for i, key in enumerate(keys))
        )
        for key, result in zip(keys, results, strict=True):
            assert result.partition == partition_for_key(key.encode(), 3)
        assert len({(r.partition, r.offset) for r in results}) == 300

        seen: dict[int, list[int]] = {}
        async with await client.subscribe("it.orders", group="inventory", start="earliest") as sub:
            async for message in sub:
                assert message.key is not None
                seen.setdefault(message.partition, []).append(message.json()["n"])
                await message.ack()
                if sum(map(len, seen.values())) == 300:
                    break
        assert sorted(n for ns in seen.values() for n in ns) == list(range(300))
        for ns in seen.values():  # per partition, in publish order
            assert ns == sorted(ns)

        async def caught_up():
            group = await client.admin.describe_group("inventory")
            return all(p.lag == 0 for p in group.partitions) and group.partitions

        partitions = await eventually(caught_up)
        assert sum(p.committed for p in partitions) == 300


async def test_publish_to_a_new_topic_lets_the_broker_create_it_with_its_defaults(broker_url):
    async with tidings.connect(broker_url, service="checkout") as client:
        first, *rest = await asyncio.gather(
            *(client.publish("it.fresh", f"e{i}", key="k") for i in range(20))
        )
        description = await client.admin.describe_topic("it.fresh")
        assert len(description.partitions) == 2  # the broker's --default-partitions
        assert first.partition == partition_for_key(b"k", 2)
        assert sorted(r.offset for r in [first, *rest]) == list(range(20))
        assert {r.partition for r in rest} == {first.partition}


class SeveringTransport:
    """TCP, but the answer to the first Produce is thrown away and the connection cut.

    So the broker has stored the batch and the client does not know it: the
    case idempotent retries exist for.
    """

    def __init__(self, inner: TcpTransport, state: dict) -> None:
        self.inner = inner
        self.state = state
        self.swallow = False

    async def read(self) -> bytes:
        data = await self.inner.read()
        if self.swallow:  # the ProduceResult: lost with the connection
            self.inner.close()
            return b""
        return data

    def write(self, buffers) -> None:
        buffers = list(buffers)
        self.inner.write(buffers)
        if not self.state["cut"] and bytes(buffers[0])[4] == 10:  # kind 10: Produce
            self.state["cut"] = self.swallow = True

    async def drain(self) -> None:
        await self.inner.drain()

    def close(self) -> None:
        self.inner.close()


async def test_a_produce_whose_answer_is_lost_is_retried_without_duplicates(broker_url):
    state = {"cut": False}

    async def dial():
        return SeveringTransport(await TcpTransport.open(parse_url(broker_url)), state)

    async with tidings.connect(broker_url, service="flaky", transport=dial) as client:
        await client.admin.create_topic("it.idempotent", partitions=1)
        results = await asyncio.gather(*(client.publish("it.idempotent", f"e{i}") for i in range(50)))
        assert state["cut"] and client.reconnects >= 1
        assert [r.offset for r in results] == list(range(50))
        description = await client.admin.describe_topic("it.idempotent")
        assert description.partitions[0].end_offset == 50  # stored once, though sent twice


async def test_nack_redelivers_and_term_dead_letters(broker_url):
    async with tidings.connect(broker_url, service="worker") as client:
        await client.publish_many("it.jobs", [b"retry me", b"poison"])
        sub = await client.subscribe("it.jobs", group="workers", start="earliest", ack_deadline=5)
        deliveries = []
        async for message in sub:
            deliveries.append((message.data, message.delivery_count))
            if message.data == b"poison":
                await message.term(reason="cannot parse")
            elif message.delivery_count == 1:
                await message.nack(reason="try later")
            else:
                await message.ack()
                break
        assert (b"retry me", 1) in deliveries and (b"retry me", 2) in deliveries
        await sub.close()
        dead = await client.subscribe("it.jobs.dlq.workers", group="ops", start="earliest")
        letter = await anext(dead)
        assert letter.data == b"poison"
        assert letter.headers["tidings-dlq-reason"] == b"cannot parse"
        assert letter.headers["tidings-dlq-topic"] == b"it.jobs"
        await dead.close()


async def test_request_reply_no_responders_and_timeout(broker_url):
    async with (
        tidings.connect(broker_url, service="payments") as responder,
        tidings.connect(broker_url, service="checkout") as requester,
    ):
        sub = await responder.subscribe("it.payments.charge", group="payments")

        async def serve():
            async for message in sub:
                if message.data == b"ignore me":
                    continue
                await message.reply({"charged": message.json()["amount"]})

        serving = asyncio.create_task(serve())
        reply = await requester.request("it.payments.charge", {"amount": 5}, timeout=5)
        assert reply.json() == {"charged": 5}
        with pytest.raises(NoResponders):
            await requester.request("it.nobody.home", b"?", timeout=5)
        with pytest.raises(RequestTimeout):
            await requester.request("it.payments.charge", b"ignore me", timeout=0.3)
        serving.cancel()


async def test_admin_topics_and_group_reset(broker_url):
    async with tidings.connect(broker_url, service="ops") as client:
        created = await client.admin.create_topic(
            "it.admin", partitions=2, config={"retention.ms": "3600000"}
        )
        assert len(created.partitions) == 2 and created.config["retention.ms"] == "3600000"
        with pytest.raises(TopicExists):
            await client.admin.create_topic("it.admin")
        assert "it.admin" in await client.admin.list_topics()
        await client.publish_many("it.admin", [f"e{i}" for i in range(4)], key="same")
        sub = await client.subscribe("it.admin", group="replayers", start="earliest")
        for _ in range(4):
            await (await anext(sub)).ack()
        await sub.close()
        groups = await client.admin.list_groups("it.admin")
        assert [g.group for g in groups] == ["replayers"]
        reset = await client.admin.reset_group("replayers", "it.admin", to="earliest")
        assert {p.offset for p in reset.offsets} == {0}
        again = await client.subscribe("it.admin", group="replayers")  # its position now comes from the reset
        assert (await anext(again)).data == b"e0"
        await again.close()
        await client.admin.delete_topic("it.admin")
        with pytest.raises(UnknownTopic):
            await client.admin.describe_topic("it.admin")


async def test_the_sync_facade(broker_url):
    def script():
        with tidings.connect_sync(broker_url, service="script") as client:
            result = client.publish("it.sync", "hello")
            with client.subscribe("it.sync", group="script", start="earliest") as sub:
                message = next(sub)
                message.ack()
            return result, message.text(), client.admin.describe_topic("it.sync")

    result, text, description = await asyncio.to_thread(script)
    assert (result.offset, text) == (0, "hello")
    assert sum(p.end_offset for p in description.partitions) == 1


async def test_the_cli(broker_url):
    async def tidings_cli(*args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(TIDINGS),
            *args,
            "--url",
            broker_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
        )
        out, err = await process.communicate(stdin)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    assert await tidings_cli("publish", "it.cli", "-", stdin=b"one\ntwo\nthree\n") == (
        0,
        "published 3 events to it.cli\n",
        "",
    )
    code, out, err = await tidings_cli(
        "tail", "it.cli", "--from", "earliest", "--count", "3", "--group", "cli"
    )
    assert code == 0, err
    assert [line.split(" ", 1)[1] for line in out.splitlines()] == ["one", "two", "three"]
    code, out, _ = await tidings_cli("groups", "describe", "cli")
    assert code == 0 and "it.cli" in out
    code, out, err = await tidings_cli("topics", "describe", "it.missing")
    assert code == 1 and out == "" and len(err.splitlines()) == 1 and "unknown_topic" in err
