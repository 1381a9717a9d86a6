"""Topic settings: canonical forms, errors naming the key, effective values, metadata files."""

from __future__ import annotations

import pytest

from tidings.core.topic_config import TopicDefaults, TopicMeta, effective, log_config, normalize
from tidings.errors import InvalidTopicConfig, StorageError
from tidings.storage import FsyncPolicy, SyncMode


def test_normalize():
    assert normalize("t", {"fsync": " Interval:0100 ", "retention.ms": "-1", "segment.bytes": "8192"}) == {
        "fsync": "interval:100",
        "retention.ms": "-1",
        "segment.bytes": "8192",
    }


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"colour": "red"}, ["'colour'", "known"]),
        ({"fsync": "sometimes"}, ["'fsync'", "sometimes"]),
        ({"retention.ms": "0"}, ["'retention.ms'", "-1"]),
        ({"retention.bytes": "many"}, ["'retention.bytes'", "integer"]),
        ({"segment.bytes": "100"}, ["'segment.bytes'", "4096"]),
        ({"segment.ms": "0"}, ["'segment.ms'"]),
    ],
)
def test_errors_name_topic_and_key(config, words):
    with pytest.raises(InvalidTopicConfig) as error:
        normalize("orders", config)
    assert "'orders'" in str(error.value)
    for word in words:
        assert word in str(error.value)


def test_effective_and_log_config():
    defaults = TopicDefaults(fsync=FsyncPolicy.parse("never"), retention_ms=60_000)
    values = effective({"retention.bytes": "1000"}, defaults)
    assert (
        values["fsync"] == "never"
        and values["retention.ms"] == "60000"
        and values["retention.bytes"] == "1000"
    )
    config = log_config({"retention.ms": "-1", "fsync": "always"}, defaults)
    assert config.retention.max_age_ms is None and config.fsync.mode is SyncMode.ALWAYS


def test_metadata_roundtrip_and_damage():
    meta = TopicMeta(name="orders", partitions=3, config={"fsync": "never"}, created_ms=5)
    assert TopicMeta.decode(meta.encode(), "x") == meta
    with pytest.raises(StorageError, match=r"/p/topic\.json"):
        TopicMeta.decode(b'{"version": 1, "name": "o", "partitions": 0}', "/p/topic.json")
    with pytest.raises(StorageError, match="damaged"):
        TopicMeta.decode(b"[]", "/p/topic.json")
