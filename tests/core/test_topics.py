"""The topic registry: create, reopen, delete, settings, auto-creation, dead letters."""

from __future__ import annotations

import os

import pytest

from tidings.core.datadir import DataDir
from tidings.core.dead_letters import dead_letter_topic
from tidings.core.topic_config import TopicDefaults
from tidings.core.topics import TopicPolicy, TopicRegistry
from tidings.errors import (
    DataDirError,
    InvalidTopicConfig,
    InvalidTopicName,
    StorageError,
    TopicExists,
    UnknownPartition,
    UnknownTopic,
)
from tidings.records import BatchBuilder, iter_records
from tidings.storage import FsyncPolicy, SyncMode


@pytest.fixture
def datadir(tmp_path):
    directory = DataDir(str(tmp_path / "data"))
    yield directory
    directory.close()


def registry(datadir, **policy) -> TopicRegistry:
    topics = TopicRegistry(datadir, TopicPolicy(**policy))
    topics.open()
    return topics


def one(value: bytes, key: bytes | None = None, headers=None, timestamp: int = 1000) -> bytes:
    builder = BatchBuilder()
    builder.add(value, key=key, headers=headers, timestamp=timestamp)
    return builder.build()


def test_create_writes_metadata_and_partition_logs(datadir):
    topics = registry(datadir)
    topics.create("orders", 3, {"retention.ms": "1000", "fsync": "interval:20"})
    base = os.path.join(datadir.topics, "orders")
    assert sorted(os.listdir(base)) == ["0", "1", "2", "topic.json"]
    log = topics.log("orders", 2)
    assert log.config.fsync == FsyncPolicy(SyncMode.INTERVAL, 20)
    assert log.config.retention.max_age_ms == 1000
    assert topics.take_created() == ["orders"]
    topics.close()


def test_topics_reopen_with_their_settings(datadir):
    topics = registry(datadir)
    topics.create("orders", 2, {"segment.bytes": "65536"})
    topics.append("orders", 1, one(b"v"))
    topics.log("orders", 1).sync()
    topics.close()
    again = registry(datadir)
    assert again.names() == ["orders"]
    assert again.partition_count("orders") == 2
    assert again.log("orders", 1).end_offset == 1
    assert again.describe("orders").config["segment.bytes"] == "65536"
    again.close()


def test_interrupted_create_is_cleaned_up(datadir):
    os.makedirs(os.path.join(datadir.topics, "half", "0"))
    topics = registry(datadir)
    assert topics.names() == []
    assert os.listdir(datadir.trash)


def test_damaged_metadata_names_the_file(datadir):
    os.makedirs(os.path.join(datadir.topics, "bad"))
    with open(os.path.join(datadir.topics, "bad", "topic.json"), "w") as handle:
        handle.write("{not json")
    with pytest.raises(StorageError, match=r"topic\.json"):
        registry(datadir)


def test_errors_name_the_topic(datadir):
    topics = registry(datadir, auto_create=False)
    with pytest.raises(InvalidTopicName, match=r"'a\.\.b'"):
        topics.create("a..b")
    with pytest.raises(InvalidTopicName, match=r"'orders\.\*'"):
        topics.create("orders.*")
    with pytest.raises(UnknownTopic, match=r"'missing'.*auto-creation"):
        topics.ensure("missing")
    topics.create("orders")
    with pytest.raises(TopicExists, match="'orders'"):
        topics.create("orders")
    with pytest.raises(UnknownPartition, match="'orders' has no partition 4"):
        topics.log("orders", 4)
    with pytest.raises(InvalidTopicConfig, match="'colour'"):
        topics.create("paint", 1, {"colour": "red"})
    with pytest.raises(InvalidTopicConfig, match="partitions"):
        topics.create("huge", 100_000)


def test_auto_create_uses_the_default_partitions(datadir):
    topics = registry(datadir, default_partitions=4)
    assert topics.ensure("fresh").partitions == 4


def test_broker_defaults_apply_unless_overridden(datadir):
    defaults = TopicDefaults(fsync=FsyncPolicy.parse("never"), retention_bytes=1 << 20)
    topics = TopicRegistry(datadir, TopicPolicy(defaults=defaults))
    topics.open()
    topics.create("plain")
    topics.create("careful", 1, {"fsync": "always"})
    assert topics.log("plain", 0).config.fsync.mode is SyncMode.NEVER
    assert topics.log("careful", 0).config.fsync.mode is SyncMode.ALWAYS
    assert topics.describe("plain").config["retention.bytes"] == str(1 << 20)
    assert topics.describe("plain").config["retention.ms"] == "-1"


def test_delete_moves_to_trash_and_the_name_can_be_reused(datadir):
    topics = registry(datadir)
    topics.create("orders")
    topics.append("orders", 0, one(b"old"))
    topics.delete("orders")
    assert topics.names() == []
    assert not os.path.exists(os.path.join(datadir.topics, "orders"))
    topics.create("orders")
    assert topics.log("orders", 0).end_offset == 0
    datadir.empty_trash()
    assert os.listdir(datadir.trash) == []


def test_appends_are_noted_for_group_commit(datadir):
    topics = registry(datadir)
    topics.create("orders", 2)
    topics.append("orders", 0, one(b"a"))
    topics.append("orders", 0, one(b"b"))
    topics.append("orders", 1, one(b"c"))
    assert topics.take_appended() == {("orders", 0): 1, ("orders", 1): 0}
    assert topics.take_appended() == {}


def test_partition_source(datadir):
    topics = registry(datadir)
    topics.create("shop.orders.eu", 2)
    topics.create("shop.orders.us")
    topics.create("audit")
    assert topics.topics_matching("shop.orders.*") == ["shop.orders.eu", "shop.orders.us"]
    assert topics.topics_matching(">") == ["audit", "shop.orders.eu", "shop.orders.us"]
    assert topics.topics_matching("audit") == ["audit"]
    topics.append("audit", 0, one(b"a"))
    assert topics.log_range("audit", 0) == (0, 0)  # written, not yet durable under fsync=always
    topics.log("audit", 0).sync()
    assert topics.log_range("audit", 0) == (0, 1)
    assert topics.read("audit", 0, 0, 1 << 20).record_count == 1
    assert topics.offset_for_time("audit", 0, 0) == 0


def test_dead_letter_copies_the_record_with_headers(datadir):
    topics = registry(datadir, auto_create=False)
    topics.create("orders")
    topics.append("orders", 0, one(b"first"))
    topics.append("orders", 0, one(b"poison", key=b"k", headers=[("trace", b"abc")], timestamp=4242))
    topics.log("orders", 0).sync()
    topics.take_created()
    topics.dead_letter(group="billing", topic="orders", partition=0, offset=1, deliveries=5, reason="bad")
    assert topics.take_created() == ["orders.dlq.billing"]  # created even with auto-creation off
    dlq = topics.log("orders.dlq.billing", 0)
    assert topics.partition_count("orders.dlq.billing") == 1
    dlq.sync()
    (record,) = list(iter_records(dlq.read(0).data))
    assert (record.key, record.value, record.timestamp) == (b"k", b"poison", 4242)
    assert record.headers == (
        ("trace", b"abc"),
        ("tidings-dlq-topic", b"orders"),
        ("tidings-dlq-partition", b"0"),
        ("tidings-dlq-offset", b"1"),
        ("tidings-dlq-group", b"billing"),
        ("tidings-dlq-deliveries", b"5"),
        ("tidings-dlq-reason", b"bad"),
    )
    assert ("orders.dlq.billing", 0) in topics.take_appended()


def test_dead_lettering_a_dead_letter_replaces_its_headers(datadir):
    topics = registry(datadir)
    topics.create("orders.dlq.billing")
    headers = [("tidings-dlq-topic", b"orders"), ("tidings-dlq-reason", b"first")]
    topics.append("orders.dlq.billing", 0, one(b"x", headers=headers))
    topics.log("orders.dlq.billing", 0).sync()
    topics.dead_letter(
        group="ops", topic="orders.dlq.billing", partition=0, offset=0, deliveries=1, reason="again"
    )
    target = topics.log("orders.dlq.billing.dlq.ops", 0)
    target.sync()
    (record,) = list(iter_records(target.read(0).data))
    assert dict(record.headers)["tidings-dlq-topic"] == b"orders.dlq.billing"
    assert [name for name, _ in record.headers].count("tidings-dlq-reason") == 1


def test_dead_letter_of_a_vanished_record_is_a_no_op(datadir):
    topics = registry(datadir)
    topics.dead_letter(group="g", topic="gone", partition=0, offset=3, deliveries=1, reason="x")
    assert topics.names() == []


def test_dead_letter_topic_names():
    assert dead_letter_topic("orders", "billing") == "orders.dlq.billing"
    assert dead_letter_topic("orders", "shop.payments") == "orders.dlq.shop.payments"
    assert dead_letter_topic("orders", ".odd..group.") == "orders.dlq._.odd._.group._"
    with pytest.raises(InvalidTopicName):
        dead_letter_topic("t" * 240, "group")


def test_one_broker_per_data_directory(tmp_path):
    first = DataDir(str(tmp_path / "data"))
    with pytest.raises(DataDirError, match="in use by another broker"):
        DataDir(str(tmp_path / "data"))
    broker_id = first.broker_id
    first.close()
    second = DataDir(str(tmp_path / "data"))
    assert second.broker_id == broker_id  # kept across restarts
    second.close()
